//! Parity with the PyTorch references at production shapes, in f32 and in f16: Flux's transformer
//! (head dim 128, rotary axes 16/56/56, a non-square latent grid), the autoencoder's decoder
//! (channel changes, several channels per GroupNorm group), T5 (head dim 64, the real relative
//! attention buckets) and CLIP in OpenAI's configuration (head dim 64, a prompt padded with
//! end-of-text to 77 tokens, legacy pooling).
//!
//! No weights are committed: both sides build them with the counter-based generator
//! (`common/counter.rs`, `tools/counter_weights.py`); the fixture (`tools/gen_parity_shapes.py`)
//! holds inputs and outputs only, and its generator proved each check sensitive (a tanh-vs-exact
//! GELU or an epsilon of 1e-5 for 1e-6 moves an output by 5e-4 to 1e-2, 5 to 100 times the f32
//! tolerance).
//!
//! Half precision: candle's CPU backend multiplies f32 and f16 matrices but not bf16 ones, so CI
//! compares f16 (the CLIP models' production dtype); the fixture also holds PyTorch's bf16 outputs
//! (Flux's production dtype), compared when the tests run with the `cuda` feature on a GPU.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::flux::autoencoder::{AutoEncoder, Config as VaeConfig};
use candle_transformers::models::flux::model::{Config as FluxConfig, Flux};
use candle_transformers::models::flux::WithForward;
use candle_transformers::models::t5;
use vortex_real::clip::HfClipConfig;

mod common;

use common::counter;

/// Largest absolute difference allowed in f32 (outputs are of order 1).
const F32_TOLERANCE: f32 = 1e-4;
/// Largest absolute difference allowed in half precision, as a share of the output's largest
/// magnitude. f16 keeps 11 significant bits (a relative step of 2⁻¹¹ ≈ 0.05%), bf16 8 (≈ 0.4%);
/// the two libraries round the intermediate results of different kernels, and over blocks of
/// attention and MLP those roundings add up to a few steps.
const HALF_SHARE: [(DType, f32); 2] = [(DType::F16, 0.01), (DType::BF16, 0.03)];

/// The half-precision dtype these tests compare on this build's device.
const HALF: DType = if cfg!(feature = "cuda") { DType::BF16 } else { DType::F16 };

fn device() -> Device {
    if cfg!(feature = "cuda") {
        Device::new_cuda(0).expect("the cuda build's parity tests need a GPU")
    } else {
        Device::Cpu
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity_shapes")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("golden.safetensors"), &Device::Cpu).unwrap()
}

fn seed() -> u64 {
    let configs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("configs.json")).unwrap()).unwrap();
    configs["seed"].as_u64().unwrap()
}

/// Compares candle's f32 and half-precision outputs with PyTorch's (`key`, `key_f16`/`key_bf16`).
#[track_caller]
fn assert_matches(g: &HashMap<String, Tensor>, key: &str, f32_out: &Tensor, half_out: &Tensor) {
    let half = if HALF == DType::F16 { "f16" } else { "bf16" };
    let share = HALF_SHARE.iter().find(|(d, _)| *d == HALF).expect("a half dtype").1;
    for (ours, theirs, what) in [(f32_out, &g[key], "f32"), (half_out, &g[&format!("{key}_{half}")], half)] {
        assert_eq!(ours.dims(), theirs.dims(), "{key} ({what}): shapes differ");
        common::assert_finite(ours, &format!("{key} ({what})"));
        let ours = ours.to_device(&Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
        let (size, diff) = (common::max_abs(theirs), common::max_abs(&(&ours - theirs).unwrap()));
        assert!(size > 0.1, "{key}: the fixture's output is too small to check anything ({size})");
        let limit = if what == "f32" { F32_TOLERANCE } else { share * size };
        assert!(diff < limit, "{key} ({what}): differs from PyTorch by {diff} (limit {limit}, output range {size})");
        eprintln!("{key} ({what}): max difference {diff:.3e} (limit {limit:.3e})");
    }
}

fn in_dtype(t: &Tensor, dtype: DType) -> Tensor {
    t.to_device(&device()).unwrap().to_dtype(dtype).unwrap()
}

fn weights(dtype: DType) -> candle_nn::VarBuilder<'static> {
    candle_nn::VarBuilder::from_backend(Box::new(counter::CounterWeights { seed: seed() }), dtype, device())
}

#[test]
fn counter_weights_match_the_python_generator() {
    // `python3 tools/counter_weights.py` prints these.
    let expected = [
        0.8890037536621094,
        -0.9029836654663086,
        -0.9439730644226074,
        -0.8748712539672852,
        0.8790046572685242,
        0.3410636782646179,
    ];
    assert_eq!(counter::values(7, "a.weight", &[2, 3]), expected.map(|v: f64| v as f32));
    let gains = [0.9818888306617737, 1.0123308897018433, 1.0957791805267334];
    assert_eq!(counter::values(7, "norm.scale", &[3]), gains.map(|v: f64| v as f32));
    let biases = [0.06925760954618454, -0.08536454290151596];
    assert_eq!(counter::values(7, "b.bias", &[2]), biases.map(|v: f64| v as f32));
}

#[test]
fn flux_transformer_matches_diffusers_at_head_dim_128() {
    let g = golden();
    let cfg = FluxConfig {
        in_channels: 64,
        vec_in_dim: 64,
        context_in_dim: 64,
        hidden_size: 256,
        mlp_ratio: 4.0,
        num_heads: 2,
        depth: 2,
        depth_single_blocks: 2,
        axes_dim: vec![16, 56, 56],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: false,
    };
    let run = |dtype: DType| {
        let model = Flux::new(&cfg, weights(dtype)).unwrap();
        let t = |k: &str| in_dtype(&g[k], dtype);
        let ids = |k: &str| in_dtype(&g[k], dtype).unsqueeze(0).unwrap();
        model
            .forward(
                &t("flux_img"),
                &ids("flux_img_ids"),
                &t("flux_txt"),
                &ids("flux_txt_ids"),
                &t("flux_t"),
                &t("flux_vec"),
                None,
            )
            .unwrap()
    };
    assert_matches(&g, "flux_out", &run(DType::F32), &run(HALF));
}

#[test]
fn autoencoder_decoder_matches_diffusers_with_channel_changes_and_grouped_norms() {
    let g = golden();
    let cfg = VaeConfig {
        resolution: 64,
        in_channels: 3,
        ch: 64,
        out_ch: 3,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        z_channels: 16,
        scale_factor: 0.3611,
        shift_factor: 0.1159,
    };
    let run = |dtype: DType| {
        let vae = AutoEncoder::new(&cfg, weights(dtype)).unwrap();
        vae.decode(&in_dtype(&g["vae_latent"], dtype)).unwrap()
    };
    assert_matches(&g, "vae_image", &run(DType::F32), &run(HALF));
}

#[test]
fn t5_encoder_matches_transformers_at_head_dim_64() {
    let g = golden();
    let cfg: t5::Config =
        serde_json::from_str(&std::fs::read_to_string(dir().join("t5_config.json")).unwrap()).unwrap();
    let ids = in_dtype(&g["t5_input_ids"], DType::U32);
    let run = |dtype: DType| {
        let mut model = t5::T5EncoderModel::load(weights(dtype), &cfg).unwrap();
        model.forward_dt(&ids, Some(dtype)).unwrap()
    };
    assert_matches(&g, "t5_hidden", &run(DType::F32), &run(HALF));
}

#[test]
fn clip_matches_transformers_in_openais_configuration() {
    let g = golden();
    let cfg = HfClipConfig::load("clip_b32", &dir().join("clip_config.json"), "").unwrap().to_model_config();
    let ids = in_dtype(&g["clip_input_ids"], DType::U32);
    let run = |dtype: DType| {
        let model = vortex_real::clip_model::Clip::new(&cfg, weights(dtype)).unwrap();
        let text = model.text_features(&ids).unwrap();
        let image = model.image_features(&in_dtype(&g["clip_pixels"], dtype)).unwrap();
        (text, image)
    };
    let ((text32, image32), (text16, image16)) = (run(DType::F32), run(HALF));
    assert_matches(&g, "clip_text", &text32, &text16);
    assert_matches(&g, "clip_image", &image32, &image16);
}
