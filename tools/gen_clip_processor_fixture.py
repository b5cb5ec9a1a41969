#!/usr/bin/env python3
"""Golden fixture for CLIP's preprocessing and tokenization (real/tests/clip_processor.rs).

transformers' CLIPImageProcessor (the slow one: Pillow's bicubic resize of the shortest side,
center crop, rescale, normalise) on non-square frames, and CLIPTokenizer on prompts shorter and
longer than the 77-token context. The frames are defined by a formula that the Rust test computes
too, so only the processor's outputs are committed; the tokenizer is a small CLIP BPE vocabulary
written here (the published 49,408-token one cannot be had offline), saved as the tokenizer.json
the production loader reads.

Writes real/tests/fixtures/clip_processor/: tokenizer.json, golden.json (prompts and ids),
pixels.safetensors (pixel_values per frame).

Run once by hand (CI only reads the committed files):
  /tmp/v/bin/python tools/gen_clip_processor_fixture.py   (the venv of gen_parity_shapes.py)
"""
import json
import pathlib
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPTokenizer, CLIPTokenizerFast
from transformers.models.clip.tokenization_clip import bytes_to_unicode

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "clip_processor"
SIZE = 56  # shortest edge and crop; the production models use 224, the resampling is the same code
FRAMES = [(320, 180), (180, 320), (61, 57)]  # (width, height)
PROMPTS = [
    "a news anchor in a studio, photorealistic",
    "A NEWS ANCHOR, 4K, 35mm -- studio lights!",
    "a photorealistic portrait of a calm news anchor in a bright television studio with soft "
    "lights, a blue background, a grey suit, a red tie, a wooden desk, a glass of water, a laptop, "
    "papers, a microphone, a city skyline behind the window at night, warm and cinematic, sharp "
    "focus on the eyes, shallow depth of field, high detail, film grain, 85mm lens, golden hour",
]
MERGES = ["t h", "th e</w>", "a n", "s t", "st u", "stu d", "stud i", "studi o</w>", "i n</w>",
          "o r</w>", "n e", "ne w", "new s</w>", "an c", "anc h", "anch or</w>"]


def splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & (2 ** 64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
    return z ^ (z >> 31)


def frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame `index`: a smooth gradient with noise on it (real frames are neither smooth nor
    noise). The Rust test computes the same formula."""
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            for c in range(3):
                noise = splitmix64((index << 40) ^ (y << 20) ^ (x << 2) ^ c) >> 58  # 0..63
                gradient = (x * 191 // max(width - 1, 1) + y * 64 // max(height - 1, 1) + 40 * c) % 192
                out[y, x, c] = gradient + noise
    return out


def tokenizer_files(folder: pathlib.Path):
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    for merge in MERGES:
        vocab.append(merge.replace(" ", ""))
    vocab += ["<|startoftext|>", "<|endoftext|>"]  # end-of-text last: the largest id, as in CLIP
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    processor = CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    pixels = {}
    for i, (w, h) in enumerate(FRAMES):
        image = Image.fromarray(frame(i, w, h), mode="RGB")
        pixels[f"frame{i}"] = processor(images=image, return_tensors="pt")["pixel_values"][0].contiguous()
    save_file(pixels, OUT / "pixels.safetensors", metadata={"size": str(SIZE), "frames": json.dumps(FRAMES)})

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = tokenizer_files(pathlib.Path(tmp))
        slow = CLIPTokenizer(vocab_file=str(vocab), merges_file=str(merges))
        fast = CLIPTokenizerFast(vocab_file=str(vocab), merges_file=str(merges))
        fast.save_pretrained(tmp)
        (OUT / "tokenizer.json").write_text((pathlib.Path(tmp) / "tokenizer.json").read_text())
        cases = []
        for prompt in PROMPTS:
            ids = slow(prompt, truncation=True, max_length=77)["input_ids"]
            assert ids == fast(prompt, truncation=True, max_length=77)["input_ids"], prompt
            full = len(slow(prompt)["input_ids"])
            cases.append({"prompt": prompt, "input_ids": ids, "untruncated_length": full})
            print(f"{len(ids):3} ids ({full} before truncation): {prompt[:40]!r}")
        assert any(c["untruncated_length"] > 77 for c in cases), "one prompt must be cut"
    golden = {"size": SIZE, "frames": FRAMES, "context": 77, "cases": cases, "torch": torch.__version__}
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
