#!/usr/bin/env python3
"""Golden fixture for Kokoro's text encoder and prosody predictor test (real/tests/kokoro_modules.rs).

Builds kokoro 0.9.4's own `TextEncoder` and `ProsodyPredictor` (kokoro/modules.py, with
AdainResBlk1d and AdaIN1d from kokoro/istftnet.py) at tiny widths, draws their parameters from a
seeded generator, runs them in eval mode the way `KModel.forward_with_tokens` does for one
unpadded utterance, and writes real/tests/fixtures/kokoro_modules/modules.safetensors (about
290 KB) holding:

- the parameters under the Kokoro checkpoint's names without `module.`: `text_encoder.*`
  (channels 24, kernel 5, depth 3, 178 symbols) and `predictor.*` (style 16, d_hid 24,
  3 layers, max_dur 50);
- the inputs: `input_ids` (int64 [1, 12], `[0, phonemes..., 0]` as Kokoro pads), `d_en`
  ([1, 24, 12], what `bert_encoder` would give), `style` ([1, 16], `ref_s[:, 128:]`), `en`
  ([1, 40, 20], 20 frames of `d`'s width);
- the outputs: `t_en` (`text_encoder(input_ids, lengths, mask)`, [1, 24, 12]), `d`
  (`predictor.text_encoder(d_en, style, lengths, mask)`, [1, 12, 40]), `durations`
  (`sigmoid(duration_proj(lstm(d))).sum(-1)`, [1, 12], before the division by speed and the
  rounding) and `F0`, `N` (`predictor.F0Ntrain(en, style)`, [1, 40] each).

Weight-normed layers get `weight_g` scaled away from `‖weight_v‖` so that folding them matters;
LayerNorm and the AdaIN instance norms get non-trivial affine parameters (Kokoro's checkpoint may
lack the latter: the candle loader then uses the plain norm, which PyTorch's initial ones and
zeros equal).

Run once by hand; CI only reads the committed file and never needs PyTorch:
  /work/venv/bin/python tools/gen_kokoro_modules_fixture.py
(torch 2.9.1, kokoro 0.9.4, safetensors 0.8.0). One CPU thread, a few seconds.
"""
import pathlib
import warnings

import torch
from kokoro.modules import ProsodyPredictor, TextEncoder
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_modules"

CHANNELS, KERNEL, DEPTH, N_SYMBOLS = 24, 5, 3, 178
STYLE, D_HID, N_LAYERS, MAX_DUR = 16, 24, 3, 50
TOKENS, FRAMES = 12, 20

torch.manual_seed(0)
torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=FutureWarning)  # torch.nn.utils.weight_norm's deprecation

text_encoder = TextEncoder(channels=CHANNELS, kernel_size=KERNEL, depth=DEPTH, n_symbols=N_SYMBOLS).eval()
predictor = ProsodyPredictor(style_dim=STYLE, d_hid=D_HID, nlayers=N_LAYERS, max_dur=MAX_DUR, dropout=0.2).eval()


def randomise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight_g":
                # weight_norm initialises g to ‖v‖, which would make the fold an identity.
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
            elif leaf in ("gamma",) or (".norm." in name and leaf == "weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))  # LayerNorm / InstanceNorm gains
            elif leaf == "beta" or (".norm." in name and leaf == "bias"):
                p.copy_(0.3 * torch.randn_like(p))
            elif "embedding" in name:
                p.copy_(torch.randn_like(p))
            elif name.startswith("duration_proj."):
                # Xavier's small weights put every logit near 0 and every duration near max_dur / 2.
                p.copy_(0.5 * torch.randn_like(p) if leaf == "weight" else torch.randn_like(p))
            elif "weight_ih" in name or "weight_hh" in name or "bias_ih" in name or "bias_hh" in name:
                p.uniform_(-0.4, 0.4)  # wider than the default so that the gates saturate somewhat
            # everything else keeps PyTorch's (seeded) initialisation


randomise(text_encoder)
randomise(predictor)

ids = torch.zeros(1, TOKENS, dtype=torch.int64)
ids[0, 1:-1] = torch.randint(1, N_SYMBOLS, (TOKENS - 2,))
d_en = torch.randn(1, D_HID, TOKENS)
style = torch.randn(1, STYLE)
en = torch.randn(1, D_HID + STYLE, FRAMES)

# As KModel.forward_with_tokens builds them for one utterance: full length, nothing masked.
lengths = torch.full((1,), TOKENS, dtype=torch.long)
mask = torch.gt(torch.arange(TOKENS).unsqueeze(0) + 1, lengths.unsqueeze(1))
assert not mask.any()

with torch.no_grad():
    t_en = text_encoder(ids, lengths, mask)
    d = predictor.text_encoder(d_en, style, lengths, mask)
    x, _ = predictor.lstm(d)
    durations = torch.sigmoid(predictor.duration_proj(x)).sum(axis=-1)
    f0, n = predictor.F0Ntrain(en, style)

T = {}
for prefix, module in (("text_encoder", text_encoder), ("predictor", predictor)):
    for k, v in module.state_dict().items():
        T[f"{prefix}.{k}"] = v.detach().to(torch.float32).contiguous().clone()
T["input_ids"] = ids
for name, value in (("d_en", d_en), ("style", style), ("en", en), ("t_en", t_en), ("d", d),
                    ("durations", durations), ("F0", f0), ("N", n)):
    T[name] = value.detach().to(torch.float32).contiguous().clone()

OUT.mkdir(parents=True, exist_ok=True)
path = OUT / "modules.safetensors"
save_file(T, str(path))
print(path.stat().st_size, "bytes")
print({k: tuple(v.shape) for k, v in T.items() if "." not in k})
print("durations", durations)
