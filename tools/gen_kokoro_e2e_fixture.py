#!/usr/bin/env python3
"""Golden fixture for Kokoro-82M end to end (real/tests/kokoro_e2e.rs).

Builds kokoro 0.9.4's KModel offline at FULL size from Kokoro's config (kokoro_onnx's copy of
config.json) and fills EVERY state-dict tensor of its five parts (bert, bert_encoder, predictor,
text_encoder, decoder: 688 tensors, 81.8M values, weight_g/weight_v and the AdaIN norms' affine
pairs included) from the counter-based generator (tools/counter_weights.py, identical in Rust:
real/tests/common/counter.rs), under the checkpoint's names (part prefix, no `module.`).

One exception, committed in the fixture: the duration head's bias
(`predictor.duration_proj.linear_layer.bias`) is set to -3.2, so each token lasts about 2 frames
instead of the 25 that zero-mean random logits give (Σ of 50 sigmoids at 0.5): the same model,
a tenth of the decoder's work, which keeps the debug-build test short.

It runs `KModel.forward_with_tokens` on a short phoneme string with a random voice row and
speed 1, with the harmonic source's randomness frozen (torch.rand / torch.randn_like wrapped,
as in gen_kokoro_decoder_fixture.py), and the first STFT frame made exactly real (see that
script: torch.stft leaves ±4e-9 imaginary parts whose sign picks ±π, a coin toss).

Saved in real/tests/fixtures/kokoro_e2e/ (no weights): ids, style, speed, the override, the
frozen excitation, the raw duration sums (before rounding), the rounded durations, the F0 and N
curves, and the audio; manifest.json lists every tensor's (name, shape) and the seed.

The durations are a discrete function of the sums: the script asserts that every sum is at least
MARGIN from a rounding boundary (x.5), so f32 differences of 1e-5 cannot flip one.

Run once by hand (CI reads only the committed files; torch 2.9.1, kokoro 0.9.4, safetensors;
about a minute and 2 GB of memory):
  /work/venv/bin/python tools/gen_kokoro_e2e_fixture.py
"""
import glob
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import counter_weights  # noqa: E402
from kokoro_fixture_common import draws, frozen, transform_with_real_first_frame  # noqa: E402

import kokoro  # noqa: E402
from kokoro import istftnet  # noqa: E402
from kokoro.model import KModel  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_e2e"
SEED = 20261201
PHONEMES = "həlˈoʊ!"
DURATION_BIAS = -3.2
MARGIN = 0.02
EXCITATION_SEED = 0

torch.set_num_threads(2)
torch.manual_seed(0)

config_path = glob.glob(str(pathlib.Path(kokoro.__file__).parent.parent / "kokoro_onnx" / "config.json"))[0]
config = json.load(open(config_path))

# KModel loads a checkpoint file: give it an empty dict of the five parts, then fill the weights.
empty = pathlib.Path("/tmp/kokoro_e2e_empty.pth")
torch.save({}, empty)
model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty)).eval()
manifest = []
override = "predictor.duration_proj.linear_layer.bias"
with torch.no_grad():
    for part in ("bert", "bert_encoder", "predictor", "text_encoder", "decoder"):
        for name, p in getattr(model, part).state_dict(keep_vars=True).items():
            full = f"{part}.{name}"
            if full.startswith("bert.pooler."):
                continue  # unused by Kokoro, absent from the converted weights
            p.copy_(torch.from_numpy(counter_weights.tensor(SEED, full, tuple(p.shape))))
            manifest.append([full, list(p.shape)])
    dict(model.named_parameters())[override].fill_(DURATION_BIAS)

ids = [0] + [config["vocab"][c] for c in PHONEMES if c in config["vocab"]] + [0]
input_ids = torch.tensor([ids], dtype=torch.long)
style = torch.randn(1, 256) * 0.3
speed = 1.0

# Capture the sums before rounding, and F0/N.
captured = {}
real_f0n = model.predictor.F0Ntrain


def f0n(x, s):
    f0, n = real_f0n(x, s)
    captured["f0"], captured["n"] = f0.clone(), n.clone()
    return f0, n


model.predictor.F0Ntrain = f0n
model.predictor.duration_proj.register_forward_hook(
    lambda m, a, out: captured.__setitem__("duration_sums", torch.sigmoid(out).sum(-1).squeeze(0).clone()))

istftnet.TorchSTFT.transform = transform_with_real_first_frame
with frozen(EXCITATION_SEED):
    audio, durations = model.forward_with_tokens(input_ids, style, speed)

sums = captured["duration_sums"] / speed
distance = (sums - sums.floor() - 0.5).abs().min().item()
print(f"ids {ids}")
print(f"duration sums {sums.tolist()}")
print(f"durations {durations.tolist()}, {int(durations.sum())} frames, {audio.shape[0]} samples")
print(f"closest sum to a rounding boundary: {distance:.4f}")
assert distance >= MARGIN, "pick another seed: a duration sits on a rounding boundary"
phase = draws["rand"][0].clone()
noise = draws["randn_like"][0]
assert noise.shape == (1, audio.shape[0], 9), noise.shape

tensors = {
    "ids": torch.tensor(ids, dtype=torch.float32),  # small integers, exact in f32
    "style": style,
    override: dict(model.named_parameters())[override].detach(),
    "excitation_phase": phase,
    "excitation_noise": noise,
    "duration_sums": sums,
    "durations": durations.to(torch.float32),
    "f0": captured["f0"],
    "n": captured["n"],
    "audio": audio,
}
OUT.mkdir(parents=True, exist_ok=True)
save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(OUT / "e2e.safetensors"))
info = {"seed": SEED, "speed": speed, "phonemes": PHONEMES, "override": override,
        "versions": {"torch": torch.__version__, "kokoro": "0.9.4"}}
head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in info.items())
rows = ",\n".join(f"  {json.dumps(entry)}" for entry in manifest)
with open(OUT / "manifest.json", "w") as f:
    f.write(f'{{\n{head},\n "tensors": [\n{rows}\n ]\n}}\n')
print(f"{len(manifest)} tensors, {sum(int(np.prod(s)) for _, s in manifest)} values; max |audio| {audio.abs().max():.4g}")
