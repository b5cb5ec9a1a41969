#!/usr/bin/env python3
"""Golden fixture for LivePortrait's keypoint math and its stitching and retargeting MLPs S
(real/tests/liveportrait_keypoints.rs).

Runs the reference's own code on B = 5 frames:
  - `headpose_pred_to_degree` and `get_rotation_matrix` of `src/utils/camera.py`;
  - `LivePortraitWrapper.transform_keypoint` (raw 66-bin pose logits in, as the motion extractor
    gives them), `.stitching`, `.retarget_lip` and `.retarget_eye` of `src/live_portrait_wrapper.py`,
    called on a bare wrapper object that holds only the three networks (the methods read nothing
    else). Importing the wrapper pulls in cv2 and scipy, which these methods never touch and the
    venv lacks: both are stubbed as empty modules;
  - the three `StitchingRetargetingNetwork`s built from models.yaml's
    `stitching_retargeting_module_params`, every tensor from the counter generator
    (tools/counter_weights.py) under the names the Rust loader sees once the checkpoint's
    `module.` prefixes are stripped: `retarget_shoulder.mlp.0.weight`, `retarget_mouth.…`,
    `retarget_eye.…`.

Inputs are counter inputs (`liveportrait_fixture_common.counter_input`), stored too since they
are small: pose logits in [-4, 4), canonical keypoints in [-0.8, 0.8), expressions in
[-0.1, 0.1), scales in [1.2, 2.0), translations in [-0.2, 0.2), closure ratios in [0, 0.8).
`stitched_one_source` drives all 5 frames from frame 0's source keypoints, which the reference
(that asserts equal batches) gets as the source repeated 5 times.

Written to real/tests/fixtures/liveportrait_keypoints/ (about 30 KB, no weights):
keypoints.safetensors and manifest.json (seed, sizes, every tensor's name and shape).

Run once by hand (torch 2.9.1, numpy 2.4.6, safetensors 0.8.0; a few seconds):
  /work/venv/bin/python tools/gen_liveportrait_keypoints_fixture.py
"""
import json
import pathlib
import sys
import types

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import REF, counter_input, fill_counter, reference  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_keypoints"
SEED = 20261201
FRAMES = 5
KP = 21
PARTS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}

modules = reference()
for name in ("cv2", "scipy", "scipy.spatial"):
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["scipy.spatial"].ConvexHull = None
from src.live_portrait_wrapper import LivePortraitWrapper  # noqa: E402
from src.utils.camera import get_rotation_matrix, headpose_pred_to_degree  # noqa: E402

torch.set_grad_enabled(False)
params = yaml.safe_load(open(REF / "src" / "config" / "models.yaml"))["model_params"]
params = params["stitching_retargeting_module_params"]
manifest = []
nets = {}
for key, part in PARTS.items():
    net = modules.stitching_retargeting_network.StitchingRetargetingNetwork(**params[key]).eval()
    manifest += fill_counter(net, SEED, f"{part}.")
    nets[key] = net
wrapper = object.__new__(LivePortraitWrapper)
wrapper.stitching_retargeting_module = nets


def inp(name, shape, low, high):
    return counter_input(SEED, name, shape, low, high)


t = {
    "pitch_logits": inp("pitch_logits", (FRAMES, 66), -4, 4),
    "yaw_logits": inp("yaw_logits", (FRAMES, 66), -4, 4),
    "roll_logits": inp("roll_logits", (FRAMES, 66), -4, 4),
    "kp": inp("kp", (FRAMES, KP, 3), -0.8, 0.8),
    "exp": inp("exp", (FRAMES, KP, 3), -0.1, 0.1),
    "scale": inp("scale", (FRAMES, 1), 1.2, 2.0),
    "t": inp("t", (FRAMES, 3), -0.2, 0.2),
    "kp_source": inp("kp_source", (FRAMES, KP, 3), -0.8, 0.8),
    "kp_driving": inp("kp_driving", (FRAMES, KP, 3), -0.8, 0.8),
    "lip_ratio": inp("lip_ratio", (FRAMES, 2), 0, 0.8),
    "eye_ratio": inp("eye_ratio", (FRAMES, 3), 0, 0.8),
}
for axis in ("pitch", "yaw", "roll"):
    t[axis] = headpose_pred_to_degree(t[f"{axis}_logits"])
t["rotation"] = get_rotation_matrix(t["pitch"], t["yaw"], t["roll"])
kp_info = {k: t[k].clone() for k in ("kp", "exp", "scale", "t")}
kp_info.update({axis: t[f"{axis}_logits"].clone() for axis in ("pitch", "yaw", "roll")})
t["transformed"] = wrapper.transform_keypoint(kp_info)
t["stitching_mlp"] = nets["stitching"](torch.cat([t["kp_source"].reshape(FRAMES, -1), t["kp_driving"].reshape(FRAMES, -1)], 1))
t["stitched"] = wrapper.stitching(t["kp_source"], t["kp_driving"])
t["stitched_one_source"] = wrapper.stitching(t["kp_source"][:1].repeat(FRAMES, 1, 1), t["kp_driving"])
t["lip_delta"] = wrapper.retarget_lip(t["kp_source"], t["lip_ratio"])
t["eye_delta"] = wrapper.retarget_eye(t["kp_source"], t["eye_ratio"])
# The inputs were not changed in place (stitching clones, transform_keypoint got copies).
assert torch.equal(t["kp_driving"], inp("kp_driving", (FRAMES, KP, 3), -0.8, 0.8))
for name in ("stitched", "lip_delta", "eye_delta", "transformed"):
    moved = (t[name] - (t["kp_driving"] if name == "stitched" else 0)).abs().max().item()
    print(f"{name}: largest value or change {moved:.3g}")
    assert moved > 1e-2, name

OUT.mkdir(parents=True, exist_ok=True)
save_file({k: v.detach().to(torch.float32).contiguous() for k, v in sorted(t.items())}, str(OUT / "keypoints.safetensors"))
info = {
    "seed": SEED,
    "frames": FRAMES,
    "keypoints": KP,
    "stitching_retargeting_module_params": params,
    "versions": {"torch": torch.__version__.split("+")[0], "numpy": np.__version__},
}
head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items())
rows = ",\n".join(f"  {json.dumps(list(entry))}" for entry in manifest)
with open(OUT / "manifest.json", "w") as f:
    f.write(f'{{\n{head},\n "tensors": [\n{rows}\n ]\n}}\n')
json.load(open(OUT / "manifest.json"))
print({k: tuple(v.shape) for k, v in t.items()})
print(f"{len(manifest)} tensors, {sum(int(np.prod(s)) for _, s in manifest)} values")
