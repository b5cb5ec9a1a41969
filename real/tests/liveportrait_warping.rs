//! LivePortrait's warping module W (`vortex_real::liveportrait::warping`, with
//! `dense_motion`) against the reference's `WarpingNetwork` (PyTorch 2.9.1, CPU, f32), every
//! state-dict tensor from the counter-based generator (`common/counter.rs`,
//! `tools/counter_weights.py`). The fixture `fixtures/liveportrait_warping/`
//! (`tools/gen_liveportrait_warping_fixture.py`, run once by hand) holds no weights: the
//! keypoints, sampled outputs (4096 evenly spaced elements of each, all of a smaller one) and a
//! manifest of tensor names and shapes, from which [`ManifestWeights`] answers exactly what the
//! state dict holds. The feature volume is rebuilt from the counter generator.
//!
//! Two sizes: `full`, models.yaml's network on the 32 × 16 × 64 × 64 volume (batch 1); `tiny`,
//! the same code on a 4 × 4 × 16 × 12 volume, 3 keypoints, a 2-level hourglass, batch 2.
//!
//! Tolerance: 1e-4 of max(1, |torch|) on every sampled element of `mask`, `deformation`,
//! `occlusion_map` and `out` (f32 against f32; the sums differ only in order). Measured on
//! 2026-11-30 (`-- --nocapture` prints them): tiny 1.0e-7, 2.5e-7, 1.2e-7, 5.5e-7; full
//! 1.5e-7, 4.2e-7, 7.2e-7, 4.1e-6.
//!
//! The full-size forward is 342 GFLOP (140 in the 7×7×7 `mask` convolution, 71 in the
//! hourglass' last convolution, 25 in its first, all at 16 × 64 × 64; 45.5 M parameters): 14 s
//! in the test build, whose candle and gemm crates are optimised (the root Cargo.toml; without
//! that it took 1697 s).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use vortex_real::liveportrait::dense_motion::{kp2gaussian, make_coordinate_grid};
use vortex_real::liveportrait::warping::{Config, DenseMotionParams, WarpingNetwork};

mod common;

use common::counter::{uniform_input, ManifestWeights};

/// Relative tolerance on each sampled element: f32 against f32, sums in another order.
const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liveportrait_warping")
}

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join("warping.safetensors"), &Device::Cpu).expect("the fixture loads")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("the manifest reads");
    serde_json::from_str(&text).expect("the manifest parses")
}

/// A case's `config` (models.yaml's `warping_module_params` keys) as a [`Config`].
fn config(section: &serde_json::Value) -> Config {
    let n = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key}")) as usize;
    let dm = &section["dense_motion_params"];
    Config {
        num_kp: n(section, "num_kp"),
        block_expansion: n(section, "block_expansion"),
        max_features: n(section, "max_features"),
        num_down_blocks: n(section, "num_down_blocks"),
        reshape_channel: n(section, "reshape_channel"),
        estimate_occlusion_map: section["estimate_occlusion_map"].as_bool().expect("a bool"),
        dense_motion_params: DenseMotionParams {
            block_expansion: n(dm, "block_expansion"),
            max_features: n(dm, "max_features"),
            num_blocks: n(dm, "num_blocks"),
            reshape_depth: n(dm, "reshape_depth"),
            compress: n(dm, "compress"),
        },
    }
}

/// The case's network, its feature volume and keypoints.
struct Case {
    net: WarpingNetwork,
    weights: ManifestWeights,
    feature: Tensor,
    kp_source: Tensor,
    kp_driving: Tensor,
}

fn case(name: &str, fixture: &HashMap<String, Tensor>) -> Case {
    let manifest = manifest();
    let section = &manifest[name];
    let weights = ManifestWeights::from_json(section);
    let started = Instant::now();
    let net = WarpingNetwork::new(&config(&section["config"]), weights.var_builder(DType::F32, &Device::Cpu))
        .expect("the network loads");
    eprintln!("{name}: weights built in {:.1} s", started.elapsed().as_secs_f32());
    let input = &section["input"];
    let dims: Vec<usize> = input["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let feature = uniform_input(
        section["seed"].as_u64().unwrap(),
        input["name"].as_str().unwrap(),
        &dims,
        input["low"].as_f64().unwrap(),
        input["high"].as_f64().unwrap(),
    );
    let kp = |which: &str| fixture[&format!("{name}.{which}")].clone();
    Case { net, weights, feature, kp_source: kp("kp_source"), kp_driving: kp("kp_driving") }
}

/// Runs a case and checks its four outputs against the fixture.
fn check(name: &str) {
    let fixture = fixture();
    let c = case(name, &fixture);
    assert_eq!(c.weights.unused(), Vec::<String>::new(), "{name}: tensors the network never loaded");
    let started = Instant::now();
    let warped = c.net.forward(&c.feature, &c.kp_driving, &c.kp_source).expect("the forward pass runs");
    eprintln!("{name}: forward in {:.1} s (debug build)", started.elapsed().as_secs_f32());
    let occlusion = warped.motion.occlusion_map.as_ref().expect("the fixture's network has the occlusion head");
    let outputs = [
        ("mask", &warped.motion.mask),
        ("deformation", &warped.motion.deformation),
        ("occlusion_map", occlusion),
        ("out", &warped.out),
    ];
    let mut worst = 0f32;
    for (key, ours) in outputs {
        let error = common::sampled_error(&fixture, &format!("{name}.{key}"), ours);
        eprintln!("{name}.{key}: error {error:.3e} (tolerance {TOLERANCE:.0e})");
        worst = worst.max(error);
    }
    assert!(worst < TOLERANCE, "{name}: worst error {worst:.3e}");
}

#[test]
fn tiny_matches_pytorch() {
    check("tiny");
}

/// The published network's size (see the file's doc).
#[test]
fn full_size_matches_pytorch() {
    check("full");
}

#[test]
fn liveportrait_config_is_the_fixtures_full_size() {
    let manifest = manifest();
    let cfg = Config::liveportrait();
    assert_eq!(config(&manifest["full"]["config"]), cfg);
    cfg.validate().unwrap();
    assert_eq!(cfg.out_channels(), 256);
}

#[test]
fn full_size_loads_the_checkpoints_tensors() {
    // Every tensor of the published state dict is read, with its own name and shape.
    let weights = ManifestWeights::from_json(&manifest()["full"]);
    WarpingNetwork::new(&Config::liveportrait(), weights.var_builder(DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(weights.unused(), Vec::<String>::new());
}

#[test]
fn coordinate_grid_and_gaussians() {
    let dev = Device::Cpu;
    let grid = make_coordinate_grid((3, 2, 5), DType::F32, &dev).unwrap();
    assert_eq!(grid.dims(), [3, 2, 5, 3]);
    // (x, y, z) at depth 2, row 0, column 1.
    assert_eq!(grid.get(2).unwrap().get(0).unwrap().get(1).unwrap().to_vec1::<f32>().unwrap(), [-0.5, -1., 1.]);
    assert!(make_coordinate_grid((1, 4, 4), DType::F32, &dev).is_err());
    // A keypoint on a grid point peaks there at exactly 1.
    let kp = Tensor::new(&[[[-0.5f32, -1., 1.]]], &dev).unwrap();
    let g = kp2gaussian(&kp, (3, 2, 5), 0.01).unwrap();
    assert_eq!(g.dims(), [1, 1, 3, 2, 5]);
    let peak = g.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let at = g.get(0).unwrap().get(0).unwrap().get(2).unwrap().get(0).unwrap().get(1).unwrap();
    assert_eq!((peak, at.to_scalar::<f32>().unwrap()), (1., 1.));
    assert!(kp2gaussian(&kp.reshape((1, 3)).unwrap(), (3, 2, 5), 0.01).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let fixture = fixture();
    let c = case("tiny", &fixture);
    let err = |feature: &Tensor, kp_d: &Tensor, kp_s: &Tensor| {
        c.net.forward(feature, kp_d, kp_s).expect_err("a bad input is refused").to_string()
    };
    let (kp_d, kp_s) = (&c.kp_driving, &c.kp_source);
    // Wrong depth, wrong channels, a height the hourglass cannot halve twice, a 4-D volume.
    for dims in [[2, 4, 3, 16, 12], [2, 5, 4, 16, 12], [2, 4, 4, 14, 12]] {
        let message = err(&Tensor::zeros(&dims, DType::F32, &Device::Cpu).unwrap(), kp_d, kp_s);
        assert!(message.contains("feature volume"), "{message}");
    }
    let message = err(&c.feature.get(0).unwrap(), kp_d, kp_s);
    assert!(message.contains("feature volume"), "{message}");
    // Keypoints of the wrong count, coordinates or batch.
    let message = err(&c.feature, &kp_d.narrow(1, 0, 2).unwrap(), kp_s);
    assert!(message.contains("kp_driving"), "{message}");
    let message = err(&c.feature, kp_d, &kp_s.narrow(2, 0, 2).unwrap());
    assert!(message.contains("kp_source"), "{message}");
    let message = err(&c.feature, &kp_d.narrow(0, 0, 1).unwrap(), kp_s);
    assert!(message.contains("kp_driving"), "{message}");
    // A missing tensor names itself; an inconsistent config is refused before loading.
    let section = &manifest()["tiny"];
    let mut pruned = section.clone();
    pruned["tensors"].as_array_mut().unwrap().retain(|t| t[0] != "fourth.weight");
    let weights = ManifestWeights::from_json(&pruned);
    let message = WarpingNetwork::new(&config(&section["config"]), weights.var_builder(DType::F32, &Device::Cpu))
        .expect_err("a missing tensor is refused")
        .to_string();
    assert!(message.contains("fourth.weight"), "{message}");
    let mut cfg = config(&section["config"]);
    cfg.max_features += 1;
    assert!(cfg.validate().is_err());
}
