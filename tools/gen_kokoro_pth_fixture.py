#!/usr/bin/env python3
"""A tiny stand-in for Kokoro's published checkpoint layout (real/tests/kokoro_loading.rs).

`kokoro-v1_0.pth` is `torch.save` of a dict of five state dicts (bert, bert_encoder, predictor,
text_encoder, decoder) whose keys carry DataParallel's `module.` prefix. This writes the same
layout with two small tensors per part (values i + 0.5 · part index, so each is recognisable),
plus a copy with the `decoder` part missing, to test the loader's name mapping and refusals
without the 327 MB file.

Run once by hand (torch 2.9.1): /work/venv/bin/python tools/gen_kokoro_pth_fixture.py
"""
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_pth"
PARTS = ["bert", "bert_encoder", "predictor", "text_encoder", "decoder"]

checkpoint = {}
for k, part in enumerate(PARTS):
    checkpoint[part] = {
        "module.layer.weight_g": torch.arange(3, dtype=torch.float32).reshape(3, 1, 1) + 0.5 * k,
        "module.layer.weight_v": torch.arange(6, dtype=torch.float32).reshape(3, 2, 1) + 0.5 * k,
    }
OUT.mkdir(parents=True, exist_ok=True)
torch.save(checkpoint, OUT / "tiny.pth")
del checkpoint["decoder"]
torch.save(checkpoint, OUT / "no_decoder.pth")
print(sorted(p.name for p in OUT.iterdir()))
