#!/usr/bin/env python3
"""Golden fixture for Flux end to end (real/tests/flux_pipeline.rs): diffusers' FluxPipeline with
Schnell's scheduler, fixed noise and counter-generated weights, against the production pipeline.

What it checks beyond the per-network fixtures: packing the noise into 2x2 patches, position ids
on a non-square grid (a 32x48 image), the Schnell schedule (4 steps, no shift, no guidance), the
CLIP-L pooled vector (the prompt padded with end-of-text to 77 tokens), T5 padding and truncation
(a prompt longer than the T5 sequence), unpacking, and the autoencoder's decode.

No weights are committed: the Rust test writes the counter-generated tensors named in
manifest.json into safetensors files and loads them through the production loader.

Writes real/tests/fixtures/flux_pipeline/: manifest.json (every tensor's name and shape per file,
and the seed), transformer.json, vae.json, t5.json, clip.json (architectures), t5_tokenizer.json,
clip_tokenizer.json, golden.safetensors (noise, packed latents and images per prompt), golden.json
(prompts).

Run once by hand after gen_clip_processor_fixture.py (it reuses that CLIP vocabulary):
  /tmp/v/bin/python tools/gen_flux_pipeline_fixture.py   (the venv of gen_parity_shapes.py)
"""
import json
import pathlib
import sys
import tempfile

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerFast, T5Config, T5EncoderModel

TOOLS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import gen_clip_processor_fixture as clip_vocab  # noqa: E402
import gen_flux_fixture as bfl  # noqa: E402
import gen_parity_shapes as shapes  # noqa: E402

OUT = TOOLS.parent / "real" / "tests" / "fixtures" / "flux_pipeline"
SEED = 20261201
HEIGHT, WIDTH = 32, 48  # a 4x6 latent, a 2x3 grid of packed tokens
T5_TOKENS = 16
STEPS = 4
WORDS = "a news anchor in the studio photorealistic calm bright television warm light portrait of".split()
PROMPTS = [
    "a news anchor in the studio",
    # 24 words: longer than the 16-token T5 sequence, so it is cut with its </s> kept last.
    "a photorealistic portrait of a calm news anchor in the bright television studio in warm light "
    "a calm anchor in a warm bright studio",
]

FLUX = {"in_channels": 64, "vec_in_dim": 64, "context_in_dim": 64, "hidden_size": 256, "mlp_ratio": 4.0,
        "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [16, 56, 56], "theta": 10000,
        "qkv_bias": True}
VAE = {"resolution": 64, "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "z_channels": 16,
       "scale_factor": 0.3611, "shift_factor": 0.1159}
T5 = {"vocab_size": 100, "d_model": 64, "d_kv": 32, "d_ff": 128, "num_layers": 1, "num_heads": 2,
      "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.0,
      "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
      "is_encoder_decoder": True, "tie_word_embeddings": False, "pad_token_id": 0, "eos_token_id": 1}


def counter_fill(model, rename=lambda n: n):
    """Counter weights keyed by (renamed) state-dict names; returns the manifest entries."""
    shapes.SEED = SEED
    shapes.counter_state(model, rename)
    return sorted({rename(k): list(v.shape) for k, v in model.state_dict().items() if v.is_floating_point()}.items())


def counter_fill_converted(model, convert):
    shapes.SEED = SEED
    shapes.counter_state_converted(model, convert)
    sd = model.state_dict()
    coded = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in sd.items() if v.is_floating_point()}
    return sorted((k, list(v.shape)) for k, v in convert(coded).items())


def t5_tokenizer(folder: pathlib.Path) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    path = folder / "t5_tokenizer.json"
    tok.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": SEED}

    bfl.FLUX = FLUX
    transformer = shapes.flux_transformer(FLUX)
    manifest["transformer"] = counter_fill_converted(transformer, bfl.flux_to_bfl)

    bfl.VAE = VAE
    vae = shapes.flux_autoencoder(VAE)
    manifest["vae"] = counter_fill_converted(vae, bfl.vae_to_bfl)

    tied = lambda name: "shared.weight" if name == "encoder.embed_tokens.weight" else name  # noqa: E731
    t5 = T5EncoderModel(T5Config(**T5))
    manifest["t5"] = counter_fill(t5, tied)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        vocab, merges = clip_vocab.tokenizer_files(tmp)
        clip_tok = CLIPTokenizer(vocab_file=str(vocab), merges_file=str(merges), model_max_length=77)
        vocab_size = len(json.loads(vocab.read_text()))
        # Flux's CLIP-L text encoder config, narrowed: OpenAI's legacy eos_token_id 2 (pooling at
        # the largest id, the first end-of-text), quick GELU, 77 positions.
        clip_cfg = {"vocab_size": vocab_size, "hidden_size": FLUX["vec_in_dim"], "intermediate_size": 128,
                    "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77,
                    "hidden_act": "quick_gelu", "bos_token_id": vocab_size - 2, "eos_token_id": 2, "pad_token_id": 1}
        clip = CLIPTextModel(CLIPTextConfig(**clip_cfg))
        manifest["clip"] = counter_fill(clip)
        t5_tok = t5_tokenizer(OUT)
        (OUT / "clip_tokenizer.json").write_text(
            json.dumps(json.loads(clip_vocab.CLIPTokenizerFast(vocab_file=str(vocab), merges_file=str(merges))
                                  .backend_tokenizer.to_str())))

    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False),
        vae=vae, text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok,
        transformer=transformer)
    noise = torch.randn(1, VAE["z_channels"], HEIGHT // 8, WIDTH // 8)
    packed_noise = FluxPipeline._pack_latents(noise, 1, VAE["z_channels"], HEIGHT // 8, WIDTH // 8)
    golden = {"noise": noise}
    for i, prompt in enumerate(PROMPTS):
        common = dict(prompt=prompt, height=HEIGHT, width=WIDTH, num_inference_steps=STEPS, guidance_scale=0.0,
                      max_sequence_length=T5_TOKENS, latents=packed_noise.clone())
        with torch.no_grad():
            golden[f"latent{i}"] = pipe(**common, output_type="latent").images
            golden[f"image{i}"] = pipe(**common, output_type="pt").images
        t5_ids = t5_tok(prompt, padding="max_length", max_length=T5_TOKENS, truncation=True)["input_ids"]
        print(f"prompt {i}: T5 ids {t5_ids}")

    for name, cfg in (("transformer", FLUX), ("vae", VAE), ("t5", T5), ("clip", clip_cfg)):
        (OUT / f"{name}.json").write_text(json.dumps(cfg, indent=1) + "\n")
    (OUT / "manifest.json").write_text(json.dumps(manifest) + "\n")
    (OUT / "golden.json").write_text(json.dumps({"prompts": PROMPTS, "height": HEIGHT, "width": WIDTH,
                                                 "steps": STEPS, "t5_tokens": T5_TOKENS}, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in golden.items()}, OUT / "golden.safetensors",
              metadata={"torch": torch.__version__, "seed": str(SEED)})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
