#!/usr/bin/env python3
"""PyTorch's and onnxruntime's side of the Kokoro-82M CPU speed comparison
(benches/kokoro_cpu.rs runs it in the same run and interleaves its runs with candle's).

Synthesises the same phoneme chunks the Rust side does (a JSON list of phoneme strings, each
at most 510 phonemes, from --chunks), with voice --voice at speed 1:
  - PyTorch: kokoro 0.9.4's KModel in f32, its weights from our converted safetensors
    (KModel's weight_g/weight_v recomputed from the folded weights), cached as a state-dict
    .pth next to them (--pth; never in the repository);
  - onnxruntime: the published kokoro-v1.0.int8.onnx (int8 weights, dynamic quantisation: not
    f32; no f32 ONNX export is published), skipped when the file is absent.
Both use --threads threads (torch.set_num_threads, ORT intra_op_num_threads, inter_op 1).

Without --serve, prints one JSON line with each side's median seconds over --runs warm runs.
With --serve, prints one JSON line when ready (load times, audio seconds, peak RSS), then
answers each line "torch" or "ort" read on standard input with the seconds of one synthesis of
all the chunks.

  /work/venv/bin/python tools/bench_kokoro_torch.py --weights-dir /work/kokoro_weights \
      --chunks chunks.json --threads 2 --runs 3
"""
import argparse
import contextlib
import io
import json
import os
import pathlib
import resource
import statistics
import sys
import time
import warnings

import numpy as np

SAMPLE_RATE = 24000
VOICE_ROWS, STYLE_DIM = 510, 256


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kokoro_config() -> dict:
    import importlib.util

    spec = importlib.util.find_spec("kokoro_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("kokoro_onnx is not installed: its config.json is Kokoro's config")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "config.json"
    return json.loads(path.read_text())


def make_pth(safetensors_path: pathlib.Path, pth: pathlib.Path, config: dict) -> None:
    """A KModel state dict (five parts, keys without the part prefix) from our safetensors."""
    import torch
    from kokoro.model import KModel
    from safetensors.torch import load_file

    ours = load_file(str(safetensors_path))
    empty = pth.with_suffix(".empty.pth")
    torch.save({}, empty)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            km = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty))
    finally:
        empty.unlink(missing_ok=True)
    parts, missing = {}, []
    for part in ("bert", "bert_encoder", "predictor", "text_encoder", "decoder"):
        state = {}
        for key, ref in getattr(km, part).state_dict().items():
            full = f"{part}.{key}"
            if full in ours:
                state[key] = ours[full].to(ref.dtype).reshape(ref.shape)
            elif key.endswith(("weight_g", "weight_v")) and f"{full[:-len('weight_g')]}weight" in ours:
                w = ours[f"{full[:-len('weight_g')]}weight"].to(torch.float32)
                # g = |W| over every axis but weight_norm's dim (g's axes of size 1), v = W; where
                # |W| = 0 (pruned rows: there are some) v = 1, else g * v / |v| would be 0 / 0.
                g_shape = ref.shape if key.endswith("weight_g") else getattr(km, part).state_dict()[key[:-1] + "g"].shape
                axes = [i for i, n in enumerate(g_shape) if n == 1]
                g = torch.linalg.vector_norm(w, dim=axes, keepdim=True)
                state[key] = g.reshape(ref.shape) if key.endswith("weight_g") else torch.where(g == 0, 1.0, w)
            else:  # AdaIN's norm.weight/bias (ones/zeros), bert.pooler (unused): KModel's init
                missing.append(full)
                state[key] = ref.clone()
        parts[part] = state
    tmp = pth.with_suffix(".tmp")
    torch.save(parts, tmp)
    os.replace(tmp, pth)
    # Complete, so that KModel's strict load_state_dict succeeds: its fallback strips 7 characters
    # ("module.") off every key and loads non-strictly, which would silently load nothing.
    print(f"wrote {pth}; {len(missing)} KModel tensors not in the safetensors keep their init "
          f"(e.g. {missing[:3]})", file=sys.stderr)


def load_torch(weights_dir: pathlib.Path, pth: pathlib.Path, threads: int):
    import torch
    from kokoro.model import KModel

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    config = kokoro_config()
    if not pth.exists():
        make_pth(weights_dir / "kokoro-v1_0.safetensors", pth, config)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(pth)).eval()
    saved = torch.load(pth, map_location="cpu", weights_only=True)
    for part, state in saved.items():  # the strict load succeeded: every tensor is ours
        assert set(state) == set(getattr(model, part).state_dict()), f"{pth}: {part} is incomplete; delete it"
    return model


def load_ort(onnx: pathlib.Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights-dir", type=pathlib.Path, required=True)
    p.add_argument("--chunks", type=pathlib.Path, required=True, help="JSON list of phoneme strings")
    p.add_argument("--pth", type=pathlib.Path, help="cached state dict (default WEIGHTS_DIR/kokoro-v1_0.bench.pth)")
    p.add_argument("--voice", default="af_heart")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    import torch

    chunks = json.loads(args.chunks.read_text())
    pack = np.fromfile(args.weights_dir / "voices" / f"{args.voice}.bin", dtype="<f4").reshape(VOICE_ROWS, STYLE_DIM)
    vocab = kokoro_config()["vocab"]
    ids = [[vocab[c] for c in ps if c in vocab] for ps in chunks]
    styles = [pack[len(i) - 1][None, :].astype(np.float32) for i in ids]

    started = time.perf_counter()
    model = load_torch(args.weights_dir, args.pth or args.weights_dir / "kokoro-v1_0.bench.pth", args.threads)
    torch_load_s = time.perf_counter() - started
    torch_styles = [torch.from_numpy(s) for s in styles]

    def run_torch() -> int:
        with torch.inference_mode():
            return sum(int(model(ps, s, 1.0).numel()) for ps, s in zip(chunks, torch_styles))

    torch_samples = run_torch()  # warm-up
    torch_peak_mb = peak_rss_mb()

    onnx = args.weights_dir / "kokoro-v1.0.int8.onnx"
    sess, ort_load_s, ort_samples = None, None, None
    if onnx.exists():
        started = time.perf_counter()
        sess = load_ort(onnx, args.threads)
        ort_load_s = time.perf_counter() - started
    feeds = [{"tokens": np.array([[0, *i, 0]], dtype=np.int64), "style": s, "speed": np.array([1.0], dtype=np.float32)}
             for i, s in zip(ids, styles)]

    def run_ort() -> int:
        return sum(int(sess.run(None, f)[0].size) for f in feeds)

    if sess is not None:
        ort_samples = run_ort()  # warm-up

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    info = {"threads": args.threads, "torch": torch.__version__, "torch_load_s": torch_load_s,
            "torch_audio_s": torch_samples / SAMPLE_RATE, "torch_peak_rss_mb": torch_peak_mb,
            "ort": __import__("onnxruntime").__version__ if sess is not None else None,
            "ort_load_s": ort_load_s, "ort_audio_s": ort_samples / SAMPLE_RATE if ort_samples else None,
            "process_peak_rss_mb": peak_rss_mb(), "chunks": len(chunks), "phonemes": sum(map(len, ids))}
    if args.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            side = line.strip()
            if side == "torch":
                print(timed(run_torch), flush=True)
            elif side == "ort" and sess is not None:
                print(timed(run_ort), flush=True)
            else:
                print("nan", flush=True)
        return
    runs = max(args.runs, 1)
    info["torch_median_s"] = statistics.median(timed(run_torch) for _ in range(runs))
    if sess is not None:
        info["ort_median_s"] = statistics.median(timed(run_ort) for _ in range(runs))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
