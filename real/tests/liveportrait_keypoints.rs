//! LivePortrait's keypoint math (`vortex_real::liveportrait::keypoints`) and its stitching and
//! retargeting MLPs S (`vortex_real::liveportrait::stitching`) against the reference's own
//! `camera.py` and `LivePortraitWrapper` methods (PyTorch 2.9.1, CPU, f32) on 5 frames, with
//! the three full-size networks' every tensor from the counter generator
//! (`common/counter.rs`, `tools/counter_weights.py`). The fixture
//! `fixtures/liveportrait_keypoints/` (`tools/gen_liveportrait_keypoints_fixture.py`, run once by
//! hand) holds the inputs, the outputs and the manifest of tensor names and shapes, no weights.
//!
//! Tolerance: 1e-4 relative, |ours − PyTorch| / max(1, |PyTorch|) per element, in f32 (the
//! house default). Measured on 2026-11-30 (`-- --nocapture` prints them): 1.5e-5 for the head
//! pose (the expectation over 66 bins is about 97 before 97.5 is subtracted, so its rounding is
//! an absolute 1e-5 on a result of a few degrees), 5e-7 for the rotations, 1e-7 to 2.4e-7 for the
//! transformed keypoints and the three MLPs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use vortex_real::liveportrait::keypoints::{
    concat_feat, get_rotation_matrix, headpose_pred_to_degree, pose_degrees, retarget_eye, retarget_lip, stitching,
    transform_keypoint,
};
use vortex_real::liveportrait::stitching::{Config, MlpConfig, StitchingRetargeting};

mod common;

use common::refused;

use common::counter::ManifestWeights;

const TOLERANCE: f32 = 1e-4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liveportrait_keypoints")
}

fn fixture() -> &'static HashMap<String, Tensor> {
    static FIXTURE: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    FIXTURE.get_or_init(|| common::load_fixture("liveportrait_keypoints/keypoints.safetensors"))
}

fn t(name: &str) -> Tensor {
    common::fixture_tensor(fixture(), name)
}

/// The largest |ours − theirs| / max(1, |theirs|) (shapes and finiteness checked), printed.
#[track_caller]
fn error(name: &str, ours: &Tensor) -> f32 {
    let worst = common::relative_error(ours, &t(name));
    eprintln!("{name}: max relative error {worst:.3e}");
    worst
}

fn weights() -> ManifestWeights {
    ManifestWeights::load(&dir().join("manifest.json"))
}

fn network(weights: &ManifestWeights) -> StitchingRetargeting {
    StitchingRetargeting::new(&Config::liveportrait(), weights.var_builder(DType::F32, &Device::Cpu)).unwrap()
}

#[test]
fn head_pose_and_rotation_match_the_reference() {
    let (pitch, yaw, roll) = pose_degrees(&t("pitch_logits"), &t("yaw_logits"), &t("roll_logits")).unwrap();
    for (name, ours) in [("pitch", &pitch), ("yaw", &yaw), ("roll", &roll)] {
        assert!(error(name, ours) <= TOLERANCE, "{name}");
    }
    assert!(error("rotation", &get_rotation_matrix(&pitch, &yaw, &roll).unwrap()) <= TOLERANCE);
    // (B, 1) angles, as get_kp_info hands them on, give the same matrices.
    let column = |x: &Tensor| x.unsqueeze(1).unwrap();
    let again = get_rotation_matrix(&column(&pitch), &column(&yaw), &column(&roll)).unwrap();
    assert!(error("rotation", &again) <= TOLERANCE);
}

#[test]
fn transform_keypoint_matches_the_reference() {
    let (pitch, yaw, roll) = (t("pitch"), t("yaw"), t("roll"));
    let rotation = get_rotation_matrix(&pitch, &yaw, &roll).unwrap();
    let ours = transform_keypoint(&t("kp"), &rotation, &t("exp"), &t("scale"), &t("t")).unwrap();
    assert!(error("transformed", &ours) <= TOLERANCE);
    // Flat (B, 63) keypoints and a (B,) scale, as the motion extractor's heads give them.
    let flat = |x: &Tensor| x.reshape((5, 63)).unwrap();
    let ours =
        transform_keypoint(&flat(&t("kp")), &rotation, &flat(&t("exp")), &t("scale").squeeze(1).unwrap(), &t("t"))
            .unwrap();
    assert!(error("transformed", &ours) <= TOLERANCE);
}

#[test]
fn stitching_and_retargeting_match_the_reference() {
    let weights = weights();
    let s = network(&weights);
    assert_eq!(weights.unused(), Vec::<String>::new(), "every checkpoint tensor is loaded");
    let (source, driving) = (t("kp_source"), t("kp_driving"));
    let mlp = s.stitching.forward(&concat_feat(&source, &driving).unwrap()).unwrap();
    assert!(error("stitching_mlp", &mlp) <= TOLERANCE);
    assert!(error("stitched", &stitching(&s, &source, &driving).unwrap()) <= TOLERANCE);
    let one_source = source.narrow(0, 0, 1).unwrap();
    assert!(error("stitched_one_source", &stitching(&s, &one_source, &driving).unwrap()) <= TOLERANCE);
    assert!(error("lip_delta", &retarget_lip(&s, &source, &t("lip_ratio")).unwrap()) <= TOLERANCE);
    assert!(error("eye_delta", &retarget_eye(&s, &source, &t("eye_ratio")).unwrap()) <= TOLERANCE);
}

#[test]
fn frames_are_independent() {
    // A batch gives each frame what that frame alone gives.
    let s = network(&weights());
    let (source, driving) = (t("kp_source"), t("kp_driving"));
    let batch = stitching(&s, &source, &driving).unwrap();
    for frame in 0..5 {
        let one = |x: &Tensor| x.narrow(0, frame, 1).unwrap();
        let alone = stitching(&s, &one(&source), &one(&driving)).unwrap();
        let diff = (alone - one(&batch)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff <= 1e-6, "frame {frame}: {diff}");
    }
}

#[test]
fn bad_inputs_are_refused_with_their_shapes() {
    let dev = Device::Cpu;
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &dev).unwrap();
    refused(headpose_pred_to_degree(&z(&[5, 65])), &["head pose", "[5, 65]", "66"]);
    refused(get_rotation_matrix(&z(&[5]), &z(&[4]), &z(&[5])), &["5, 4 and 5 frames"]);
    refused(get_rotation_matrix(&z(&[5, 2]), &z(&[5]), &z(&[5])), &["pitch", "[5, 2]"]);
    let r = z(&[5, 3, 3]);
    refused(
        transform_keypoint(&z(&[5, 21, 3]), &r, &z(&[5, 20, 3]), &z(&[5]), &z(&[5, 3])),
        &["expression", "[5, 20, 3]"],
    );
    refused(transform_keypoint(&z(&[5, 21, 3]), &z(&[4, 3, 3]), &z(&[5, 21, 3]), &z(&[5]), &z(&[5, 3])), &["rotation"]);
    refused(transform_keypoint(&z(&[5, 21, 3]), &r, &z(&[5, 21, 3]), &z(&[4]), &z(&[5, 3])), &["scale", "[4]"]);
    refused(transform_keypoint(&z(&[5, 21, 3]), &r, &z(&[5, 21, 3]), &z(&[5]), &z(&[5, 2])), &["translation"]);
    refused(transform_keypoint(&z(&[5, 62]), &r, &z(&[5, 62]), &z(&[5]), &z(&[5, 3])), &["keypoints", "[5, 62]"]);

    let s = network(&weights());
    refused(stitching(&s, &z(&[5, 21, 3]), &z(&[5, 20, 3])), &["driving keypoints", "[5, 20, 3]"]);
    refused(stitching(&s, &z(&[2, 21, 3]), &z(&[5, 21, 3])), &["batches of 2 and 5"]);
    refused(stitching(&s, &z(&[5, 20, 3]), &z(&[5, 20, 3])), &["stitching MLP", "[5, 120]", "126"]);
    refused(retarget_lip(&s, &z(&[5, 21, 3]), &z(&[5, 3])), &["lip", "[5, 3]"]);
    refused(retarget_eye(&s, &z(&[5, 21, 3]), &z(&[5, 2])), &["eye", "[5, 2]"]);
    refused(s.eye.forward(&z(&[66])), &["[66]", "(batch, 66)"]);
}

#[test]
fn bad_checkpoints_and_configs_are_refused() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap();
    let without_eye: Vec<(String, Vec<usize>)> = manifest["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), serde_json::from_value(e[1].clone()).unwrap()))
        .filter(|(name, _)| name != "retarget_eye.mlp.10.bias")
        .collect();
    let partial = ManifestWeights::new(manifest["seed"].as_u64().unwrap(), without_eye);
    let result = StitchingRetargeting::new(&Config::liveportrait(), partial.var_builder(DType::F32, &Device::Cpu));
    refused(result, &["retarget_eye.mlp.10.bias"]);

    let mut cfg = Config::liveportrait();
    cfg.lip.output_size = 62;
    let result = StitchingRetargeting::new(&cfg, weights().var_builder(DType::F32, &Device::Cpu));
    refused(result, &["retarget_mouth.mlp.6.weight", "[62, 64]"]);
    cfg.lip = MlpConfig { input_size: 65, hidden_sizes: vec![], output_size: 63 };
    refused(cfg.validate(), &["lip", "0 hidden layers"]);
}
