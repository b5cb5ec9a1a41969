"""PyTorch's side of benches/liveportrait.rs: the reference LivePortrait networks (KwaiVGI's
`src/modules`, from the local, uncommitted checkout LIVEPORTRAIT_REF; see
liveportrait_fixture_common.py) loaded from the same checkpoints as candle's side, doing the same
work per run:

- the source, once: F (feature volume) and M (keypoint info) on a 256 x 256 crop, the pose bins to
  degrees and Eqn. 2 for the source keypoints;
- per batch of frames: the frames' rotated keypoints, the lip and eye retargeting deltas, the
  stitching correction, W and G, and the 512 x 512 frames to 8-bit RGB on the host (candle's side
  turns them into frames too).

    python tools/bench_liveportrait_torch.py --weights-dir DIR --frames 4 --batch 1 --threads 2 \
        --device cpu --serve

With --serve it loads once, prints one JSON line (load seconds, peak RSS, device), then answers
each line on stdin ("f32", or "f16" for the reference's own CUDA setting: fp16 autocast) with one
JSON line: {"source_s": ..., "frames_s": ..., "peak_vram_mb": ...}. Without --serve it does one f32
run and prints it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liveportrait_fixture_common import REF, reference  # noqa: E402

FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "warping_module": "base_models/warping_module.pth",
    "spade_generator": "base_models/spade_generator.pth",
}


def load(weights: Path, device: torch.device) -> dict:
    """The five networks from the published checkpoints under `weights`, strict, in eval mode."""
    reference()
    from src.modules.appearance_feature_extractor import AppearanceFeatureExtractor
    from src.modules.motion_extractor import MotionExtractor
    from src.modules.spade_generator import SPADEDecoder
    from src.modules.stitching_retargeting_network import StitchingRetargetingNetwork
    from src.modules.warping_network import WarpingNetwork

    params = yaml.safe_load((REF / "src" / "config" / "models.yaml").read_text())["model_params"]
    nets = {
        "appearance_feature_extractor": AppearanceFeatureExtractor(**params["appearance_feature_extractor_params"]),
        "motion_extractor": MotionExtractor(**params["motion_extractor_params"]),
        "warping_module": WarpingNetwork(**params["warping_module_params"]),
        "spade_generator": SPADEDecoder(**params["spade_generator_params"]),
    }
    for name, path in FILES.items():
        nets[name].load_state_dict(torch.load(weights / path, map_location="cpu", weights_only=True))
    stitching = torch.load(
        weights / "retargeting_models/stitching_retargeting_module.pth", map_location="cpu", weights_only=True
    )
    s = params["stitching_retargeting_module_params"]
    for key, part in [("stitching", "retarget_shoulder"), ("lip", "retarget_mouth"), ("eye", "retarget_eye")]:
        net = StitchingRetargetingNetwork(**s[key])
        net.load_state_dict({k.removeprefix("module."): v for k, v in stitching[part].items()})
        nets[key] = net
    return {k: v.eval().to(device) for k, v in nets.items()}


def keypoints(kp, rot, exp, scale, t) -> torch.Tensor:
    """Eqn. 2: s (x_c R + exp) + t, with t's z dropped."""
    out = kp @ rot + exp
    out = out * scale[..., None]
    out[:, :, 0:2] += t[:, None, 0:2]
    return out


def run(nets: dict, crop: torch.Tensor, frames: int, batch: int, half: bool) -> dict:
    """One run: the source once, then every frame; seconds of each, the device synchronised."""
    from src.utils.camera import get_rotation_matrix as rotation
    from src.utils.camera import headpose_pred_to_degree as degrees

    dev = crop.device
    ctx = torch.autocast(device_type="cuda", dtype=torch.float16) if half else contextlib.nullcontext()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        sync()
        started = time.perf_counter()
        with ctx:
            volume = nets["appearance_feature_extractor"](crop)
            info = nets["motion_extractor"](crop)
        volume = volume.float()
        info = {k: v.float() for k, v in info.items()}
        n = info["kp"].shape[1] // 3
        pose = [degrees(info[k]) for k in ("pitch", "yaw", "roll")]
        canonical, exp = info["kp"].reshape(1, n, 3), info["exp"].reshape(1, n, 3)
        kp_s = keypoints(canonical, rotation(*pose), exp, info["scale"], info["t"])
        sync()
        source_s = time.perf_counter() - started

        started = time.perf_counter()
        done = 0
        while done < frames:
            b = min(batch, frames - done)
            i = torch.arange(done, done + b, device=dev, dtype=torch.float32)
            # A small sway, as the driver gives (the values do not change the work).
            sway = 2.0 * torch.sin(i / 24.0)
            rot = rotation(pose[0] + sway, pose[1] + sway, pose[2] + 0.5 * sway)
            rep = lambda x: x.expand(b, *x.shape[1:])  # noqa: E731
            kp_d = keypoints(rep(canonical), rot, rep(exp), rep(info["scale"]), rep(info["t"]))
            src = rep(kp_s)
            lip = torch.stack([torch.zeros_like(i), 0.4 + 0.3 * torch.sin(i)], 1)
            eye = torch.full((b, 3), 0.35, device=dev)
            feat = lambda extra: torch.cat([src.reshape(b, -1), extra.reshape(b, -1)], 1)  # noqa: E731
            kp_d = kp_d + nets["lip"](feat(lip)).reshape(b, n, 3) + nets["eye"](feat(eye)).reshape(b, n, 3)
            delta = nets["stitching"](feat(kp_d))
            kp_d = kp_d + delta[:, : 3 * n].reshape(b, n, 3)
            kp_d[..., :2] += delta[:, 3 * n : 3 * n + 2].reshape(b, 1, 2)
            with ctx:
                warped = nets["warping_module"](rep(volume), kp_source=src, kp_driving=kp_d)
                image = nets["spade_generator"](feature=warped["out"])
            frames_u8 = (image.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
            assert frames_u8.shape[1:] == (512, 512, 3), frames_u8.shape
            done += b
        frames_s = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {"source_s": source_s, "frames_s": frames_s, "peak_vram_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--serve", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.perf_counter()
    nets = load(args.weights_dir, device)
    load_s = time.perf_counter() - started
    # The same source the Rust side makes: a horizontal and vertical ramp, 256 x 256.
    ramp = torch.linspace(0, 1, 256)
    crop = torch.stack([ramp[None, :].expand(256, 256), ramp[:, None].expand(256, 256), torch.full((256, 256), 0.5)])
    crop = crop[None].to(device)
    run(nets, crop, min(args.frames, args.batch), args.batch, False)  # warm-up
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not args.serve:
        print(json.dumps(run(nets, crop, args.frames, args.batch, False)))
        return
    print(json.dumps({"load_s": load_s, "peak_rss_mb": peak_rss_mb, "device": str(device), "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        mode = line.strip()
        if mode not in ("f32", "f16"):
            print(json.dumps({"error": f"unknown mode {mode!r}"}), flush=True)
            continue
        print(json.dumps(run(nets, crop, args.frames, args.batch, mode == "f16")), flush=True)


if __name__ == "__main__":
    main()
