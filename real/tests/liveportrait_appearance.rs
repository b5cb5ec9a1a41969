//! LivePortrait's appearance feature extractor F (`vortex_real::liveportrait::appearance`) and
//! util.py's blocks (`liveportrait::blocks`) against the reference (PyTorch 2.9.1, CPU, f32). F
//! at FULL size: models.yaml's parameters, every floating state-dict tensor (98 with the
//! LeakyReLU block's) from the counter-based generator (`common/counter.rs`,
//! `tools/counter_weights.py`) under the checkpoint's names. The fixture
//! `fixtures/liveportrait_appearance/` (`tools/gen_liveportrait_appearance_fixture.py`, run once
//! by hand) holds no weights and no input: the manifest, 4096 sampled elements of the
//! 1 × 32 × 16 × 64 × 64 volume and of the 512-channel map before it, for one 1 × 3 × 256 × 256
//! image in [0, 1) that both sides draw from the counter generator, and the whole output of a
//! small `SameBlock2d(lrelu=True)` (the warping module's).
//!
//! Tolerance: 1e-4 on |ours − torch| / max(1, |torch|), the house default for f32. The f32
//! reference is 1.5e-6 from the same network in float64; the fixture is sensitive: the volume
//! viewed as (depth, channel) moves it by 1.4, ResBlock3d without its shortcut by 1.1, ReLU for
//! LeakyReLU the small block by 1.8e-2. Measured on 2026-11-30: 1.1e-6 on the volume, 3.6e-7 on
//! the map before it, 2.1e-7 on the LeakyReLU block; the reduced F batched equals it frame by
//! frame exactly.
//!
//! Runtime (debug build, 2 cores shared with other builds at load 6): the full-size frame takes
//! 266 s (180 s of CPU): 80 s in the 2-D part (about 20 GFLOP, mostly the two 3 × 3 down-block
//! convolutions at 256² and 128²) and 186 s in the twelve 3 × 3 × 3 convolutions of the residual
//! blocks (about 43 GFLOP), all in matrix products that a debug build leaves unoptimised.
//!
//! Batching is checked on a reduced F (widths 8 to 64, 2 residual blocks, 64 × 64 images) with
//! counter weights: the full size runs once, because one frame costs most of a minute here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use vortex_real::liveportrait::appearance::{AppearanceFeatureExtractor, Config};
use vortex_real::liveportrait::blocks::SameBlock2d;

mod common;

use common::counter::{uniform_input, CounterWeights, ManifestWeights};

const TOLERANCE: f32 = 1e-4;
/// Batched frames: the same arithmetic per image, so only summation order may differ.
const BATCH_TOLERANCE: f32 = 1e-5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liveportrait_appearance")
}

fn fixture() -> (ManifestWeights, u64, HashMap<String, Tensor>) {
    let path = dir().join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tensors = candle_core::safetensors::load(dir().join("appearance.safetensors"), &Device::Cpu).unwrap();
    (ManifestWeights::from_json(&manifest), manifest["seed"].as_u64().unwrap(), tensors)
}

#[test]
fn appearance_feature_extractor_matches_pytorch() {
    let (weights, seed, fixture) = fixture();
    let start = Instant::now();
    let f = AppearanceFeatureExtractor::new(&Config::liveportrait(), weights.var_builder(DType::F32, &Device::Cpu))
        .unwrap();
    eprintln!("weights built in {:.1} s", start.elapsed().as_secs_f64());
    let image = uniform_input(seed, "source", &[1, 3, 256, 256], 0., 1.);

    let start = Instant::now();
    let map = f.planar(&image).unwrap();
    let planar_s = start.elapsed().as_secs_f64();
    let volume = f.volume(&map).unwrap();
    let total_s = start.elapsed().as_secs_f64();
    eprintln!("forward of 1 × 3 × 256 × 256: {total_s:.1} s ({planar_s:.1} s 2-D, {:.1} s 3-D)", total_s - planar_s);
    for (name, ours) in [("second", &map), ("f_s", &volume)] {
        let error = common::sampled_error(&fixture, name, ours);
        eprintln!("{name}: relative error {error:.2e} over 4096 sampled elements");
        assert!(error < TOLERANCE, "{name} differs by {error}");
    }

    let block =
        SameBlock2d::new(4, 6, 3, 1, true, weights.var_builder(DType::F32, &Device::Cpu).pp("lrelu_block")).unwrap();
    let out = block.forward(&uniform_input(seed, "lrelu_input", &[2, 4, 8, 8], -1., 1.)).unwrap();
    let error = common::relative_error(&out, &fixture["lrelu_block"]);
    eprintln!("SameBlock2d(lrelu=True): relative error {error:.2e}");
    assert!(error < TOLERANCE, "the LeakyReLU block differs by {error}");
    assert_eq!(weights.unused(), Vec::<String>::new(), "every checkpoint tensor is read");
}

#[test]
fn batch_of_two_equals_two_single_frames() {
    let cfg = Config {
        block_expansion: 8,
        max_features: 64,
        reshape_channel: 4,
        reshape_depth: 16,
        num_resblocks: 2,
        ..Config::liveportrait()
    };
    let vb = VarBuilder::from_backend(Box::new(CounterWeights { seed: 11 }), DType::F32, Device::Cpu);
    let f = AppearanceFeatureExtractor::new(&cfg, vb).unwrap();
    let (a, b) = (uniform_input(1, "a", &[1, 3, 64, 64], 0., 1.), uniform_input(1, "b", &[1, 3, 64, 64], 0., 1.));
    let batch = f.forward(&Tensor::cat(&[&a, &b], 0).unwrap()).unwrap();
    assert_eq!(batch.dims(), [2, 4, 16, 16, 16]);
    let singles = Tensor::cat(&[f.forward(&a).unwrap(), f.forward(&b).unwrap()], 0).unwrap();
    assert!(common::max_abs(&singles) > 0.05, "the reduced F's output is too small to check anything");
    let error = common::relative_error(&batch, &singles);
    eprintln!("batch of 2 against single frames: {error:.2e}");
    assert!(error < BATCH_TOLERANCE, "batched differs by {error}");
}

#[test]
fn refuses_bad_configs_and_inputs() {
    let vb = || VarBuilder::from_backend(Box::new(CounterWeights { seed: 1 }), DType::F32, Device::Cpu);
    let bad = Config { reshape_depth: 8, ..Config::liveportrait() };
    let err = AppearanceFeatureExtractor::new(&bad, vb()).unwrap_err().to_string();
    assert!(err.contains("max_features 512 is not reshape_channel 32 × reshape_depth 8"), "{err}");
    let bad = Config { block_expansion: 0, ..Config::liveportrait() };
    assert!(AppearanceFeatureExtractor::new(&bad, vb()).unwrap_err().to_string().contains("block_expansion is 0"));

    let small = Config {
        block_expansion: 4,
        max_features: 16,
        reshape_channel: 4,
        reshape_depth: 4,
        num_resblocks: 1,
        ..Config::liveportrait()
    };
    let f = AppearanceFeatureExtractor::new(&small, vb()).unwrap();
    let wrong = Tensor::zeros((1, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let err = f.forward(&wrong).unwrap_err().to_string();
    assert!(err.contains("[1, 1, 16, 16]") && err.contains("(N, 3, H, W)"), "{err}");
    let tiny = Tensor::zeros((1, 3, 2, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(f.forward(&tiny).unwrap_err().to_string().contains("at least 4"));
    let map = Tensor::zeros((1, 8, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = f.volume(&map).unwrap_err().to_string();
    assert!(err.contains("[1, 8, 4, 4]") && err.contains("(N, 16, h, w)"), "{err}");

    // A checkpoint with a wrongly shaped tensor names it.
    let weights = ManifestWeights::new(1, [("first.conv.weight".to_string(), vec![64, 3, 7, 7])]);
    let err = AppearanceFeatureExtractor::new(&Config::liveportrait(), weights.var_builder(DType::F32, &Device::Cpu))
        .unwrap_err()
        .to_string();
    assert!(err.contains("first.conv.weight"), "{err}");
}
