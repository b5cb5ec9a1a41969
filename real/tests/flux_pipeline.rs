//! Flux end to end against diffusers' `FluxPipeline` (Schnell's scheduler, fixed noise): packing,
//! position ids on a non-square (32×48) grid, the 4-step schedule, the CLIP-L pooled vector, T5
//! padding and truncation, unpacking and the decode, through the production loader.
//!
//! The fixture (`tools/gen_flux_pipeline_fixture.py`) holds no weights: its manifest names every
//! tensor, and this test writes them from the counter-based generator into safetensors files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vortex_real::config::{DenoiseSteps, FluxModelConfig, ImagePx, ModelDtype, T5Tokens, TextEncoderFiles};
use vortex_real::executor::CancelToken;
use vortex_real::flux::FluxPipeline;

mod common;

/// Largest absolute difference allowed (f32). Four transformer steps and a decode accumulate
/// rounding; outputs are of order 1.
const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux_pipeline")
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap()
}

/// Writes one component's counter-generated tensors as a safetensors file.
fn write_weights(manifest: &serde_json::Value, component: &str, path: &Path) {
    let seed = manifest["seed"].as_u64().unwrap();
    let mut tensors = HashMap::new();
    for entry in manifest[component].as_array().unwrap() {
        let name = entry[0].as_str().unwrap();
        let dims: Vec<usize> = entry[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let values = common::counter::values(seed, name, &dims);
        tensors.insert(name.to_string(), Tensor::from_vec(values, dims, &Device::Cpu).unwrap());
    }
    candle_core::safetensors::save(&tensors, path).unwrap();
}

#[test]
fn flux_pipeline_matches_diffusers_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = json("manifest.json");
    for component in ["transformer", "vae", "t5", "clip"] {
        write_weights(&manifest, component, &tmp.path().join(format!("{component}.safetensors")));
    }
    let golden_cfg = json("golden.json");
    let cfg = FluxModelConfig {
        transformer: tmp.path().join("transformer.safetensors"),
        transformer_config: Some(dir().join("transformer.json")),
        vae: tmp.path().join("vae.safetensors"),
        vae_config: Some(dir().join("vae.json")),
        t5: TextEncoderFiles {
            weights: tmp.path().join("t5.safetensors").into(),
            config: dir().join("t5.json"),
            tokenizer: dir().join("t5_tokenizer.json"),
        },
        clip: TextEncoderFiles {
            weights: tmp.path().join("clip.safetensors").into(),
            config: dir().join("clip.json"),
            tokenizer: dir().join("clip_tokenizer.json"),
        },
        dtype: ModelDtype::F32,
        image_px: ImagePx::new(32).unwrap(),
        steps: DenoiseSteps::new(golden_cfg["steps"].as_i64().unwrap().into()).unwrap(),
        t5_tokens: T5Tokens::new(golden_cfg["t5_tokens"].as_i64().unwrap().into()).unwrap(),
    };
    let mut pipeline = FluxPipeline::load(&cfg, Path::new("/"), &Device::Cpu).unwrap();
    let golden = candle_core::safetensors::load(dir().join("golden.safetensors"), &Device::Cpu).unwrap();
    let (height, width) =
        (golden_cfg["height"].as_u64().unwrap() as usize, golden_cfg["width"].as_u64().unwrap() as usize);
    for (i, prompt) in golden_cfg["prompts"].as_array().unwrap().iter().enumerate() {
        let prompt = prompt.as_str().unwrap();
        let mut steps = 0;
        let packed = pipeline.denoise(prompt, &golden["noise"], &CancelToken::default(), |_| steps += 1).unwrap();
        assert_eq!(steps, 4, "Schnell's four steps");
        common::assert_close(
            &packed,
            &golden[&format!("latent{i}")],
            TOLERANCE,
            &format!("prompt {i}: denoised latent"),
        );
        let image = pipeline.decode(&packed, height, width).unwrap();
        // diffusers' postprocessing: [-1, 1] to [0, 1].
        let image = ((image + 1.0).unwrap() / 2.0).unwrap().clamp(0f32, 1f32).unwrap();
        let image = image.to_dtype(DType::F32).unwrap();
        common::assert_close(&image, &golden[&format!("image{i}")], TOLERANCE, &format!("prompt {i}: image"));
    }
}
