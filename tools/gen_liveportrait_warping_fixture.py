#!/usr/bin/env python3
"""Golden fixture for LivePortrait's warping module W (real/tests/liveportrait_warping.rs).

Builds the reference's `WarpingNetwork` (with its `DenseMotionNetwork`) twice, fills every
floating state_dict tensor from the counter-based generator (tools/counter_weights.py, identical
in Rust: real/tests/common/counter.rs) and runs it in eval mode:

  - `full`: models.yaml's `warping_module_params` (21 keypoints, the 32 x 16 x 64 x 64 feature
    volume, the 5-level hourglass of 32..1024 channels, compress 4), batch 1: the published
    network's shapes and tensor names;
  - `tiny`: the same code at a size a debug build runs in a second (3 keypoints, a
    4 x 4 x 16 x 12 volume, a 2-level hourglass), batch 2 and a non-square volume, so that a
    swapped axis or a batch mix-up shows.

Inputs: the feature volume is the counter generator's uniform stream in [-1, 1) (the Rust side
rebuilds it with `common::counter::uniform_input`), the source and driving keypoints are drawn
the same way in [-0.8, 0.8) and also stored. Outputs, sampled (tools/liveportrait_fixture_common.py
`sampled`: 4096 evenly spaced elements and their flat indices, all of a smaller tensor): the
dense motion's `mask` (the softmax over 1 + num_kp, to locate a mismatch), `deformation`,
`occlusion_map` and the warped features `out`.

Written to real/tests/fixtures/liveportrait_warping/ (no weights):
  - warping.safetensors: `full.*` and `tiny.*` keypoints and sampled outputs;
  - manifest.json: per case the counter seed, the config, the inputs' counter names and ranges,
    and every state_dict tensor's (name, shape).

The script also prints how far the outputs move when the port gets something plausible wrong
(the keypoint variance, the grid's axis order), to show the fixture would notice.

Run once by hand (CI only reads the committed files; torch 2.9.1, safetensors 0.8.0, numpy
2.4.6; about a minute on 2 threads):
  /work/venv/bin/python tools/gen_liveportrait_warping_fixture.py
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import counter_input, fill_counter, reference, sampled  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_warping"
SEED = 20261201
KP_LOW, KP_HIGH = -0.8, 0.8
FEATURE_LOW, FEATURE_HIGH = -1.0, 1.0

torch.set_num_threads(2)
modules = reference()
from src.modules.warping_network import WarpingNetwork  # noqa: E402
from src.modules import util as ref_util  # noqa: E402

CASES = {
    # models.yaml's warping_module_params.
    "full": dict(
        batch=1, depth=16, height=64, width=64,
        params=dict(num_kp=21, block_expansion=64, max_features=512, num_down_blocks=2, reshape_channel=32,
                    estimate_occlusion_map=True,
                    dense_motion_params=dict(block_expansion=32, max_features=1024, num_blocks=5,
                                             reshape_depth=16, compress=4)),
    ),
    "tiny": dict(
        batch=2, depth=4, height=16, width=12,
        params=dict(num_kp=3, block_expansion=4, max_features=16, num_down_blocks=2, reshape_channel=4,
                    estimate_occlusion_map=True,
                    dense_motion_params=dict(block_expansion=8, max_features=32, num_blocks=2,
                                             reshape_depth=4, compress=2)),
    ),
}

tensors = {}
manifest = {}
for case, spec in CASES.items():
    p = spec["params"]
    net = WarpingNetwork(**p).eval()
    weights = fill_counter(net, SEED)
    b, c, d, h, w = spec["batch"], p["reshape_channel"], spec["depth"], spec["height"], spec["width"]
    feature = counter_input(SEED, f"{case}.feature", (b, c, d, h, w), FEATURE_LOW, FEATURE_HIGH)
    kp_source = counter_input(SEED, f"{case}.kp_source", (b, p["num_kp"], 3), KP_LOW, KP_HIGH)
    kp_driving = counter_input(SEED, f"{case}.kp_driving", (b, p["num_kp"], 3), KP_LOW, KP_HIGH)

    captured = {}
    hook = net.dense_motion_network.register_forward_hook(lambda m, args, out: captured.update(out))

    def run():
        with torch.no_grad():
            return net(feature, kp_driving, kp_source)

    result = run()
    hook.remove()
    mask = captured["mask"]
    print(f"{case}: out {tuple(result['out'].shape)} max |out| {result['out'].abs().max().item():.4g}, "
          f"deformation {tuple(result['deformation'].shape)} in [{result['deformation'].min().item():.3g}, "
          f"{result['deformation'].max().item():.3g}], occlusion in [{result['occlusion_map'].min().item():.3g}, "
          f"{result['occlusion_map'].max().item():.3g}], mask max {mask.max().item():.3g} "
          f"(uniform {1 / (p['num_kp'] + 1):.3g})")

    # Sensitivity: what a port could get wrong must move the outputs well past the test's 1e-4.
    def moved(patch, undo):
        patch()
        try:
            other = run()
        finally:
            undo()
        return max(((other[k] - result[k]).abs().max() / result[k].abs().max().clamp(min=1)).item()
                   for k in ("out", "deformation"))

    real_kp2gaussian = ref_util.kp2gaussian
    dm = sys.modules[type(net.dense_motion_network).__module__]
    change = moved(lambda: setattr(dm, "kp2gaussian", lambda kp, spatial_size, kp_variance:
                                   real_kp2gaussian(kp, spatial_size, 0.02)),
                   lambda: setattr(dm, "kp2gaussian", real_kp2gaussian))
    print(f"{case}: sensitivity: keypoint variance 0.02 for 0.01 moves out/deformation by {change:.3g}")
    assert change > 1e-2, change
    real_grid = ref_util.make_coordinate_grid

    def swapped_grid(spatial_size, ref, **kwargs):
        return real_grid(spatial_size, ref).flip(-1)

    change = moved(lambda: setattr(dm, "make_coordinate_grid", swapped_grid),
                   lambda: setattr(dm, "make_coordinate_grid", real_grid))
    print(f"{case}: sensitivity: grid as (z, y, x) for (x, y, z) moves out/deformation by {change:.3g}")
    assert change > 1e-2, change

    tensors[f"{case}.kp_source"] = kp_source
    tensors[f"{case}.kp_driving"] = kp_driving
    sampled(tensors, f"{case}.mask", mask)
    for key in ("deformation", "occlusion_map", "out"):
        sampled(tensors, f"{case}.{key}", result[key])
    manifest[case] = {
        "seed": SEED,
        "config": p,
        "input": {"name": f"{case}.feature", "shape": [b, c, d, h, w], "low": FEATURE_LOW, "high": FEATURE_HIGH},
        "tensors": weights,
    }

OUT.mkdir(parents=True, exist_ok=True)
save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, str(OUT / "warping.safetensors"))
(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
print(f"wrote {OUT}")
