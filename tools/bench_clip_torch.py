#!/usr/bin/env python3
"""PyTorch's side of the CPU speed comparison (benches/clip_cpu.rs runs it in the same run).

Builds full-size CLIP ViT-B/32 or ViT-L/14 (transformers' CLIPModel) with the counter-based
weights that the Rust side generates too (tools/counter_weights.py), so both score the same
model on the same inputs: the text features of one 77-token prompt and the image features of 5
preprocessed 224x224 frames (the self-check's work per model). Prints one JSON line:
{"model", "threads", "runs", "median_ms", "min_ms", "load_s"}.

  VORTEX_TORCH_PYTHON=/tmp/v/bin/python cargo bench -p vortex-real --bench clip_cpu
or alone:
  /tmp/v/bin/python tools/bench_clip_torch.py --model b32 --threads 2 --runs 5
With --write DIR it also writes the model as a Hugging Face directory (model.safetensors,
config.json, a tokenizer.json with CLIP's 49,408 ids) and DIR/config.yaml naming it, for
`vortex models check --config DIR/config.yaml` (load times, cold and warm page cache).
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import counter_weights  # noqa: E402

SEED = 20261202  # benches/clip_cpu.rs uses the same
TEXT = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "bos_token_id": 49406, "eos_token_id": 2, "pad_token_id": 1}
CONFIGS = {
    "b32": {"projection_dim": 512,
            "text_config": {**TEXT, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                            "num_attention_heads": 8},
            "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                              "num_attention_heads": 12, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"}},
    "l14": {"projection_dim": 768,
            "text_config": {**TEXT, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                            "num_attention_heads": 12},
            "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                              "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "hidden_act": "quick_gelu"}},
}


def inputs():
    """The inputs benches/clip_cpu.rs builds too: a formula, no randomness to share."""
    ids = [49406] + [(i * 7919) % 49000 + 300 for i in range(20)] + [49407] * 56
    n = 5 * 3 * 224 * 224
    pixels = np.sin(np.arange(n, dtype=np.float64) * 0.001).astype(np.float32).reshape(5, 3, 224, 224)
    return torch.tensor([ids]), torch.from_numpy(pixels)


def write_model(folder: pathlib.Path, name: str, state) -> None:
    from safetensors.torch import save_file
    from transformers import CLIPTokenizerFast
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(CONFIGS[name], indent=1))
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    vocab += [f"tok{i}" for i in range(49406 - len(vocab))] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    fast = CLIPTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"))
    (folder / "tokenizer.json").write_text(fast.backend_tokenizer.to_str())
    entry = f"  clip_{name}:\n    weights: model.safetensors\n    tokenizer: tokenizer.json\n    config: config.json\n    dtype: f32\n"
    (folder / "config.yaml").write_text(f"orchestration: {{}}\nmodels:\n{entry}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=CONFIGS, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5, help="timed runs (at least 1)")
    p.add_argument("--write", type=pathlib.Path)
    p.add_argument("--serve", action="store_true",
                   help="after loading, print 'ready', then time one run per line read on standard input "
                        "and print its milliseconds (benches/clip_cpu.rs interleaves these with candle's runs)")
    args = p.parse_args()
    args.runs = max(args.runs, 1)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = CLIPModel(CLIPConfig(**CONFIGS[args.model])).eval()
    state = {name: torch.from_numpy(counter_weights.tensor(SEED, name, v.shape))
             for name, v in model.state_dict().items() if v.is_floating_point()}
    model.load_state_dict(state, strict=False)
    load_s = time.perf_counter() - started
    if args.write:
        write_model(args.write, args.model, state)
    ids, pixels = inputs()
    if args.serve:
        with torch.inference_mode():
            text, image = model.get_text_features(input_ids=ids), model.get_image_features(pixel_values=pixels)
            print(json.dumps({"ready": True, "load_s": load_s, "checksum": float(text.sum() + image.sum())}), flush=True)
            for _ in sys.stdin:
                t0 = time.perf_counter()
                model.get_text_features(input_ids=ids)
                model.get_image_features(pixel_values=pixels)
                print((time.perf_counter() - t0) * 1e3, flush=True)
        return
    times = []
    with torch.inference_mode():
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            text = model.get_text_features(input_ids=ids)
            image = model.get_image_features(pixel_values=pixels)
            elapsed = (time.perf_counter() - t0) * 1e3
            if i > 0:  # the first run warms up
                times.append(elapsed)
    checksum = float(text.sum() + image.sum())
    print(json.dumps({"model": args.model, "threads": args.threads, "runs": args.runs,
                      "median_ms": statistics.median(times), "min_ms": min(times), "load_s": load_s,
                      "checksum": checksum}))


if __name__ == "__main__":
    main()
