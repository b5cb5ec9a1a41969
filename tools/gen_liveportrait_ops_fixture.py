#!/usr/bin/env python3
"""Golden fixture for the ops LivePortrait needs and candle lacks (real/tests/liveportrait_ops.rs).

Runs PyTorch's own operations as LivePortrait's `src/modules` use them, and writes inputs and
outputs to real/tests/fixtures/liveportrait_ops/ops.safetensors (names `<op>.<case>.<tensor>`;
module tensors keep PyTorch's state_dict names under their prefix, `bn2d.running_var`):

  - `F.instance_norm` on 4-D inputs (`nn.InstanceNorm2d(affine=False)`, SPADE and ConvT2d);
  - `nn.BatchNorm2d` / `nn.BatchNorm3d` in eval, with non-trivial running statistics;
  - `torch.nn.utils.spectral_norm` on a Conv2d (and a bias-free 1x1 one, SPADE's `conv_s`), in
    eval after a few training-mode forward passes, so that u and v are realistic;
  - `F.conv3d` (stride 1) for kernels 1, 3 and 7 with paddings 0, 1 and 3, odd sizes, volumes
    smaller than the kernel;
  - `F.grid_sample` 5-D, trilinear, zeros padding, align_corners=False: interior points, points
    on the volume's edges and corners, slightly and far out of range, batch 2, a non-cubic
    volume;
  - depthwise `F.conv2d(groups=C)` (ConvNeXt V2's 7x7 `dwconv`, and a 3x3).

Small inputs are stored. The LivePortrait-sized cases (grid_sample over (22, 4, 16, 64, 64), the
dense motion network's 7x7x7 conv3d 137 -> 22 over 16x64x64, a 3x3x3 conv3d over 32 channels,
the 96-channel depthwise conv over 64x64) take their inputs from `counter_input` and their
weights from the counter generator (`fill_counter`, seed SEED), which the Rust test rebuilds;
their outputs are `sampled`.

Run once by hand (torch 2.9.1, numpy, safetensors; one thread, so the outputs do not depend on
the machine; about a minute, most of it the 130 GFLOP conv3d):
  /work/venv/bin/python tools/gen_liveportrait_ops_fixture.py
"""
import pathlib
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from liveportrait_fixture_common import counter_input, fill_counter, sampled  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "liveportrait_ops"
#: The counter generator's seed for the full-size cases' weights.
SEED = 11

torch.manual_seed(0)
torch.set_num_threads(1)
T = {}


def put(name, tensor):
    assert name not in T, name
    T[name] = tensor.detach().to(torch.float32).contiguous().clone()


def put_state(prefix, module):
    for k, v in module.state_dict().items():
        if v.is_floating_point():
            put(f"{prefix}.{k}", v)


def instance_norm_cases():
    x = torch.randn(2, 3, 5, 7) * 3 + 1
    put("in2d.x", x)
    put("in2d.y", F.instance_norm(x, eps=1e-5))
    put("in2d.y_eps_0.1", F.instance_norm(x, eps=0.1))
    # nn.InstanceNorm2d is the module SPADE builds.
    x = torch.randn(1, 4, 1, 2)
    put("in2d.x_two", x)
    put("in2d.y_two", torch.nn.InstanceNorm2d(4, affine=False)(x))


def batch_norm_cases():
    for name, bn, x in [
        ("bn2d", torch.nn.BatchNorm2d(4), torch.randn(2, 4, 5, 6) * 2 + 0.5),
        ("bn3d", torch.nn.BatchNorm3d(3), torch.randn(2, 3, 4, 5, 6) * 2 - 0.5),
    ]:
        c = bn.num_features
        with torch.no_grad():
            bn.weight.copy_(torch.randn(c))
            bn.bias.copy_(torch.randn(c))
            bn.running_mean.copy_(torch.randn(c))
            bn.running_var.copy_(torch.rand(c) * 3 + 0.1)
        bn.eval()
        put_state(name, bn)
        put(f"{name}.x", x)
        with torch.no_grad():
            put(f"{name}.y", bn(x))


def spectral_norm_cases():
    for name, conv, x in [
        ("sn", torch.nn.Conv2d(4, 6, 3, padding=1), torch.randn(2, 4, 5, 5)),
        ("sn_1x1", torch.nn.Conv2d(5, 3, 1, bias=False), torch.randn(1, 5, 4, 4)),
    ]:
        conv = torch.nn.utils.spectral_norm(conv)
        conv.train()
        with torch.no_grad():
            for _ in range(3):  # power iterations update weight_u / weight_v
                conv(torch.randn_like(x))
        conv.eval()
        put_state(name, conv)
        put(f"{name}.x", x)
        with torch.no_grad():
            put(f"{name}.y", conv(x))
            put(f"{name}.weight", conv.weight)


def conv3d_cases():
    cases = {  # (batch, in, out, D, H, W, kernel, padding)
        "k1": (2, 3, 5, 3, 4, 5, 1, 0),
        "k3": (1, 4, 3, 5, 6, 7, 3, 1),
        "k3_p0": (2, 2, 3, 4, 5, 7, 3, 0),
        "k7": (1, 3, 2, 5, 9, 8, 7, 3),
        "k7_small": (1, 2, 2, 2, 3, 4, 7, 3),
    }
    for name, (n, cin, cout, d, h, w, k, p) in cases.items():
        conv = torch.nn.Conv3d(cin, cout, k, padding=p)
        x = torch.randn(n, cin, d, h, w)
        put_state(f"conv3d.{name}", conv)
        put(f"conv3d.{name}.x", x)
        with torch.no_grad():
            put(f"conv3d.{name}.y", conv(x))
    # LivePortrait-sized: DenseMotionNetwork.mask (137 -> 22, 7x7x7, padding 3 over 16x64x64) and
    # a ResBlock3d-like 3x3x3 over 32 channels.
    for name, cin, cout, k, p, vol in [("mask", 137, 22, 7, 3, (16, 64, 64)), ("res", 32, 32, 3, 1, (16, 32, 32))]:
        conv = torch.nn.Conv3d(cin, cout, k, padding=p)
        fill_counter(conv, SEED, f"conv3d.{name}.")
        x = counter_input(SEED, f"conv3d.{name}.x", (1, cin, *vol))
        with torch.no_grad():
            sampled(T, f"conv3d.{name}.y", conv(x))


def grid_points():
    """(x, y, z) points: exact edges and corners, just in and out of range, far out, interior."""
    pts = []
    for v in [-1.0, 1.0]:
        pts += [(v, 0.1, -0.3), (0.2, v, 0.4), (-0.5, 0.6, v), (v, v, v), (v, -v, v)]
    for v in [-1.02, 1.03, -1.2, 1.25]:  # partly out: some corners in range
        pts += [(v, 0.0, 0.0), (0.3, v, -0.1), (0.1, 0.2, v), (v, v, 0.5)]
    for v in [-3.0, 2.5, -1.6, 5.0]:  # far out: nothing in range
        pts += [(v, 0.0, 0.0), (0.0, v, 0.0), (0.0, 0.0, v)]
    pts += [(0.0, 0.0, 0.0)]
    return torch.tensor(pts)


def grid_sample_cases():
    x = torch.randn(2, 3, 4, 5, 6)  # (N, C, D, H, W), non-cubic
    fixed = grid_points()
    total = 2 * 2 * 3 * 15  # the grid (N, Do, Ho, Wo) = (2, 2, 3, 15)
    rand = torch.rand(total - 2 * fixed.shape[0], 3) * 2.4 - 1.2
    # The fixed points in both batch entries (reversed in the second).
    grid = torch.cat([fixed, rand[: total // 2 - fixed.shape[0]], fixed.flip(0), rand[total // 2 - fixed.shape[0]:]])
    grid = grid.reshape(2, 2, 3, 15, 3)
    put("grid.x", x)
    put("grid.grid", grid)
    put("grid.y", F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    # WarpingNetwork / DenseMotionNetwork's use: (N*22, 4, 16, 64, 64), deformations slightly
    # past [-1, 1].
    x = counter_input(SEED, "grid.full.x", (22, 4, 16, 64, 64))
    grid = counter_input(SEED, "grid.full.grid", (22, 16, 64, 64, 3), -1.1, 1.1)
    sampled(T, "grid.full.y", F.grid_sample(x, grid, align_corners=False))


def depthwise_cases():
    for name, (n, c, h, w, k, p) in {"k7": (2, 5, 9, 11, 7, 3), "k3": (1, 4, 6, 5, 3, 1), "k7_small": (1, 3, 4, 5, 7, 3)}.items():
        conv = torch.nn.Conv2d(c, c, k, padding=p, groups=c)
        x = torch.randn(n, c, h, w)
        put_state(f"dw.{name}", conv)
        put(f"dw.{name}.x", x)
        with torch.no_grad():
            put(f"dw.{name}.y", conv(x))
    # ConvNeXt V2's first stage in the motion extractor: 96 channels over 64x64.
    conv = torch.nn.Conv2d(96, 96, 7, padding=3, groups=96)
    fill_counter(conv, SEED, "dw.full.")
    x = counter_input(SEED, "dw.full.x", (1, 96, 64, 64))
    with torch.no_grad():
        sampled(T, "dw.full.y", conv(x))


def main():
    assert torch.__version__.startswith("2.9.1"), torch.__version__
    instance_norm_cases()
    batch_norm_cases()
    spectral_norm_cases()
    conv3d_cases()
    grid_sample_cases()
    depthwise_cases()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ops.safetensors"
    # One metadata entry: safetensors writes several in a varying order, which would change the
    # file's bytes from run to run.
    save_file(T, str(path), metadata={"generator": f"tools/gen_liveportrait_ops_fixture.py, torch {torch.__version__}"})
    print(f"wrote {len(T)} tensors, {path.stat().st_size} bytes to {path}")


if __name__ == "__main__":
    main()
