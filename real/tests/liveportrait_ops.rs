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

use common::err_text;

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use vortex_real::ops::{
    conv3d, depthwise_conv2d, grid_sample_3d, instance_norm_2d, spectral_norm_weight, BatchNorm, Conv3d, BATCH_NORM_EPS,
};

use common::counter::{uniform_input, CounterWeights};

const TOLERANCE: f32 = 1e-4;

/// The counter generator's seed of the LivePortrait-sized cases (`SEED` in the fixture script).
const SEED: u64 = 11;

/// Counter weights under `prefix`, as the fixture script's `fill_counter(module, SEED, prefix)`.
fn counter_vb(prefix: &str) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(CounterWeights { seed: SEED }), DType::F32, Device::Cpu).pp(prefix)
}

fn fixture() -> &'static HashMap<String, Tensor> {
    static FIXTURE: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    FIXTURE.get_or_init(|| common::load_fixture("liveportrait_ops/ops.safetensors"))
}

fn t(name: &str) -> Tensor {
    common::fixture_tensor(fixture(), name)
}

fn vb(prefix: &str) -> VarBuilder<'static> {
    common::fixture_vb(fixture(), prefix)
}

fn check(got: &Tensor, want: &Tensor, what: &str, tolerance: f32) -> f32 {
    let err = common::relative_error(got, want);
    eprintln!("{what}: max error {err:.2e}");
    assert!(err <= tolerance, "{what}: differs from PyTorch by {err:e} (tolerance {tolerance:e})");
    err
}

fn check_sampled(got: &Tensor, name: &str, what: &str, tolerance: f32) -> f32 {
    let err = common::sampled_error(fixture(), name, got);
    eprintln!("{what}: max error {err:.2e} over the sampled elements");
    assert!(err <= tolerance, "{what}: differs from PyTorch by {err:e} (tolerance {tolerance:e})");
    err
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

/// The fixture's conv3d cases: (name, in, out, kernel, padding).
const CONV3D_CASES: [(&str, usize, usize, usize, usize); 5] =
    [("k1", 3, 5, 1, 0), ("k3", 4, 3, 3, 1), ("k3_p0", 2, 3, 3, 0), ("k7", 3, 2, 7, 3), ("k7_small", 2, 2, 7, 3)];

#[test]
fn conv3d_matches_pytorch() {
    for (name, c_in, c_out, kernel, padding) in CONV3D_CASES {
        let conv = conv3d(c_in, c_out, kernel, padding, vb(&format!("conv3d.{name}"))).unwrap();
        let (x, want) = (t(&format!("conv3d.{name}.x")), t(&format!("conv3d.{name}.y")));
        check(&conv.forward(&x).unwrap(), &want, &format!("conv3d {name}, CPU taps"), TOLERANCE);
        // The whole-tensor path (other devices) is the one f64 takes on the CPU.
        let slices = conv.forward(&x.to_dtype(DType::F64).unwrap()).unwrap().to_dtype(DType::F32).unwrap();
        check(&slices, &want, &format!("conv3d {name}, conv2d per depth tap"), TOLERANCE);
        // Without a bias, through Conv3d::new.
        let bias = t(&format!("conv3d.{name}.bias")).reshape((1, c_out, 1, 1, 1)).unwrap();
        let plain = Conv3d::new(conv.weight().clone(), None, padding);
        let got = plain.forward(&x).unwrap().broadcast_add(&bias).unwrap();
        check(&got, &want, &format!("conv3d {name}, no bias"), TOLERANCE);
    }
    // A ResBlock3d-sized 3×3×3 convolution (32 channels over 16×32×32), on counter weights.
    let conv = conv3d(32, 32, 3, 1, counter_vb("conv3d.res")).unwrap();
    let x = uniform_input(SEED, "conv3d.res.x", &[1, 32, 16, 32, 32], -1., 1.);
    let start = std::time::Instant::now();
    let y = conv.forward(&x).unwrap();
    let took = start.elapsed().as_secs_f64();
    // 2 · 32 · 32 · 27 · 16 · 32 · 32 multiply-adds.
    let gflop = 2. * 32. * 32. * 27. * 16. * 32. * 32. / 1e9;
    eprintln!(
        "conv3d 32→32, 3×3×3 over 16×32×32: {took:.2} s, {:.2} GFLOP/s on the CPU ({} build)",
        gflop / took,
        build()
    );
    check_sampled(&y, "conv3d.res.y", "conv3d 32→32, 3×3×3 over 16×32×32", TOLERANCE);
}

#[test]
fn conv3d_refuses_bad_shapes() {
    let conv = conv3d(3, 2, 7, 3, vb("conv3d.k7")).unwrap();
    let x = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    let msg = err_text(conv.forward(&x(&[1, 4, 5, 5, 5])));
    assert!(msg.contains("3 input channels") && msg.contains("[1, 4, 5, 5, 5]"), "{msg}");
    assert!(err_text(conv.forward(&x(&[3, 5, 5, 5]))).contains("(batch, 3, depth, height, width)"));
    let tight = conv3d(2, 3, 3, 0, vb("conv3d.k3_p0")).unwrap();
    let msg = err_text(tight.forward(&x(&[1, 2, 4, 2, 7])));
    assert!(msg.contains("smaller than the kernel 3"), "{msg}");
    let flat = Conv3d::new(x(&[2, 3, 3, 3]), None, 1);
    assert!(err_text(flat.forward(&x(&[1, 3, 4, 4, 4]))).contains("expected [out, in, k, k, k]"));
    let oblong = Conv3d::new(x(&[2, 3, 3, 3, 1]), None, 1);
    assert!(err_text(oblong.forward(&x(&[1, 3, 4, 4, 4]))).contains("cubic"));
    let bad_bias = Conv3d::new(x(&[2, 3, 3, 3, 3]), Some(x(&[3])), 1);
    assert!(err_text(bad_bias.forward(&x(&[1, 3, 4, 4, 4]))).contains("bias has shape [3], expected [2]"));
    assert!(err_text(conv3d(3, 2, 5, 2, vb("conv3d.k7"))).contains("weight"));
}

/// The dense motion network's `mask` convolution at full size (137 → 22 channels, 7×7×7, padding
/// 3 over 16×64×64, about 135 GFLOP): parity on the sampled fixture (2.6 s in the test build,
/// whose candle and gemm crates are optimised: the root Cargo.toml).
#[test]
fn conv3d_at_the_dense_motion_size() {
    let conv = conv3d(137, 22, 7, 3, counter_vb("conv3d.mask")).unwrap();
    let x = uniform_input(SEED, "conv3d.mask.x", &[1, 137, 16, 64, 64], -1., 1.);
    let start = std::time::Instant::now();
    let y = conv.forward(&x).unwrap();
    let took = start.elapsed().as_secs_f64();
    eprintln!("conv3d 137→22, 7×7×7 over 16×64×64: {took:.2} s on the CPU ({} build)", build());
    check_sampled(&y, "conv3d.mask.y", "conv3d 137→22, 7×7×7 over 16×64×64", TOLERANCE);
}

/// Interior points, points on the faces, edges and corners (x, y, z = ±1: half a voxel past the
/// edge voxel's centre), slightly and far out of range, in a non-cubic (2, 3, 4, 5, 6) volume;
/// then the warping network's shape, (22, 4, 16, 64, 64) with a (22, 16, 64, 64, 3) grid
/// reaching 10% past the faces, on the sampled fixture.
#[test]
fn grid_sample_3d_matches_pytorch() {
    let (x, grid) = (t("grid.x"), t("grid.grid"));
    check(&grid_sample_3d(&x, &grid).unwrap(), &t("grid.y"), "grid_sample 3d", TOLERANCE);
    // Far out of range, nothing is in reach: exactly zero (the fixture has such points too).
    let far = [3f32, 0., 0., 0., -2.5, 0., 0., 0., 5., -1.6, -1.6, -1.6];
    let far = Tensor::from_slice(&far, (1, 1, 1, 4, 3), &Device::Cpu).unwrap().repeat((2, 1, 1, 1, 1)).unwrap();
    let zero = grid_sample_3d(&x, &far).unwrap();
    assert_eq!(zero.dims(), [2, 3, 1, 1, 4]);
    assert!(zero.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&v| v == 0.));
    // f64 takes the same whole-tensor path in f64.
    let wide = grid_sample_3d(&x.to_dtype(DType::F64).unwrap(), &grid.to_dtype(DType::F64).unwrap()).unwrap();
    check(&wide.to_dtype(DType::F32).unwrap(), &t("grid.y"), "grid_sample 3d in f64", TOLERANCE);

    let x = uniform_input(SEED, "grid.full.x", &[22, 4, 16, 64, 64], -1., 1.);
    let grid = uniform_input(SEED, "grid.full.grid", &[22, 16, 64, 64, 3], -1.1, 1.1);
    let start = std::time::Instant::now();
    let y = grid_sample_3d(&x, &grid).unwrap();
    let took = start.elapsed().as_secs_f64();
    eprintln!("grid_sample 3d, (22, 4, 16, 64, 64): {took:.2} s on the CPU ({} build)", build());
    check_sampled(&y, "grid.full.y", "grid_sample 3d, (22, 4, 16, 64, 64)", TOLERANCE);
}

#[test]
fn grid_sample_3d_refuses_bad_shapes() {
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    let msg = err_text(grid_sample_3d(&z(&[1, 2, 3, 4]), &z(&[1, 2, 2, 2, 3])));
    assert!(msg.contains("(N, C, D, H, W)") && msg.contains("[1, 2, 3, 4]"), "{msg}");
    let msg = err_text(grid_sample_3d(&z(&[1, 2, 3, 4, 5]), &z(&[1, 2, 2, 2])));
    assert!(msg.contains("(N, Do, Ho, Wo, 3)"), "{msg}");
    let msg = err_text(grid_sample_3d(&z(&[1, 2, 3, 4, 5]), &z(&[1, 2, 2, 2, 2])));
    assert!(msg.contains("does not fit"), "{msg}");
    let msg = err_text(grid_sample_3d(&z(&[2, 2, 3, 4, 5]), &z(&[1, 2, 2, 2, 3])));
    assert!(msg.contains("does not fit") && msg.contains("expected (2, Do, Ho, Wo, 3)"), "{msg}");
    assert!(err_text(grid_sample_3d(&z(&[1, 2, 0, 4, 5]), &z(&[1, 2, 2, 2, 3]))).contains("empty"));
}

/// Which profile this test binary was built with, for the timings it prints.
fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// ConvNeXt's 7×7 (padding 3) and a 3×3 depthwise convolution, a plane smaller than the kernel,
/// and the motion extractor's first stage (96 channels over 64×64) on the sampled fixture.
#[test]
fn depthwise_conv2d_matches_pytorch() {
    for (name, padding) in [("k7", 3), ("k3", 1), ("k7_small", 3)] {
        let (x, w, b) = (t(&format!("dw.{name}.x")), t(&format!("dw.{name}.weight")), t(&format!("dw.{name}.bias")));
        let want = t(&format!("dw.{name}.y"));
        check(
            &depthwise_conv2d(&x, &w, Some(&b), padding).unwrap(),
            &want,
            &format!("depthwise {name}, CPU"),
            TOLERANCE,
        );
        // The whole-tensor path (other devices) is the one f64 takes on the CPU.
        let f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let whole = depthwise_conv2d(&f64(&x), &f64(&w), Some(&f64(&b)), padding).unwrap();
        check(&whole.to_dtype(DType::F32).unwrap(), &want, &format!("depthwise {name}, shifted views"), TOLERANCE);
        let plain = depthwise_conv2d(&x, &w, None, padding).unwrap().broadcast_add(&b.reshape((1, (), 1, 1)).unwrap());
        check(&plain.unwrap(), &want, &format!("depthwise {name}, no bias"), TOLERANCE);
    }
    let vb = counter_vb("dw.full");
    let (w, b) = (vb.get((96, 1, 7, 7), "weight").unwrap(), vb.get(96, "bias").unwrap());
    let x = uniform_input(SEED, "dw.full.x", &[1, 96, 64, 64], -1., 1.);
    let start = std::time::Instant::now();
    let y = depthwise_conv2d(&x, &w, Some(&b), 3).unwrap();
    let took = start.elapsed().as_secs_f64();
    eprintln!("depthwise 7×7, (1, 96, 64, 64): {took:.3} s on the CPU ({} build)", build());
    check_sampled(&y, "dw.full.y", "depthwise 7×7, (1, 96, 64, 64)", TOLERANCE);
}

#[test]
fn depthwise_conv2d_refuses_bad_shapes() {
    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
    let msg = err_text(depthwise_conv2d(&z(&[2, 4, 5]), &z(&[4, 1, 3, 3]), None, 1));
    assert!(msg.contains("(batch, channels, height, width)") && msg.contains("[2, 4, 5]"), "{msg}");
    let msg = err_text(depthwise_conv2d(&z(&[1, 4, 5, 5]), &z(&[3, 1, 3, 3]), None, 1));
    assert!(msg.contains("expected [4, 1, kh, kw]"), "{msg}");
    let msg = err_text(depthwise_conv2d(&z(&[1, 4, 5, 5]), &z(&[4, 2, 3, 3]), None, 1));
    assert!(msg.contains("expected [4, 1, kh, kw]"), "{msg}");
    let msg = err_text(depthwise_conv2d(&z(&[1, 4, 5, 5]), &z(&[4, 1, 3, 3]), Some(&z(&[3])), 1));
    assert!(msg.contains("bias has shape [3], expected [4]"), "{msg}");
    let msg = err_text(depthwise_conv2d(&z(&[1, 4, 2, 5]), &z(&[4, 1, 7, 7]), None, 2));
    assert!(msg.contains("smaller than the kernel 7×7"), "{msg}");
}
