//! Numerical parity with the upstream PyTorch references on shared tiny random weights:
//! transformers' T5 encoder, diffusers' Flux transformer and autoencoder (converted to the Black
//! Forest Labs checkpoint layout). The fixture comes from `tools/gen_flux_fixture.py` (run once by
//! hand); this test only reads the committed files, through the production loaders.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::flux::WithForward;
use vortex_real::config::{FluxModelConfig, ModelDtype, TextEncoderFiles};
use vortex_real::flux;

mod common;

/// Largest absolute difference allowed between candle and PyTorch (f32, CPU).
const TOLERANCE: f32 = 1e-4;

fn fixture() -> FluxModelConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux_tiny");
    let unused = dir.join("unused");
    FluxModelConfig {
        transformer: dir.join("transformer.safetensors"),
        transformer_config: Some(dir.join("transformer.json")),
        vae: dir.join("ae.safetensors"),
        vae_config: Some(dir.join("vae.json")),
        t5: TextEncoderFiles {
            weights: dir.join("t5.safetensors").into(),
            config: dir.join("t5.json"),
            tokenizer: unused.clone(),
        },
        clip: TextEncoderFiles { weights: unused.clone().into(), config: unused.clone(), tokenizer: unused },
        dtype: ModelDtype::F32,
        image_px: vortex_real::config::ImagePx::new(64).unwrap(),
        steps: vortex_real::config::DenoiseSteps::new(4).unwrap(),
        t5_tokens: vortex_real::config::T5Tokens::new(8).unwrap(),
    }
}

fn golden() -> std::collections::HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux_tiny/golden.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// For quantized weights: close to PyTorch within `fraction` of the output's range, but not
/// exactly equal (which would mean nothing was quantized).
#[track_caller]
fn assert_quantized_close(ours: &Tensor, theirs: &Tensor, fraction: f32, what: &str) {
    common::assert_finite(ours, what);
    let (size, diff) = (common::max_abs(theirs), common::max_abs(&(ours - theirs).unwrap()));
    assert!(diff < fraction * size, "{what}: differs by {diff} (output range {size})");
    assert!(diff > 0.0, "{what}: matches exactly, so it was not quantized");
}

/// The transformer's prediction on the fixture's inputs.
fn predict(model: &flux::Transformer, g: &std::collections::HashMap<String, Tensor>) -> Tensor {
    let ids = |name: &str| g[name].unsqueeze(0).unwrap();
    model
        .forward(
            &g["flux_img"],
            &ids("flux_img_ids"),
            &g["flux_txt"],
            &ids("flux_txt_ids"),
            &g["flux_t"],
            &g["flux_vec"],
            None,
        )
        .unwrap()
}

#[test]
fn t5_encoder_matches_transformers() {
    let g = golden();
    let (mut t5, _) = flux::load_t5(&fixture(), Path::new("/"), &Device::Cpu).unwrap();
    let ids = g["t5_input_ids"].to_dtype(DType::U32).unwrap();
    common::assert_close(&t5.forward(&ids, DType::F32).unwrap(), &g["t5_hidden"], TOLERANCE, "T5 hidden states");
}

#[test]
fn flux_transformer_matches_diffusers() {
    let g = golden();
    let (model, _) = flux::load_transformer(&fixture(), Path::new("/"), &Device::Cpu).unwrap();
    common::assert_close(&predict(&model, &g), &g["flux_out"], TOLERANCE, "Flux transformer prediction");
}

#[test]
fn flux_autoencoder_decoder_matches_diffusers() {
    let g = golden();
    let (vae, _) = flux::load_autoencoder(&fixture(), Path::new("/"), &Device::Cpu).unwrap();
    common::assert_close(&vae.decode(&g["vae_latent"]).unwrap(), &g["vae_image"], TOLERANCE, "autoencoder decode");
}

#[test]
fn quantized_gguf_transformer_stays_close_to_diffusers() {
    let g = golden();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fixture();
    let gguf = dir.path().join("transformer-q8_0.gguf");
    common::quantize_to_gguf(&cfg.transformer, &gguf, candle_core::quantized::GgmlDType::Q8_0);
    cfg.transformer = gguf;
    let (model, _) = flux::load_transformer(&cfg, Path::new("/"), &Device::Cpu).unwrap();
    assert!(matches!(model, flux::Transformer::Quantized(_)));
    // Q8_0 rounds each weight to 8 bits per block of 32: allow 2% of the output's range.
    assert_quantized_close(&predict(&model, &g), &g["flux_out"], 0.02, "Q8_0 transformer");
}

#[test]
fn sharded_t5_weights_load_from_their_shards() {
    let g = golden();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fixture();
    let tensors = candle_core::safetensors::load(&cfg.t5.weights.0[0], &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (mut a, mut b) = (std::collections::HashMap::new(), std::collections::HashMap::new());
    for (i, name) in names.into_iter().enumerate() {
        let shard = if i % 2 == 0 { &mut a } else { &mut b };
        shard.insert(name.clone(), tensors[name].clone());
    }
    let shards =
        [dir.path().join("model-00001-of-00002.safetensors"), dir.path().join("model-00002-of-00002.safetensors")];
    candle_core::safetensors::save(&a, &shards[0]).unwrap();
    candle_core::safetensors::save(&b, &shards[1]).unwrap();
    cfg.t5.weights = vortex_real::config::WeightFiles(shards.to_vec());
    let (mut t5, _) = flux::load_t5(&cfg, Path::new("/"), &Device::Cpu).unwrap();
    let ids = g["t5_input_ids"].to_dtype(DType::U32).unwrap();
    common::assert_close(&t5.forward(&ids, DType::F32).unwrap(), &g["t5_hidden"], TOLERANCE, "T5 from shards");
}

#[test]
fn quantized_gguf_t5_matches_transformers() {
    let g = golden();
    let ids = g["t5_input_ids"].to_dtype(DType::U32).unwrap();
    let theirs = &g["t5_hidden"];
    let run = |dtype: candle_core::quantized::GgmlDType| {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = fixture();
        let gguf = dir.path().join("t5.gguf");
        common::quantize_to_gguf(&cfg.t5.weights.0[0], &gguf, dtype);
        cfg.t5.weights = gguf.into();
        let (mut t5, _) = flux::load_t5(&cfg, Path::new("/"), &Device::Cpu).unwrap();
        assert!(matches!(t5, flux::T5Encoder::Quantized(_)));
        t5.forward(&ids, DType::F32).unwrap()
    };
    // The GGUF loading path itself, with nothing rounded: as exact as the safetensors path.
    common::assert_close(&run(candle_core::quantized::GgmlDType::F32), theirs, TOLERANCE, "T5 from an f32 GGUF");
    // Q8_0 rounds weights and, in candle's CPU kernels, activations to 8 bits per block of 32.
    assert_quantized_close(&run(candle_core::quantized::GgmlDType::Q8_0), theirs, 0.05, "Q8_0 T5");
}

#[test]
fn a_file_that_is_not_gguf_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fixture();
    let bad = dir.path().join("flux1-schnell-Q4_0.gguf");
    std::fs::write(&bad, b"<html>not a model</html>").unwrap();
    cfg.transformer = bad;
    let err = flux::load_transformer(&cfg, Path::new("/"), &Device::Cpu).err().unwrap().to_string();
    assert!(err.starts_with("flux: ") && err.contains("flux1-schnell-Q4_0.gguf: is not a GGUF file"), "{err}");
}
