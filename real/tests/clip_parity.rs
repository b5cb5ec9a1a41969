//! Numerical parity with the upstream PyTorch reference (transformers' CLIPModel) on shared tiny
//! random weights. The fixture comes from `tools/gen_clip_fixture.py` (run once by hand); this
//! test only reads the committed files.

use std::path::Path;

use candle_core::{Device, Tensor};
use vortex_real::clip::{self, ClipEncoder};
use vortex_real::config::{ClipModelConfig, ModelDtype};

mod common;

/// Largest absolute difference allowed between candle and PyTorch (f32, CPU).
const TOLERANCE: f32 = 1e-4;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    common::assert_finite(a, "candle's output");
    common::max_abs(&(a - b).unwrap())
}

#[test]
fn candle_clip_matches_transformers_on_the_golden_fixture() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_tiny");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), common::tiny_tokenizer_json()).unwrap();
    let entry = ClipModelConfig {
        weights: fixture.join("model.safetensors"),
        tokenizer: dir.path().join("tokenizer.json"),
        config: fixture.join("config.json"),
        dtype: ModelDtype::F32,
    };
    let enc = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).unwrap();
    let golden = candle_core::safetensors::load(fixture.join("golden.safetensors"), &Device::Cpu).unwrap();

    for name in ["image_embeds", "text_embeds"] {
        let size = golden[name].abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(size > 0.1, "the fixture's {name} are too small to check anything ({size})");
    }
    let pixels = &golden["pixel_values"];
    let image = enc.image_features(pixels).unwrap();
    let diff = max_abs_diff(&image, &golden["image_embeds"]);
    assert!(diff < TOLERANCE, "image features differ from PyTorch by {diff}");

    let ids = golden["input_ids"].to_dtype(candle_core::DType::U32).unwrap();
    let text = enc.text_features(&ids).unwrap();
    let diff = max_abs_diff(&text, &golden["text_embeds"]);
    assert!(diff < TOLERANCE, "text features differ from PyTorch by {diff}");
}
