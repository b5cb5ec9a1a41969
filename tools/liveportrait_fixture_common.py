"""Shared by the LivePortrait fixture scripts (tools/gen_liveportrait_*_fixture.py).

The reference is KwaiVGI/LivePortrait's `src/modules` (PyTorch), from a local checkout that is
never committed: set LIVEPORTRAIT_REF to the checkout's root (the folder holding `src/`), default
/work/liveportrait_ref. Only PyTorch is needed (the modules carry their own copies of timm's
helpers).

Full-size outputs are too large to commit (the appearance volume alone is 32x16x64x64 floats), so
a fixture stores a fixed, evenly spaced sample of each output's elements, with the flat indices
(int64) beside the values: `NAME.index` and `NAME.values`, plus `NAME.shape`. The Rust tests
compare exactly those elements.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import counter_weights  # noqa: E402

REF = Path(os.environ.get("LIVEPORTRAIT_REF", "/work/liveportrait_ref"))

#: Elements sampled from each large output.
SAMPLES = 4096


def reference():
    """Puts the reference checkout on sys.path and returns its `src.modules` package."""
    if not (REF / "src" / "modules" / "util.py").is_file():
        sys.exit(f"LIVEPORTRAIT_REF={REF} does not hold LivePortrait's src/modules/util.py")
    if str(REF) not in sys.path:
        sys.path.insert(0, str(REF))
    import src.modules as modules  # noqa: E402

    return modules


def fill_counter(module: torch.nn.Module, seed: int, prefix: str = "") -> list[tuple[str, list[int]]]:
    """Overwrites every floating tensor of `module`'s state dict (parameters and buffers) with the
    counter generator's values under `prefix + name`; returns the manifest (name, shape)."""
    manifest = []
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            full = prefix + name
            t.copy_(torch.from_numpy(counter_weights.tensor(seed, full, tuple(t.shape))))
            manifest.append((full, list(t.shape)))
    return manifest


def sampled(out: dict[str, torch.Tensor], name: str, t: torch.Tensor, n: int = SAMPLES) -> None:
    """Stores `n` evenly spaced elements of `t` (all of them when it has at most `n`)."""
    flat = t.detach().reshape(-1).to(torch.float32).cpu()
    if flat.numel() <= n:
        index = torch.arange(flat.numel(), dtype=torch.int64)
    else:
        index = torch.from_numpy(np.linspace(0, flat.numel() - 1, n).round().astype(np.int64))
    out[f"{name}.index"] = index
    out[f"{name}.values"] = flat[index].contiguous()
    out[f"{name}.shape"] = torch.tensor(list(t.shape), dtype=torch.int64)


def counter_input(seed: int, name: str, shape, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """An input drawn from the counter generator's uniform stream, scaled to [low, high): the
    Rust side can rebuild it instead of reading it from the fixture."""
    n = int(np.prod(shape))
    u = counter_weights.uniform(seed, name, n)
    v = low + (u + 1.0) / 2.0 * (high - low)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))
