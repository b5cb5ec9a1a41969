#!/usr/bin/env python3
"""Golden fixture for LivePortrait's SPADE generator G (real/tests/liveportrait_spade.rs).

Builds the reference's `SPADEDecoder` (src/modules/spade_generator.py) with models.yaml's
`spade_generator_params` (upscale 2, block_expansion 64, max_features 512, num_down_blocks 2),
whose blocks' convolutions are wrapped by `spectral_norm`, so the state dict holds `weight_orig`,
`weight_u` and `weight_v` for them. Every state-dict tensor (u and v included) comes from the
counter generator (tools/counter_weights.py, identical in Rust: real/tests/common/counter.rs).
The module runs in eval mode: spectral_norm then does no power iteration and uses the stored u
and v as they are, which is what the Rust side folds at load.

Cases (inputs from `counter_input`, rebuilt by the Rust test, never stored):
  - `full`: the published shape, feature 1 x 256 x 64 x 64 in [-1, 1) -> image 1 x 3 x 512 x 512
    (sampled: 4096 evenly spaced elements);
  - `small`: the same weights on a 1 x 256 x 8 x 8 feature -> 1 x 3 x 64 x 64 (sampled), which a
    debug build runs 64 times faster;
  - `middle_0`: block G_middle_0 alone (512 -> 512, identity shortcut) on x 1 x 512 x 8 x 8 with
    the `small` feature as its segmap; `up_0`: block up_0 alone (512 -> 256, learned shortcut)
    on x 1 x 512 x 16 x 16, its segmap (the `small` feature) resized by nearest neighbour; both
    sampled, to locate a mismatch.

The counter's u and v are not singular vectors: sigma = u . (W v) comes out between 0.002 and
0.13 in size (the script prints each), where a trained checkpoint's is the largest singular
value, so the folded weights are 8 to 500 times larger than trained ones would be, and the
activations grow to thousands. The final sigmoid then saturates 97% of each image to within
1e-4 of 0 or 1, where it would hide a mismatch; so the fixture also samples the logits before the
sigmoid (`full_logits`, `small_logits`, the PixelShuffle's output), which the Rust test compares
with the relative tolerance. PyTorch in f32 is itself far from exact here: the script prints how far it is from PyTorch in
float64 (7.9e-5 for `middle_0`, 4.3e-4 for `up_0`, 3.3e-3 for `small_logits`), which sets the Rust
test's f32 tolerances. To check the port tightly despite that, the fixture also holds float64
results (1024 evenly spaced elements each, values in f64): `middle_0_f64`, `up_0_f64` and
`tiny_logits_f64` (all of G on a 1 x 256 x 2 x 2 feature `feature_tiny`, a 1 x 3 x 16 x 16
image), which the Rust side reproduces in f64. The script also checks that the sample is sensitive: the small
logits move by 6.8e-3 (relative), far more than the f64 checks' tolerance, if one spectral norm is left
out.

Written to real/tests/fixtures/liveportrait_spade/ (about 150 KB, no weights): spade.safetensors
(the samples) and manifest.json (seed, config, the inputs' ranges, every tensor's name and shape).

Run once by hand (torch 2.9.1, numpy 2.4.6, safetensors 0.8.0; under a minute on 2 cores):
  /work/venv/bin/python tools/gen_liveportrait_spade_fixture.py
"""
import json
import pathlib
import sys
import time

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import REF, counter_input, fill_counter, reference, sampled  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_spade"
SEED = 20261202
#: Inputs: name -> shape, all in [-1, 1).
INPUTS = {
    "feature_full": (1, 256, 64, 64),
    "feature_small": (1, 256, 8, 8),
    "x_middle_0": (1, 512, 8, 8),
    "x_up_0": (1, 512, 16, 16),
    "feature_tiny": (1, 256, 2, 2),
}
#: Elements sampled from each float64 output.
SAMPLES_F64 = 1024

reference()
from src.modules.spade_generator import SPADEDecoder  # noqa: E402

torch.set_grad_enabled(False)
torch.manual_seed(0)  # spectral_norm draws u and v at construction; fill_counter overwrites them
params = yaml.safe_load(open(REF / "src" / "config" / "models.yaml"))["model_params"]["spade_generator_params"]
G = SPADEDecoder(**params)
manifest = fill_counter(G, SEED)
G.eval()
assert any(name.endswith("weight_orig") for name, _ in manifest)

for name, module in G.named_modules():
    if hasattr(module, "weight_orig"):
        w = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
        sigma = torch.dot(module.weight_u, w @ module.weight_v).item()
        print(f"sigma {name}: {sigma:.4g}")

x = {name: counter_input(SEED, name, shape) for name, shape in INPUTS.items()}
logits = []
G.conv_img.register_forward_hook(lambda module, args, result: logits.append(result))
out = {}
start = time.perf_counter()
full = G(x["feature_full"])
print(f"full-size forward: {time.perf_counter() - start:.1f} s")
small = G(x["feature_small"])
middle_0 = G.G_middle_0(x["x_middle_0"], x["feature_small"])
up_0 = G.up_0(x["x_up_0"], x["feature_small"])
cases = [("full_logits", logits[0]), ("full", full), ("small_logits", logits[1]), ("small", small),
         ("middle_0", middle_0), ("up_0", up_0)]
assert torch.equal(torch.sigmoid(logits[0]), full)
for name, t in cases:
    sampled(out, name, t)
    if name in ("full", "small"):
        saturated = ((t < 1e-4) | (t > 1 - 1e-4)).float().mean().item()
        print(f"{name}: {tuple(t.shape)}, {saturated:.1%} within 1e-4 of 0 or 1")
    else:
        print(f"{name}: {tuple(t.shape)}, max |value| {t.abs().max().item():.3g}, median |value| {t.abs().median().item():.3g}")

# The same in float64 (weights and inputs are the f32 values, widened): the f32 results above are
# this far from exact, because the small sigmas amplify every rounding.
G.double()
for name, t in [("middle_0", middle_0), ("up_0", up_0), ("small_logits", logits[1])]:
    exact = {"middle_0": lambda: G.G_middle_0(x["x_middle_0"].double(), x["feature_small"].double()),
             "up_0": lambda: G.up_0(x["x_up_0"].double(), x["feature_small"].double()),
             "small_logits": lambda: (G(x["feature_small"].double()), logits.pop())[1]}[name]()
    error = ((t.double() - exact) / exact.abs().clamp(min=1)).abs().max().item()
    print(f"{name}: PyTorch f32 is {error:.3g} (relative) from PyTorch f64")
G(x["feature_tiny"].double())
for name, t in [("middle_0_f64", G.G_middle_0(x["x_middle_0"].double(), x["feature_small"].double())),
                ("up_0_f64", G.up_0(x["x_up_0"].double(), x["feature_small"].double())),
                ("tiny_logits_f64", logits.pop())]:
    flat = t.reshape(-1)
    index = torch.from_numpy(np.linspace(0, flat.numel() - 1, min(SAMPLES_F64, flat.numel())).round().astype(np.int64))
    out[f"{name}.index"], out[f"{name}.values"] = index, flat[index].contiguous()
    out[f"{name}.shape"] = torch.tensor(list(t.shape), dtype=torch.int64)
G.float()

# Sensitivity: G_middle_0.conv_0 without its spectral norm (the raw weight_orig) must move the
# small image's logits by far more than the tolerance.
G(x["feature_tiny"])  # recomputes the folded weights in f32
conv = G.G_middle_0.conv_0
orig, folded = conv.weight_orig.clone(), conv.weight.clone()
torch.nn.utils.remove_spectral_norm(conv)
assert torch.equal(conv.weight, folded)
conv.weight.copy_(orig)
G(x["feature_small"])
change = ((logits[-1] - logits[1]).abs() / logits[1].abs().clamp(min=1)).max().item()
print(f"sensitivity: without G_middle_0.conv_0's spectral norm the small logits move by {change:.3g} (relative)")
assert change > 1e-3  # a million times the f64 checks' tolerance (1e-9)

OUT.mkdir(parents=True, exist_ok=True)
save_file({k: v.contiguous() for k, v in sorted(out.items())}, str(OUT / "spade.safetensors"))
info = {
    "seed": SEED,
    "spade_generator_params": params,
    "inputs": {name: {"shape": list(shape), "low": -1.0, "high": 1.0} for name, shape in INPUTS.items()},
    "versions": {"torch": torch.__version__.split("+")[0], "numpy": np.__version__},
}
head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items())
rows = ",\n".join(f"  {json.dumps(list(entry))}" for entry in manifest)
with open(OUT / "manifest.json", "w") as f:
    f.write(f'{{\n{head},\n "tensors": [\n{rows}\n ]\n}}\n')
json.load(open(OUT / "manifest.json"))
print(f"{len(manifest)} tensors, {sum(int(np.prod(s)) for _, s in manifest)} values")
