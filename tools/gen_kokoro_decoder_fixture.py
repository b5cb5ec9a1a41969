#!/usr/bin/env python3
"""Golden fixture for Kokoro's iSTFTNet decoder at full size (real/tests/kokoro_decoder.rs).

Builds kokoro 0.9.4's `istftnet.Decoder` exactly as `KModel` does (dim_in = hidden_dim 512,
style_dim 128, the `istftnet` section of Kokoro's config), fills EVERY state_dict tensor (491
tensors, 53.3M values: weight_g/weight_v of the weight-normed convolutions, the AdaIN norms'
affine pairs, Snake's alphas, ...) from the counter-based generator (tools/counter_weights.py,
identical in Rust: real/tests/common/counter.rs), and runs it in eval mode on a short input:
T = 8 text frames (asr [1, 512, 8]), an F0 curve of 16 frames with voiced values from 85 to
250 Hz, unvoiced zeros and one 6 Hz frame (positive, but under the 10 Hz voicing threshold), an
energy curve N and a style vector.

The harmonic source draws random numbers on every call; they are frozen here by wrapping
torch.rand / torch.randn_like while the decoder runs, and saved, so the Rust side replays exactly
the values PyTorch used:
  - `excitation_phase` [1, 9]: SineGen's `rand_ini` (uniform [0, 1), column 0 zeroed in place);
  - `excitation_noise` [1, 4800, 9]: SineGen's `torch.randn_like(sine_waves)`.
SourceModuleHnNSF's second draw, `torch.randn_like(uv)`, is returned as `noi_source` and never
used by the Generator; it is drawn (to keep PyTorch's order) but not saved.

Written to real/tests/fixtures/kokoro_decoder/ (about 380 KB, no weights):
  - decoder.safetensors: inputs `asr`, `f0`, `n`, `style`; the frozen excitation; outputs
    `decoded` (the generator's input, [1, 512, 16]), `har_source` (the harmonic source after
    SourceModuleHnNSF's linear + tanh, [1, 4800]), `conv_post` (the generator's last convolution,
    log-magnitudes then phase logits, [1, 22, 961]) and `audio` ([4800]), to localise a mismatch.
  - manifest.json: the counter seed, the sizes, and every state_dict tensor's (name, shape), so
    the Rust loader sees weight_g / weight_v and norm.weight exactly where PyTorch has them.

The script also checks and prints (recorded in the test's doc comment):
  - that `rand_ini` cannot change the output (SineGen adds it to sample 0 only, and the linear
    downsampling by 300 reads samples 149 + 300 j and 150 + 300 j, never sample 0);
  - that the fixture is sensitive: a final LeakyReLU slope of 0.1 for 0.01, or the reflection pad
    on the right instead of the left, must move the audio (and a voicing threshold of 0 Hz for
    10 the harmonic source) by far more than the test's tolerance;
  - how far PyTorch's own audio moves with torch.stft's first frame left as it is (see
    transform_with_real_first_frame), and how far the f32 reference is from PyTorch in float64.

The reference resolves one ambiguity of PyTorch's own: see transform_with_real_first_frame.

Run once by hand (CI only reads the committed files; torch 2.9.1, kokoro 0.9.4, safetensors
0.8.0, numpy 2.4.6; about a minute and 2 GB of memory):
  /work/venv/bin/python tools/gen_kokoro_decoder_fixture.py
"""
import glob
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import counter_weights  # noqa: E402
from kokoro_fixture_common import draws, frozen, transform_with_real_first_frame  # noqa: E402

from kokoro import istftnet  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_decoder"
SEED = 20261130
T = 8
DIM_IN = 512
STYLE_DIM = 128
EXCITATION_SEED = 0
# The test's tightest tolerances are 1e-5 to 2e-4 of the range; changes a port could get wrong
# must move the outputs by 100 times this.
TOLERANCE = 1e-4

torch.set_num_threads(2)
torch.manual_seed(0)

config_path = glob.glob(str(pathlib.Path(istftnet.__file__).parent.parent / "kokoro_onnx" / "config.json"))
ISTFTNET = json.load(open(config_path[0]))["istftnet"]

decoder = istftnet.Decoder(dim_in=DIM_IN, style_dim=STYLE_DIM, dim_out=80, **ISTFTNET).eval()
manifest = []
with torch.no_grad():
    state = decoder.state_dict(keep_vars=True)
    for name, p in state.items():
        p.copy_(torch.from_numpy(counter_weights.tensor(SEED, name, tuple(p.shape))))
        manifest.append([name, list(p.shape)])

# Inputs: text features, an F0 curve in Hz (0 = unvoiced), energy, style.
asr = torch.randn(1, DIM_IN, T)
f0 = torch.tensor([[0.0, 0.0, 85.0, 96.0, 110.0, 131.0, 152.0, 180.0,
                    213.0, 250.0, 0.0, 6.0, 120.0, 104.0, 92.0, 0.0]])
assert f0.shape == (1, 2 * T)
n = torch.randn(1, 2 * T)
style = torch.randn(1, STYLE_DIM)

def run(excitation_seed, noise=None):
    captured = {}
    hooks = [
        decoder.generator.register_forward_pre_hook(lambda m, args: captured.__setitem__("decoded", args[0].clone())),
        decoder.generator.m_source.register_forward_hook(
            lambda m, args, out: captured.__setitem__("har_source", out[0].transpose(1, 2).squeeze(1).clone())),
        decoder.generator.conv_post.register_forward_hook(
            lambda m, args, out: captured.__setitem__("conv_post", out.clone())),
    ]
    try:
        with frozen(excitation_seed, noise):
            audio = decoder(asr, f0, n, style).squeeze()
    finally:
        for h in hooks:
            h.remove()
    return audio, captured


# Every reference run below resolves the first frame as exact arithmetic does.
pytorch_transform = istftnet.TorchSTFT.transform
istftnet.TorchSTFT.transform = transform_with_real_first_frame

audio, captured = run(EXCITATION_SEED)
assert len(draws["rand"]) == 1 and len(draws["randn_like"]) == 2, draws
phase = draws["rand"][0].clone()
noise = draws["randn_like"][0]
samples = 2 * T * 300
assert phase.shape == (1, 9) and phase[0, 0] == 0, phase
assert noise.shape == (1, samples, 9), noise.shape
assert draws["randn_like"][1].shape == (1, samples, 1)  # noi_source: unused by the Generator
assert audio.shape == (samples,), audio.shape
scale = audio.abs().max().item()
print(f"audio: {tuple(audio.shape)}, max |audio| {scale:.4g}, rms {audio.pow(2).mean().sqrt().item():.4g}")
for key in ("decoded", "har_source", "conv_post"):
    print(f"{key}: {tuple(captured[key].shape)}, max |{key}| {captured[key].abs().max().item():.4g}")

# rand_ini is dead: another phase draw, the same Gaussian noise, the same audio.
other, _ = run(EXCITATION_SEED + 1, noise=noise)
assert not torch.equal(draws["rand"][0], phase)
dead = (other - audio).abs().max().item()
print(f"rand_ini changed: max |audio difference| {dead}")
assert dead == 0.0


def relative_change(patched, reference=audio):
    return ((patched - reference).abs().max() / reference.abs().max()).item()


# Sensitivity: variants a port could get wrong must move the audio well past the tolerance.
checks = {}
try:
    real_leaky = F.leaky_relu

    def steeper(x, negative_slope=0.01, inplace=False):
        return real_leaky(x, 0.1 if negative_slope == 0.01 else negative_slope)

    istftnet.F.leaky_relu = steeper
    checks["final LeakyReLU slope 0.1 for 0.01"] = relative_change(run(EXCITATION_SEED, noise=noise)[0])
finally:
    istftnet.F.leaky_relu = real_leaky
pad = decoder.generator.reflection_pad
decoder.generator.reflection_pad = torch.nn.ReflectionPad1d((0, 1))
checks["reflection pad on the right"] = relative_change(run(EXCITATION_SEED, noise=noise)[0])
decoder.generator.reflection_pad = pad
sine_gen = decoder.generator.m_source.l_sin_gen
sine_gen.voiced_threshold = 0
checks["voicing threshold 0 Hz for 10 (harmonic source)"] = relative_change(
    run(EXCITATION_SEED, noise=noise)[1]["har_source"], captured["har_source"])
sine_gen.voiced_threshold = 10
for what, change in checks.items():
    print(f"sensitivity: {what}: moves by {change:.3g} of its range")
    assert change > 100 * TOLERANCE, what
# PyTorch as it is: the first frame's coin-toss phases left to pocketfft's rounding.
istftnet.TorchSTFT.transform = pytorch_transform
as_is = relative_change(run(EXCITATION_SEED, noise=noise)[0])
istftnet.TorchSTFT.transform = transform_with_real_first_frame
print(f"PyTorch with torch.stft's own first frame: audio moves by {as_is:.3g} of its range")
# PyTorch in float64 on the same inputs and excitation: how far the f32 reference itself is from
# exact. The phase reaches about 1100 rad, where an f32 step is 1.2e-4 rad, and the source's STFT
# phase turns such steps into larger ones wherever a bin is small; exp(log-magnitude) then scales
# them up once more.
def inverse_in_dtype(self, magnitude, phase):
    window = self.window.to(magnitude.device, magnitude.dtype)
    return torch.istft(magnitude * torch.exp(phase * 1j), self.filter_length, self.hop_length,
                       self.win_length, window=window).unsqueeze(-2)


def transform_in_dtype(self, input_data):
    self.window = self.window.to(input_data.dtype)
    return transform_with_real_first_frame(self, input_data)


pytorch_inverse = istftnet.TorchSTFT.inverse
istftnet.TorchSTFT.inverse, istftnet.TorchSTFT.transform = inverse_in_dtype, transform_in_dtype
decoder.double()
with frozen(EXCITATION_SEED, noise):
    exact = decoder(asr.double(), f0.double(), n.double(), style.double()).squeeze()
decoder.float()
decoder.generator.stft.window = decoder.generator.stft.window.float()
istftnet.TorchSTFT.inverse, istftnet.TorchSTFT.transform = pytorch_inverse, transform_with_real_first_frame
f32_error = relative_change(audio.double(), exact)
f32_l2 = ((audio.double() - exact).norm() / exact.norm()).item()
print(f"PyTorch f32 against PyTorch f64: max error {f32_error:.3g} of the range, relative L2 {f32_l2:.3g}")
# The unpatched model still gives the saved audio.
assert torch.equal(run(EXCITATION_SEED, noise=noise)[0], audio)

tensors = {
    "asr": asr,
    "f0": f0,
    "n": n,
    "style": style,
    "excitation_phase": phase,
    "excitation_noise": noise,
    "decoded": captured["decoded"],
    "har_source": captured["har_source"],
    "conv_post": captured["conv_post"],
    "audio": audio,
}
OUT.mkdir(parents=True, exist_ok=True)
save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(OUT / "decoder.safetensors"))
info = {
    "seed": SEED,
    "excitation_seed": EXCITATION_SEED,
    "dim_in": DIM_IN,
    "style_dim": STYLE_DIM,
    "istftnet": ISTFTNET,
    "versions": {"torch": torch.__version__, "numpy": np.__version__, "kokoro": "0.9.4"},
}
# One tensor per line, so a diff of the manifest reads as a diff of the state dict.
head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items())
rows = ",\n".join(f"  {json.dumps(entry)}" for entry in manifest)
with open(OUT / "manifest.json", "w") as f:
    f.write(f'{{\n{head},\n "tensors": [\n{rows}\n ]\n}}\n')
json.load(open(OUT / "manifest.json"))
print({k: tuple(v.shape) for k, v in tensors.items()})
print(f"{len(manifest)} tensors, {sum(int(np.prod(s)) for _, s in manifest)} values")
