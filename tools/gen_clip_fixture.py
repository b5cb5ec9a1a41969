#!/usr/bin/env python3
"""Golden fixture for the CLIP parity test (real/tests/clip_parity.rs).

Builds a tiny CLIP with random weights in PyTorch (transformers' CLIPModel, the upstream
reference), runs it on fixed inputs and writes, under real/tests/fixtures/clip_tiny/:
  model.safetensors  the random weights, in the Hugging Face checkpoint layout
  config.json        the architecture
  golden.safetensors inputs (pixel_values, input_ids) and outputs (image_embeds, text_embeds:
                     get_image_features / get_text_features, before normalisation)

Run once by hand; CI only reads the committed files and never needs PyTorch:
  python3 -m venv /tmp/v && /tmp/v/bin/pip install torch==2.9.1 transformers==4.57.1 safetensors==0.8.0 numpy==2.4.6
  /tmp/v/bin/python tools/gen_clip_fixture.py
torch from PyPI is a CUDA 12.8 build (about 900 MB plus about 3 GB of nvidia-* wheels, which
`import torch` needs even on a machine without a GPU); the script runs on the CPU in seconds.
"""
import json
import pathlib

import torch
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "clip_tiny"

# vocab_size 100 with <|endoftext|> = 99, the largest id, as in CLIP (the text tower pools at the
# largest id in candle and at the first end-of-text id in transformers: the same position here).
CONFIG = {
    "projection_dim": 16,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
        "bos_token_id": 98, "eos_token_id": 99, "pad_token_id": 0,
    },
    "vision_config": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu",
    },
}


def main() -> None:
    torch.manual_seed(0)
    config = CLIPConfig(text_config=CONFIG["text_config"], vision_config=CONFIG["vision_config"],
                        projection_dim=CONFIG["projection_dim"],
                        logit_scale_init_value=CONFIG["logit_scale_init_value"])
    model = CLIPModel(config).eval()
    # Random init leaves LayerNorms at 1/0 and biases at 0: perturb every tensor so the fixture
    # checks all of them.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    save_file(state, OUT / "model.safetensors")
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    pixel_values = torch.randn(3, 3, 32, 32)
    input_ids = torch.tensor([[98, 5, 17, 33, 61, 99], [98, 12, 99, 99, 99, 99]], dtype=torch.long)
    with torch.no_grad():
        image_embeds = model.get_image_features(pixel_values=pixel_values)
        text_embeds = model.get_text_features(input_ids=input_ids)
    save_file({
        "pixel_values": pixel_values.contiguous(),
        "input_ids": input_ids.to(torch.int64).contiguous(),
        "image_embeds": image_embeds.contiguous(),
        "text_embeds": text_embeds.contiguous(),
    }, OUT / "golden.safetensors", metadata={"torch": torch.__version__, "seed": "0"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
