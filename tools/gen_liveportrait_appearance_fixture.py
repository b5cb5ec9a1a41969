#!/usr/bin/env python3
"""Golden fixture for LivePortrait's appearance feature extractor F at full size
(real/tests/liveportrait_appearance.rs), and for util.py's SameBlock2d with LeakyReLU (which F
does not use but the warping module does).

Builds the reference's `AppearanceFeatureExtractor` exactly as LivePortrait does (models.yaml's
`appearance_feature_extractor_params`: image_channel 3, block_expansion 64, num_down_blocks 2,
max_features 512, reshape_channel 32, reshape_depth 16, num_resblocks 6), fills EVERY floating
state_dict tensor (the names of the published `appearance_feature_extractor.pth`; batch norms'
integer `num_batches_tracked` is not used in eval) from the counter-based generator
(tools/counter_weights.py, identical in Rust: real/tests/common/counter.rs) and runs it in eval
mode on one 1 x 3 x 256 x 256 image in [0, 1) from the counter generator's uniform stream
(`counter_input(SEED, "source", ...)`, rebuilt by the Rust side, not stored).

Written to real/tests/fixtures/liveportrait_appearance/ (no weights):
  - appearance.safetensors: 4096 evenly spaced elements of the feature volume `f_s`
    (1 x 32 x 16 x 64 x 64) and of `second` (the 1 x 512 x 64 x 64 map before the reshape, to
    localise a mismatch), with their flat indices and shapes (liveportrait_fixture_common.sampled);
    and `lrelu_block`, the whole output of a SameBlock2d(4, 6, lrelu=True) on a 2 x 4 x 8 x 8
    input in [-1, 1) (`counter_input(SEED, "lrelu_input", ...)`), weights under `lrelu_block.`;
  - manifest.json: the counter seed and every state_dict tensor's (name, shape), F's and then the
    LeakyReLU block's.

The script also prints (recorded in the test's doc comment) how far the f32 reference is from the
same network in float64, and checks that the fixture is sensitive: the volume viewed as
(depth 16, channel 32) then transposed, instead of (channel 32, depth 16), ResBlock3d without its shortcut, or the LeakyReLU block with ReLU,
must move the outputs by far more than the test's tolerance.

Run once by hand (CI only reads the committed files; torch 2.9.1, safetensors 0.8.0; under a
minute):
  /work/venv/bin/python tools/gen_liveportrait_appearance_fixture.py
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import counter_input, fill_counter, reference, sampled  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_appearance"
SEED = 20261202
SIZE = 256
PARAMS = dict(image_channel=3, block_expansion=64, num_down_blocks=2, max_features=512, reshape_channel=32,
              reshape_depth=16, num_resblocks=6)
TOLERANCE = 1e-4

torch.set_num_threads(2)
modules = reference()
from src.modules.appearance_feature_extractor import AppearanceFeatureExtractor  # noqa: E402
from src.modules import util  # noqa: E402

model = AppearanceFeatureExtractor(**PARAMS).eval()
manifest = fill_counter(model, SEED)
source = counter_input(SEED, "source", (1, 3, SIZE, SIZE), 0.0, 1.0)

captured = {}
model.second.register_forward_hook(lambda m, args, out: captured.__setitem__("second", out.clone()))
with torch.no_grad():
    f_s = model(source)
second = captured["second"]
for key, value in (("f_s", f_s), ("second", second)):
    print(f"{key}: {tuple(value.shape)}, max |{key}| {value.abs().max().item():.4g}")

lrelu_block = util.SameBlock2d(4, 6, kernel_size=3, padding=1, lrelu=True).eval()
manifest += fill_counter(lrelu_block, SEED, "lrelu_block.")
lrelu_input = counter_input(SEED, "lrelu_input", (2, 4, 8, 8), -1.0, 1.0)
with torch.no_grad():
    lrelu_out = lrelu_block(lrelu_input)
print(f"lrelu_block: {tuple(lrelu_out.shape)}, max |out| {lrelu_out.abs().max().item():.4g}, "
      f"{(lrelu_out < 0).float().mean().item():.0%} negative")


def relative_change(a, b):
    return ((a - b).abs() / b.abs().clamp(min=1)).max().item()


# The f32 reference against float64: the scale of rounding the port may differ by.
with torch.no_grad():
    exact = model.double()(source.double()).float()
model.float()
print(f"PyTorch f32 against PyTorch f64: max relative error {relative_change(f_s, exact):.3g}")

# Sensitivity: variants a port could get wrong must move the outputs well past the tolerance.
checks = {}
with torch.no_grad():
    swapped = second.view(1, 16, 32, 64, 64).transpose(1, 2)
    checks["the volume viewed as (depth, channel)"] = relative_change(model.resblocks_3d(swapped), f_s)
res_forward = util.ResBlock3d.forward
util.ResBlock3d.forward = lambda self, x: res_forward(self, x) - x
with torch.no_grad():
    checks["ResBlock3d without its shortcut"] = relative_change(model(source), f_s)
util.ResBlock3d.forward = res_forward
lrelu_block.ac = torch.nn.ReLU()
with torch.no_grad():
    checks["ReLU for LeakyReLU"] = relative_change(lrelu_block(lrelu_input), lrelu_out)
lrelu_block.ac = torch.nn.LeakyReLU()
for what, change in checks.items():
    print(f"sensitivity: {what}: moves the output by {change:.3g}")
    assert change > 100 * TOLERANCE, what
with torch.no_grad():
    assert torch.equal(model(source), f_s)

OUT.mkdir(parents=True, exist_ok=True)
tensors = {"lrelu_block": lrelu_out.contiguous()}
sampled(tensors, "f_s", f_s)
sampled(tensors, "second", second)
save_file(tensors, str(OUT / "appearance.safetensors"))
with open(OUT / "manifest.json", "w") as f:
    json.dump({"seed": SEED, "size": SIZE, "params": PARAMS, "tensors": manifest}, f, indent=0)
    f.write("\n")
print(f"wrote {OUT} ({len(manifest)} tensors in the manifest)")
