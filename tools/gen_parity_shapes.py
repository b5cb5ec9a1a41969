#!/usr/bin/env python3
"""Golden fixtures at production shapes (real/tests/parity_shapes.rs), with no weights committed.

The tiny fixtures (gen_clip_fixture.py, gen_flux_fixture.py) check the loaders and the wiring; at
their sizes some real bugs stay under the tolerance. These check each model family where the
production models are sensitive: attention heads of the real width (Flux 128 with rotary axes
16/56/56, T5 and CLIP 64), a non-square image grid, an autoencoder whose decoder changes channels
and holds several channels per GroupNorm group, CLIP's OpenAI configuration (legacy pooling at the
first end-of-text token, the prompt padded with end-of-text tokens), in f32 and in bf16.

Weights come from the counter-based generator (tools/counter_weights.py, identical in Rust), so
only inputs, outputs and the generator's seed are committed: real/tests/fixtures/parity_shapes/.
The script also proves the fixture is sensitive: swapping tanh-GELU for exact GELU (or the reverse),
or a norm epsilon of 1e-5 for 1e-6, must move an output past the f32 tolerance, or it fails.

Run once by hand (CI only reads the committed files):
  python3 -m venv /tmp/v && /tmp/v/bin/pip install torch==2.9.1 transformers==4.57.1 \
      diffusers==0.35.2 safetensors==0.8.0 numpy==2.4.6
  /tmp/v/bin/python tools/gen_parity_shapes.py
"""
import copy
import json
import pathlib
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, T5Config, T5EncoderModel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import counter_weights  # noqa: E402
import gen_flux_fixture as bfl  # noqa: E402  (the diffusers -> Black Forest Labs name conversions)

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "parity_shapes"
SEED = 20261130
TOLERANCE = 1e-4  # f32, as in real/tests/parity_shapes.rs

FLUX = {"in_channels": 64, "vec_in_dim": 64, "context_in_dim": 64, "hidden_size": 256, "mlp_ratio": 4.0,
        "num_heads": 2, "depth": 2, "depth_single_blocks": 2, "axes_dim": [16, 56, 56], "theta": 10000,
        "qkv_bias": True}
VAE = {"resolution": 64, "ch": 64, "ch_mult": [1, 2], "num_res_blocks": 1, "z_channels": 16,
       "scale_factor": 0.3611, "shift_factor": 0.1159}
T5 = {"vocab_size": 1000, "d_model": 256, "d_kv": 64, "d_ff": 512, "num_layers": 1, "num_heads": 4,
      "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.0,
      "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
      "is_encoder_decoder": True, "tie_word_embeddings": False, "pad_token_id": 0, "eos_token_id": 1}
# OpenAI's published CLIP configs carry eos_token_id 2, which makes transformers pool at the
# largest id (the first <|endoftext|>), as candle does.
CLIP = {
    "projection_dim": 64, "logit_scale_init_value": 2.6592,
    "text_config": {"vocab_size": 1000, "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
                    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
    "vision_config": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "image_size": 64, "patch_size": 32, "hidden_act": "quick_gelu"},
}


def flux_transformer(cfg):
    """diffusers' Flux transformer with the sizes of a BFL-style architecture dict."""
    return FluxTransformer2DModel(
        patch_size=1, in_channels=cfg["in_channels"], num_layers=cfg["depth"],
        num_single_layers=cfg["depth_single_blocks"], attention_head_dim=cfg["hidden_size"] // cfg["num_heads"],
        num_attention_heads=cfg["num_heads"], joint_attention_dim=cfg["context_in_dim"],
        pooled_projection_dim=cfg["vec_in_dim"], guidance_embeds=False, axes_dims_rope=tuple(cfg["axes_dim"]))


def flux_autoencoder(cfg):
    """diffusers' AutoencoderKL in Flux's layout with the sizes of a BFL-style architecture dict."""
    levels = len(cfg["ch_mult"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg["z_channels"],
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg["ch"] * m for m in cfg["ch_mult"]), layers_per_block=cfg["num_res_blocks"],
        norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False, sample_size=cfg["resolution"],
        scaling_factor=cfg["scale_factor"], shift_factor=cfg["shift_factor"])


def counter_state(model, names=None):
    """Fills every float tensor of `model` from the counter generator, keyed by its own name."""
    state = {}
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            key = names(name) if names else name
            state[name] = torch.from_numpy(counter_weights.tensor(SEED, key, value.shape))
    model.load_state_dict(state, strict=False)
    return model.eval()


def counter_state_converted(model, convert):
    """Fills `model` (diffusers layout) with the counter weights of its converted (BFL) names: each
    diffusers element is traced through the conversion by a code it carries."""
    sd = model.state_dict()
    names = [k for k, v in sd.items() if v.is_floating_point()]
    coded = {k: (torch.arange(sd[k].numel(), dtype=torch.float64) + i * 2.0 ** 32).reshape(sd[k].shape)
             for i, k in enumerate(names)}
    converted = convert(coded)
    flat = {k: np.zeros(sd[k].numel(), dtype=np.float32) for k in names}
    filled = 0
    for key, codes in converted.items():
        values = counter_weights.tensor(SEED, key, codes.shape).reshape(-1)
        codes = codes.reshape(-1).numpy().astype(np.int64)
        param, element = codes >> 32, codes & 0xFFFFFFFF
        for p in np.unique(param):
            mask = param == p
            flat[names[p]][element[mask]] = values[mask]
        filled += codes.size
    assert filled == sum(sd[k].numel() for k in names), "every element is reached by the conversion"
    model.load_state_dict({k: torch.from_numpy(flat[k].reshape(sd[k].shape)) for k in names}, strict=False)
    return model.eval()


def outputs(model, run, golden, key):
    """Runs `run` in f32, f16 and bf16 (weights and inputs cast, output back to f32). candle's CPU
    backend multiplies f32 and f16 matrices but not bf16 ones: CI compares f16, a CUDA run bf16."""
    with torch.no_grad():
        golden[key] = run(model, torch.float32).float()
        # Copies: casting a model in place and back would round its f32 weights.
        golden[key + "_f16"] = run(copy.deepcopy(model).to(torch.float16), torch.float16).float()
        golden[key + "_bf16"] = run(copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16).float()


def sensitive(what, reference, changed):
    diff = (reference - changed).abs().max().item()
    assert diff > 2 * TOLERANCE, f"{what} moves the output by only {diff}: the fixture cannot see it"
    print(f"  sensitivity: {what} moves the output by {diff:.2e} (tolerance {TOLERANCE:.0e})")
    return diff


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    golden, sensitivity = {}, {}

    # Flux transformer: head dim 128, rotary axes 16/56/56, a 4x6 (non-square) packed latent grid.
    bfl.FLUX = FLUX
    flux = counter_state_converted(flux_transformer(FLUX), bfl.flux_to_bfl)
    h, w = 4, 6
    img = torch.randn(1, h * w, FLUX["in_channels"])
    txt = torch.randn(1, 8, FLUX["context_in_dim"])
    vec = torch.randn(1, FLUX["vec_in_dim"])
    img_ids = torch.stack([torch.zeros(h, w), torch.arange(float(h))[:, None].expand(h, w),
                           torch.arange(float(w))[None, :].expand(h, w)], -1).reshape(h * w, 3)
    txt_ids = torch.zeros(8, 3)
    t = torch.tensor([0.6])

    def run_flux(m, dt):
        return m(hidden_states=img.to(dt), encoder_hidden_states=txt.to(dt), pooled_projections=vec.to(dt),
                 timestep=t.to(dt), img_ids=img_ids.to(dt), txt_ids=txt_ids.to(dt), return_dict=False)[0]

    outputs(flux, run_flux, golden, "flux_out")
    golden.update({"flux_img": img, "flux_txt": txt, "flux_vec": vec, "flux_img_ids": img_ids,
                   "flux_txt_ids": txt_ids, "flux_t": t})
    for block in list(flux.transformer_blocks):
        for ff in (block.ff, block.ff_context):
            ff.net[0].approximate = "none"
    with torch.no_grad():
        sensitivity["flux_exact_gelu"] = sensitive("Flux: exact GELU instead of tanh", golden["flux_out"], run_flux(flux, torch.float32))

    # Autoencoder decoder: channels 128 -> 64 (nin_shortcut), 4 and 2 channels per GroupNorm group.
    bfl.VAE = VAE
    vae = counter_state_converted(flux_autoencoder(VAE), bfl.vae_to_bfl)
    # A near-constant latent: the first GroupNorms then see a variance near 1e-5, where an epsilon of
    # 1e-6 and one of 1e-5 differ (with unit variance no tolerance could tell them apart).
    z = 0.003 * torch.randn(1, VAE["z_channels"], 4, 6)

    def run_vae(m, dt):
        # candle's AutoEncoder::decode un-scales the latent itself; diffusers leaves it to the pipeline.
        return m.decode((z / VAE["scale_factor"] + VAE["shift_factor"]).to(dt)).sample

    outputs(vae, run_vae, golden, "vae_image")
    golden["vae_latent"] = z
    for module in vae.decoder.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.eps = 1e-5
    with torch.no_grad():
        sensitivity["vae_eps"] = sensitive("autoencoder: GroupNorm eps 1e-5 instead of 1e-6", golden["vae_image"], run_vae(vae, torch.float32))

    # T5 encoder: head dim 64, the real relative-attention buckets, eps 1e-6, padding.
    # The token embedding is one tensor under two names (shared, tied to encoder.embed_tokens):
    # generate it under the name candle reads.
    tied = lambda name: "shared.weight" if name == "encoder.embed_tokens.weight" else name  # noqa: E731
    t5 = counter_state(T5EncoderModel(T5Config(**T5)), tied)
    ids = torch.tensor([[37, 512, 8, 999, 64, 120, 5, 1, 0, 0, 0, 0]], dtype=torch.long)
    outputs(t5, lambda m, dt: m(input_ids=ids).last_hidden_state, golden, "t5_hidden")
    golden["t5_input_ids"] = ids
    t5_eps = T5EncoderModel(T5Config(**{**T5, "layer_norm_epsilon": 1e-5}))
    counter_state(t5_eps, tied)
    with torch.no_grad():
        sensitivity["t5_eps"] = sensitive("T5: eps 1e-5 instead of 1e-6", golden["t5_hidden"], t5_eps(input_ids=ids).last_hidden_state)

    # CLIP, OpenAI configuration: head dim 64, the prompt padded with end-of-text (999, the largest
    # id) to the 77-token context, legacy pooling at the first end-of-text.
    clip = counter_state(CLIPModel(CLIPConfig(**CLIP)))
    prompt = [0, 311, 47, 902, 15, 640]
    text_ids = torch.tensor([prompt + [999] * (77 - len(prompt))], dtype=torch.long)
    pixels = torch.randn(2, 3, 64, 64)
    outputs(clip, lambda m, dt: m.get_text_features(input_ids=text_ids), golden, "clip_text")
    outputs(clip, lambda m, dt: m.get_image_features(pixel_values=pixels.to(dt)), golden, "clip_image")
    golden.update({"clip_input_ids": text_ids, "clip_pixels": pixels})
    for layer in clip.vision_model.encoder.layers:
        layer.mlp.activation_fn = torch.nn.GELU()
    with torch.no_grad():
        sensitivity["clip_gelu"] = sensitive("CLIP: GELU instead of quick GELU", golden["clip_image"], clip.get_image_features(pixel_values=pixels))

    configs = {"seed": SEED, "flux": FLUX, "vae": VAE, "t5": T5, "clip": CLIP}
    (OUT / "configs.json").write_text(json.dumps(configs, indent=2) + "\n")
    (OUT / "clip_config.json").write_text(json.dumps(CLIP, indent=2) + "\n")
    (OUT / "t5_config.json").write_text(json.dumps(T5, indent=2) + "\n")
    metadata = {"torch": torch.__version__, "seed": str(SEED),
                "sensitivity": json.dumps({k: f"{v:.3e}" for k, v in sensitivity.items()})}
    save_file({k: v.detach().contiguous() for k, v in golden.items()}, OUT / "golden.safetensors", metadata=metadata)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
