"""Writes full-size LivePortrait checkpoints with counter-generated random weights, in the
published layout and format, for checking `vortex animate`'s loader and measuring its speed
where the real weights cannot be had (they cannot here: docs/real-mode.md).

    /work/venv/bin/python tools/liveportrait_random_checkpoints.py OUT_DIR [--seed 7]

OUT_DIR gets `base_models/{appearance_feature_extractor, motion_extractor, warping_module,
spade_generator}.pth` (plain state dicts, as published) and
`retargeting_models/stitching_retargeting_module.pth` (a dict of `retarget_shoulder`,
`retarget_mouth`, `retarget_eye` state dicts whose keys carry `module.`, as published): about
520 MB. The networks are the reference's (LIVEPORTRAIT_REF, see liveportrait_fixture_common.py)
built from its models.yaml; the weights are random, so the frames are not faces.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liveportrait_fixture_common import REF, fill_counter, reference  # noqa: E402


def save(state: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a checkpoint is written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    reference()
    from src.modules.appearance_feature_extractor import AppearanceFeatureExtractor
    from src.modules.motion_extractor import MotionExtractor
    from src.modules.spade_generator import SPADEDecoder
    from src.modules.stitching_retargeting_network import StitchingRetargetingNetwork
    from src.modules.warping_network import WarpingNetwork

    params = yaml.safe_load((REF / "src" / "config" / "models.yaml").read_text())["model_params"]
    base = {
        "appearance_feature_extractor": AppearanceFeatureExtractor(**params["appearance_feature_extractor_params"]),
        "motion_extractor": MotionExtractor(**params["motion_extractor_params"]),
        "warping_module": WarpingNetwork(**params["warping_module_params"]),
        "spade_generator": SPADEDecoder(**params["spade_generator_params"]),
    }
    for name, module in base.items():
        module.eval()
        fill_counter(module, args.seed, prefix=f"{name}.")
        save(module.state_dict(), args.out / "base_models" / f"{name}.pth")
        print(f"{name}: {sum(p.numel() for p in module.parameters()) / 1e6:.1f} M parameters")
    s = params["stitching_retargeting_module_params"]
    parts = {}
    for key, part in [("stitching", "retarget_shoulder"), ("lip", "retarget_mouth"), ("eye", "retarget_eye")]:
        net = StitchingRetargetingNetwork(**s[key])
        fill_counter(net, args.seed, prefix=f"{part}.")
        parts[part] = {f"module.{k}": v for k, v in net.state_dict().items()}
    save(parts, args.out / "retargeting_models" / "stitching_retargeting_module.pth")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
