#!/usr/bin/env python3
"""Golden fixtures for the Flux parity tests (real/tests/flux_parity.rs).

Builds tiny random-weight versions of Flux.1-Schnell's parts in PyTorch with the upstream
reference implementations, runs them on fixed inputs and writes, under
real/tests/fixtures/flux_tiny/:
  t5.safetensors / t5.json            transformers' T5EncoderModel (Hugging Face layout)
  transformer.safetensors / .json     diffusers' FluxTransformer2DModel, converted to the Black
                                      Forest Labs checkpoint layout that candle (and the published
                                      flux1-schnell.safetensors) use
  ae.safetensors / vae.json           diffusers' AutoencoderKL (Flux's layout: 16 latent channels,
                                      no quant convs), converted to the BFL `ae.safetensors` layout
  golden.safetensors                  inputs and outputs of all three

Run once by hand; CI only reads the committed files:
  python3 -m venv /tmp/v && /tmp/v/bin/pip install torch==2.9.1 transformers==4.57.1 \
      diffusers==0.35.2 safetensors==0.8.0 numpy==2.4.6
  /tmp/v/bin/python tools/gen_flux_fixture.py
"""
import json
import pathlib

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "flux_tiny"

T5 = {"vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
      "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "dropout_rate": 0.0,
      "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
      "is_encoder_decoder": True, "tie_word_embeddings": False, "pad_token_id": 0, "eos_token_id": 1}
# diffusers fixes the MLP ratio at 4.
FLUX = {"in_channels": 64, "vec_in_dim": 32, "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 4.0,
        "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000,
        "qkv_bias": True}
VAE = {"resolution": 64, "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 16,
       "scale_factor": 0.3611, "shift_factor": 0.1159}


def perturb(model):
    # Fresh modules leave norms at 1/0 and many biases at 0: perturb everything so the fixture
    # checks every tensor.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def contiguous(state):
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def flux_to_bfl(sd):
    """diffusers FluxTransformer2DModel names -> Black Forest Labs names (one double, one single block)."""
    out = {}

    def put(dst, *srcs, swap=False):
        for kind in ("weight", "bias"):
            parts = [sd.pop(f"{s}.{kind}") for s in srcs if f"{s}.{kind}" in sd]
            if not parts:
                continue
            t = torch.cat(parts, 0)
            if swap:  # diffusers' AdaLayerNormContinuous is (scale, shift), BFL's (shift, scale)
                half = t.shape[0] // 2
                t = torch.cat([t[half:], t[:half]], 0)
            out[f"{dst}.{kind}"] = t

    put("img_in", "x_embedder")
    put("txt_in", "context_embedder")
    put("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
    put("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
    put("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
    put("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
    for i in range(FLUX["depth"]):
        d, b = f"double_blocks.{i}", f"transformer_blocks.{i}"
        put(f"{d}.img_mod.lin", f"{b}.norm1.linear")
        put(f"{d}.txt_mod.lin", f"{b}.norm1_context.linear")
        put(f"{d}.img_attn.qkv", f"{b}.attn.to_q", f"{b}.attn.to_k", f"{b}.attn.to_v")
        put(f"{d}.txt_attn.qkv", f"{b}.attn.add_q_proj", f"{b}.attn.add_k_proj", f"{b}.attn.add_v_proj")
        out[f"{d}.img_attn.norm.query_norm.scale"] = sd.pop(f"{b}.attn.norm_q.weight")
        out[f"{d}.img_attn.norm.key_norm.scale"] = sd.pop(f"{b}.attn.norm_k.weight")
        out[f"{d}.txt_attn.norm.query_norm.scale"] = sd.pop(f"{b}.attn.norm_added_q.weight")
        out[f"{d}.txt_attn.norm.key_norm.scale"] = sd.pop(f"{b}.attn.norm_added_k.weight")
        put(f"{d}.img_attn.proj", f"{b}.attn.to_out.0")
        put(f"{d}.txt_attn.proj", f"{b}.attn.to_add_out")
        put(f"{d}.img_mlp.0", f"{b}.ff.net.0.proj")
        put(f"{d}.img_mlp.2", f"{b}.ff.net.2")
        put(f"{d}.txt_mlp.0", f"{b}.ff_context.net.0.proj")
        put(f"{d}.txt_mlp.2", f"{b}.ff_context.net.2")
    for i in range(FLUX["depth_single_blocks"]):
        s, b = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        put(f"{s}.modulation.lin", f"{b}.norm.linear")
        put(f"{s}.linear1", f"{b}.attn.to_q", f"{b}.attn.to_k", f"{b}.attn.to_v", f"{b}.proj_mlp")
        out[f"{s}.norm.query_norm.scale"] = sd.pop(f"{b}.attn.norm_q.weight")
        out[f"{s}.norm.key_norm.scale"] = sd.pop(f"{b}.attn.norm_k.weight")
        put(f"{s}.linear2", f"{b}.proj_out")
    put("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)
    put("final_layer.linear", "proj_out")
    assert not sd, f"unconverted transformer tensors: {sorted(sd)}"
    return out


def vae_to_bfl(sd):
    """diffusers AutoencoderKL names -> Black Forest Labs `ae.safetensors` names."""
    out = {}
    levels = len(VAE["ch_mult"])

    def move(dst, src, conv1x1=False):
        for kind in ("weight", "bias"):
            key = f"{src}.{kind}"
            if key in sd:
                t = sd.pop(key)
                if conv1x1 and kind == "weight" and t.dim() == 2:
                    t = t[:, :, None, None]
                out[f"{dst}.{kind}"] = t

    def resnet(dst, src):
        for a, b in (("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("conv2", "conv2"),
                     ("nin_shortcut", "conv_shortcut")):
            move(f"{dst}.{a}", f"{src}.{b}")

    def mid(side):
        resnet(f"{side}.mid.block_1", f"{side}.mid_block.resnets.0")
        resnet(f"{side}.mid.block_2", f"{side}.mid_block.resnets.1")
        a = f"{side}.mid_block.attentions.0"
        move(f"{side}.mid.attn_1.norm", f"{a}.group_norm")
        for x, y in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
            move(f"{side}.mid.attn_1.{x}", f"{a}.{y}", conv1x1=True)

    for side in ("encoder", "decoder"):
        move(f"{side}.conv_in", f"{side}.conv_in")
        move(f"{side}.norm_out", f"{side}.conv_norm_out")
        move(f"{side}.conv_out", f"{side}.conv_out")
        mid(side)
    for i in range(levels):
        for j in range(VAE["num_res_blocks"]):
            resnet(f"encoder.down.{i}.block.{j}", f"encoder.down_blocks.{i}.resnets.{j}")
        move(f"encoder.down.{i}.downsample.conv", f"encoder.down_blocks.{i}.downsamplers.0.conv")
        up = levels - 1 - i  # diffusers lists the decoder's levels from the bottom up
        for j in range(VAE["num_res_blocks"] + 1):
            resnet(f"decoder.up.{up}.block.{j}", f"decoder.up_blocks.{i}.resnets.{j}")
        move(f"decoder.up.{up}.upsample.conv", f"decoder.up_blocks.{i}.upsamplers.0.conv")
    assert not sd, f"unconverted autoencoder tensors: {sorted(sd)}"
    return out


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    golden = {}

    t5 = perturb(T5EncoderModel(T5Config(**T5)))
    state = contiguous(t5.state_dict())
    state.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    save_file(state, OUT / "t5.safetensors")
    (OUT / "t5.json").write_text(json.dumps(T5, indent=2) + "\n")
    ids = torch.tensor([[5, 17, 33, 61, 1, 0, 0, 0]], dtype=torch.long)
    with torch.no_grad():
        golden["t5_hidden"] = t5(input_ids=ids).last_hidden_state
    golden["t5_input_ids"] = ids

    head_dim = FLUX["hidden_size"] // FLUX["num_heads"]
    flux = perturb(FluxTransformer2DModel(
        patch_size=1, in_channels=FLUX["in_channels"], num_layers=FLUX["depth"],
        num_single_layers=FLUX["depth_single_blocks"], attention_head_dim=head_dim,
        num_attention_heads=FLUX["num_heads"], joint_attention_dim=FLUX["context_in_dim"],
        pooled_projection_dim=FLUX["vec_in_dim"], guidance_embeds=False,
        axes_dims_rope=tuple(FLUX["axes_dim"])))
    img = torch.randn(1, 16, FLUX["in_channels"])
    txt = torch.randn(1, 6, FLUX["context_in_dim"])
    vec = torch.randn(1, FLUX["vec_in_dim"])
    img_ids = torch.stack([torch.zeros(4, 4), torch.arange(4.0)[:, None].expand(4, 4),
                           torch.arange(4.0)[None, :].expand(4, 4)], -1).reshape(16, 3)
    txt_ids = torch.zeros(6, 3)
    t = torch.tensor([0.75])
    with torch.no_grad():
        golden["flux_out"] = flux(hidden_states=img, encoder_hidden_states=txt, pooled_projections=vec,
                                  timestep=t, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
    golden.update({"flux_img": img, "flux_txt": txt, "flux_vec": vec, "flux_img_ids": img_ids,
                   "flux_txt_ids": txt_ids, "flux_t": t})
    save_file(contiguous(flux_to_bfl(contiguous(flux.state_dict()))), OUT / "transformer.safetensors")
    (OUT / "transformer.json").write_text(json.dumps(FLUX, indent=2) + "\n")

    vae = perturb(AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=VAE["z_channels"],
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(VAE["ch"],) * 4, layers_per_block=VAE["num_res_blocks"], norm_num_groups=32,
        use_quant_conv=False, use_post_quant_conv=False, sample_size=VAE["resolution"],
        scaling_factor=VAE["scale_factor"], shift_factor=VAE["shift_factor"]))
    z = torch.randn(1, VAE["z_channels"], 8, 8)
    with torch.no_grad():
        # candle's AutoEncoder::decode un-scales the latent itself; diffusers leaves it to the pipeline.
        golden["vae_image"] = vae.decode(z / VAE["scale_factor"] + VAE["shift_factor"]).sample
    golden["vae_latent"] = z
    save_file(contiguous(vae_to_bfl(contiguous(vae.state_dict()))), OUT / "ae.safetensors")
    (OUT / "vae.json").write_text(json.dumps(VAE, indent=2) + "\n")

    save_file(contiguous(golden), OUT / "golden.safetensors", metadata={"torch": torch.__version__, "seed": "0"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
