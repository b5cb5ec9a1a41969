//! The ops LivePortrait needs and candle lacks (`vortex_real::ops`), each against PyTorch 2.9.1 on
//! the golden fixture `fixtures/liveportrait_ops/ops.safetensors` (from
//! `tools/gen_liveportrait_ops_fixture.py`, run once by hand), plus their edge cases and refusals.
//! The LivePortrait-sized cases rebuild their inputs and weights from the counter generator
//! (`common::counter`) and compare a sample of the output (`common::sampled_error`).
//!
//! Tolerance, unless a test says otherwise: |candle − PyTorch| ≤ 1e-4 · max(1, |PyTorch|) per
//! element, in f32. Each test prints the largest error it measured
//! (`cargo test -p vortex-real --test liveportrait_ops -- --nocapture`).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use vortex_real::ops::{instance_norm_2d, spectral_norm_weight, BatchNorm, BATCH_NORM_EPS};

const TOLERANCE: f32 = 1e-4;

fn fixture() -> &'static HashMap<String, Tensor> {
    static FIXTURE: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liveportrait_ops/ops.safetensors");
        candle_core::safetensors::load(path, &Device::Cpu).expect("the fixture loads")
    })
}

fn t(name: &str) -> Tensor {
    fixture().get(name).unwrap_or_else(|| panic!("the fixture has no tensor {name}")).clone()
}

/// The fixture's tensors under `prefix.`, with the prefix removed: a module's PyTorch names.
fn vb(prefix: &str) -> VarBuilder<'static> {
    let prefix = format!("{prefix}.");
    let tensors = fixture()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_string(), v.clone())))
        .collect();
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

fn check(got: &Tensor, want: &Tensor, what: &str, tolerance: f32) -> f32 {
    let err = common::relative_error(got, want);
    eprintln!("{what}: max error {err:.2e}");
    assert!(err <= tolerance, "{what}: differs from PyTorch by {err:e} (tolerance {tolerance:e})");
    err
}

fn err_text<T: std::fmt::Debug>(r: candle_core::Result<T>) -> String {
    format!("{}", r.expect_err("expected an error"))
}

#[test]
fn instance_norm_2d_matches_pytorch() {
    let x = t("in2d.x");
    check(&instance_norm_2d(&x, 1e-5).unwrap(), &t("in2d.y"), "instance norm 2d", TOLERANCE);
    check(&instance_norm_2d(&x, 0.1).unwrap(), &t("in2d.y_eps_0.1"), "instance norm 2d, eps 0.1", TOLERANCE);
    check(
        &instance_norm_2d(&t("in2d.x_two"), 1e-5).unwrap(),
        &t("in2d.y_two"),
        "instance norm 2d, 2 pixels",
        TOLERANCE,
    );

    let one = Tensor::zeros((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(err_text(instance_norm_2d(&one, 1e-5)).contains("at least 2 pixels"));
    let rank3 = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(err_text(instance_norm_2d(&rank3, 1e-5)).contains("(batch, channels, height, width)"));
}

#[test]
fn batch_norm_matches_pytorch_in_eval() {
    for (name, channels) in [("bn2d", 4), ("bn3d", 3)] {
        let bn = BatchNorm::new(channels, BATCH_NORM_EPS, vb(name)).unwrap();
        check(&bn.forward(&t(&format!("{name}.x"))).unwrap(), &t(&format!("{name}.y")), name, TOLERANCE);
    }
    let bn = BatchNorm::new(4, BATCH_NORM_EPS, vb("bn2d")).unwrap();
    let msg = err_text(bn.forward(&t("bn3d.x")));
    assert!(msg.contains("batch norm over 4 channels") && msg.contains("[2, 3, 4, 5, 6]"), "{msg}");
    assert!(err_text(bn.forward(&Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap())).contains("batch norm"));
    // A checkpoint without running statistics, or of another width, is refused naming the tensor.
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in ["weight", "bias", "running_mean"] {
        tensors.insert(name.into(), t(&format!("bn2d.{name}")));
    }
    let msg = err_text(BatchNorm::new(4, BATCH_NORM_EPS, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)));
    assert!(msg.contains("running_var"), "{msg}");
    assert!(err_text(BatchNorm::new(5, BATCH_NORM_EPS, vb("bn2d"))).contains("weight"));
}

#[test]
fn spectral_norm_weight_matches_pytorch_in_eval() {
    for (name, shape, bias) in [("sn", (6, 4, 3, 3), true), ("sn_1x1", (3, 5, 1, 1), false)] {
        let weight = spectral_norm_weight(&vb(name), shape).unwrap();
        check(&weight, &t(&format!("{name}.weight")), &format!("{name} weight"), TOLERANCE);
        let bias = if bias { Some(t(&format!("{name}.bias"))) } else { None };
        let padding = shape.2 / 2;
        let conv = candle_nn::Conv2d::new(weight, bias, candle_nn::Conv2dConfig { padding, ..Default::default() });
        check(
            &conv.forward(&t(&format!("{name}.x"))).unwrap(),
            &t(&format!("{name}.y")),
            &format!("{name} conv"),
            TOLERANCE,
        );
    }
    let msg = err_text(spectral_norm_weight(&vb("sn"), (6, 4, 3, 2)));
    assert!(msg.contains("weight_orig"), "{msg}");
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in ["weight_orig", "weight_u"] {
        tensors.insert(name.into(), t(&format!("sn.{name}")));
    }
    let msg =
        err_text(spectral_norm_weight(&VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu), (6, 4, 3, 3)));
    assert!(msg.contains("weight_v"), "{msg}");
}
