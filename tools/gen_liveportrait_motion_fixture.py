#!/usr/bin/env python3
"""Golden fixture for LivePortrait's motion extractor M at full size
(real/tests/liveportrait_motion.rs).

Builds the reference's `MotionExtractor` exactly as LivePortrait does (models.yaml's
`motion_extractor_params`: num_kp 21, backbone convnextv2_tiny: depths [3, 3, 9, 3], dims
[96, 192, 384, 768], 66 pose bins), fills EVERY state_dict tensor (the names of the published
`motion_extractor.pth`, `detector.` prefix included) from the counter-based generator
(tools/counter_weights.py, identical in Rust: real/tests/common/counter.rs) and runs it in eval
mode on one 1 x 3 x 256 x 256 image in [0, 1) from the counter generator's uniform stream
(`counter_input(SEED, "source", ...)`, rebuilt by the Rust side, not stored).

Written to real/tests/fixtures/liveportrait_motion/ (no weights, a few KB):
  - motion.safetensors: every output of M, whole (kp [1, 63], exp [1, 63], pitch / yaw / roll
    [1, 66], t [1, 3], scale [1, 1]) and `features` [1, 768] (the backbone's pooled, normed
    features, to localise a mismatch);
  - manifest.json: the counter seed and every state_dict tensor's (name, shape).

The script also prints (recorded in the test's doc comment) how far the f32 reference is from the
same network in float64, and checks that the fixture is sensitive: GELU's tanh approximation for
the exact erf, or GRN without its residual `+ x`, must move the outputs by more than five times
the test's tolerance.

Run once by hand (CI only reads the committed files; torch 2.9.1, safetensors 0.8.0; seconds):
  /work/venv/bin/python tools/gen_liveportrait_motion_fixture.py
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import counter_input, fill_counter, reference  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_motion"
SEED = 20261201
SIZE = 256
OUTPUTS = ("kp", "exp", "pitch", "yaw", "roll", "t", "scale")
TOLERANCE = 1e-4

torch.set_num_threads(2)
modules = reference()
from src.modules.motion_extractor import MotionExtractor  # noqa: E402
from src.modules import util  # noqa: E402

model = MotionExtractor(num_kp=21, backbone="convnextv2_tiny").eval()
manifest = fill_counter(model, SEED)
source = counter_input(SEED, "source", (1, 3, SIZE, SIZE), 0.0, 1.0)

captured = {}
model.detector.norm.register_forward_hook(lambda m, args, out: captured.__setitem__("features", out.clone()))
with torch.no_grad():
    out = model(source)
for key in OUTPUTS + ("features",):
    value = captured[key] if key == "features" else out[key]
    print(f"{key}: {tuple(value.shape)}, max |{key}| {value.abs().max().item():.4g}")


def relative_change(a, b):
    """Largest |a - b| / max(1, |b|) over every output."""
    return max(((a[k] - b[k]).abs() / b[k].abs().clamp(min=1)).max().item() for k in OUTPUTS)


# The f32 reference against float64: the scale of rounding the port may differ by.
with torch.no_grad():
    exact = {k: v.float() for k, v in model.double()(source.double()).items()}
model.float()
print(f"PyTorch f32 against PyTorch f64: max relative error {relative_change(out, exact):.3g}")

# Sensitivity: variants a port could get wrong must move the outputs past the tolerance (GELU's
# tanh form differs from erf by 5e-4 at most, so it moves them only 7 times the tolerance; the
# f32 reference is 100 times closer than that to float64).
checks = {}
for block in (b for stage in model.detector.stages for b in stage):
    block.act.approximate = "tanh"
with torch.no_grad():
    checks["GELU's tanh approximation"] = relative_change(model(source), out)
for block in (b for stage in model.detector.stages for b in stage):
    block.act.approximate = "none"
grn_forward = util.GRN.forward
util.GRN.forward = lambda self, x: grn_forward(self, x) - x
with torch.no_grad():
    checks["GRN without its residual"] = relative_change(model(source), out)
util.GRN.forward = grn_forward
for what, change in checks.items():
    print(f"sensitivity: {what}: moves the outputs by {change:.3g}")
    assert change > 5 * TOLERANCE, what
with torch.no_grad():
    again = model(source)
assert all(torch.equal(again[k], out[k]) for k in OUTPUTS)

OUT.mkdir(parents=True, exist_ok=True)
tensors = {k: out[k].contiguous() for k in OUTPUTS}
tensors["features"] = captured["features"].contiguous()
save_file(tensors, str(OUT / "motion.safetensors"))
with open(OUT / "manifest.json", "w") as f:
    json.dump({"seed": SEED, "size": SIZE, "num_kp": 21, "tensors": manifest}, f, indent=0)
    f.write("\n")
print(f"wrote {OUT} ({len(manifest)} tensors in the manifest)")
