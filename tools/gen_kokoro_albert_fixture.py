#!/usr/bin/env python3
"""Golden fixture for Kokoro's PL-BERT test (real/tests/kokoro_albert.rs).

Kokoro-82M's PL-BERT is transformers' `AlbertModel` (kokoro 0.9.4's `CustomAlbert` only returns
`last_hidden_state`), built as `AlbertConfig(vocab_size=n_token, **config["plbert"])`: AlbertConfig's
defaults for everything the plbert section leaves out (128-dim embeddings, `gelu_new`, one hidden
group of one layer, LayerNorm eps 1e-12, two token types) and the model's default attention
implementation (SDPA). Kokoro calls it with `attention_mask=(~text_mask).int()`, 1 on real tokens.

This script builds the same model offline with tiny dimensions (vocab 178, embedding 16, hidden 32,
4 heads, intermediate 64, 3 layers, 64 positions), draws every parameter from a seeded generator
(wider than ALBERT's init, so that LayerNorm gains and biases matter), runs a padded batch of two
sequences in eval mode and writes real/tests/fixtures/kokoro_albert/albert.safetensors (about 60 KB):
the parameters under transformers' names, `input_ids` and `attention_mask` (int64, [2, 12]; the
second row is 7 tokens then padding id 0 masked out) and `last_hidden_state` ([2, 12, 32]).

Run once by hand; CI only reads the committed file and never needs PyTorch:
  /work/venv/bin/python tools/gen_kokoro_albert_fixture.py
(torch 2.9.1, transformers 4.57.1, safetensors 0.8.0). One CPU thread, seconds.
"""
import pathlib

import torch
from safetensors.torch import save_file
from transformers import AlbertConfig, AlbertModel

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_albert"

torch.manual_seed(0)
torch.set_num_threads(1)

config = AlbertConfig(
    vocab_size=178,  # Kokoro's n_token
    embedding_size=16,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=64,
    num_hidden_layers=3,
    max_position_embeddings=64,
    dropout=0.1,  # as Kokoro's plbert section passes it; eval mode makes it irrelevant
)
assert config.hidden_act == "gelu_new" and config.num_hidden_groups == 1 and config.inner_group_num == 1
assert config.layer_norm_eps == 1e-12 and config.type_vocab_size == 2
model = AlbertModel(config).eval()

with torch.no_grad():
    for name, p in model.named_parameters():
        if "LayerNorm" in name or "layer_norm" in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.3 * torch.randn_like(p))
        else:
            p.copy_(0.5 * torch.randn_like(p) / max(1, p.shape[-1]) ** 0.5 if p.dim() == 2 and "embeddings" not in name
                    else torch.randn_like(p))

# Kokoro's input: [0, *phonemes, 0], padded with 0 and masked.
seq = 12
ids = torch.zeros(2, seq, dtype=torch.int64)
mask = torch.zeros(2, seq, dtype=torch.int64)
ids[0, 1:-1] = torch.randint(1, 178, (seq - 2,))
mask[0] = 1
ids[1, 1:6] = torch.randint(1, 178, (5,))
mask[1, :7] = 1

with torch.no_grad():
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state

T = {k: v.detach().to(torch.float32).contiguous().clone()
     for k, v in model.named_parameters() if not k.startswith("pooler.")}
T["input_ids"] = ids
T["attention_mask"] = mask
T["last_hidden_state"] = out.contiguous()

OUT.mkdir(parents=True, exist_ok=True)
save_file(T, str(OUT / "albert.safetensors"))
print(model.config._attn_implementation, {k: tuple(v.shape) for k, v in T.items()})
