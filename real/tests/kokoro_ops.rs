//! The ops Kokoro-82M needs and candle lacks (`vortex_real::ops`), each against PyTorch 2.9.1 on
//! the golden fixture `fixtures/kokoro_ops/ops.safetensors` (from
//! `tools/gen_kokoro_ops_fixture.py`, run once by hand), plus their edge cases and refusals.
//!
//! Tolerance, unless a test says otherwise: |candle − PyTorch| ≤ 1e-5 · max(1, |PyTorch|) per
//! element, in f32 (1e-5 absolute for values up to 1, relative above). Each test prints the
//! largest difference it measured (`cargo test -p vortex-real --test kokoro_ops -- --nocapture`).

use std::collections::HashMap;
use std::f32::consts::PI;
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use vortex_real::ops::{
    atan2, depthwise_conv_transpose_1d, fold_weight_norm, instance_norm_1d, interpolate_linear_1d,
    interpolate_nearest_1d, reflect_pad_1d, snake_1d, tap_conv1d, AdaIn1d, BiLstm, DepthwiseConvTranspose1d,
    InstanceNorm1d, Resize, Stft, TransposeConfig, INSTANCE_NORM_EPS,
};

mod common;

use common::err_text;

const TOLERANCE: f32 = 1e-5;

fn fixture() -> &'static HashMap<String, Tensor> {
    static FIXTURE: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    FIXTURE.get_or_init(|| common::load_fixture("kokoro_ops/ops.safetensors"))
}

fn t(name: &str) -> Tensor {
    common::fixture_tensor(fixture(), name)
}

fn vb(prefix: &str) -> VarBuilder<'static> {
    common::fixture_vb(fixture(), prefix)
}

fn values(x: &Tensor) -> Vec<f32> {
    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest |got − want| / max(1, |want|), after checking shapes and finiteness (candle's max
/// skips NaN, so finiteness is checked element by element).
fn error(got: &Tensor, want: &Tensor, what: &str) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (got, want) = (values(got), values(want));
    got.iter().zip(&want).fold(0f32, |worst, (g, w)| {
        if w.is_finite() {
            assert!(g.is_finite(), "{what}: {g} where PyTorch has {w}");
            worst.max((g - w).abs() / w.abs().max(1.))
        } else {
            assert!(g == w || (g.is_nan() && w.is_nan()), "{what}: {g} where PyTorch has {w}");
            worst
        }
    })
}

fn check(got: &Tensor, want: &Tensor, what: &str, tolerance: f32) -> f32 {
    let err = error(got, want, what);
    eprintln!("{what}: max error {err:.2e}");
    assert!(err <= tolerance, "{what}: differs from PyTorch by {err:e} (tolerance {tolerance:e})");
    err
}

#[test]
fn bidirectional_lstm_matches_pytorch() {
    for (case, input, hidden) in [("small", 5, 4), ("one_step", 3, 2), ("wide", 24, 16)] {
        let lstm = BiLstm::new(input, hidden, vb(&format!("lstm.{case}"))).unwrap();
        let y = lstm.forward(&t(&format!("lstm.{case}.x"))).unwrap();
        check(&y, &t(&format!("lstm.{case}.y")), &format!("lstm {case}"), TOLERANCE);
    }
    let lstm = BiLstm::new(5, 4, vb("lstm.small")).unwrap();
    let msg = err_text(lstm.forward(&Tensor::zeros((1, 3, 6), DType::F32, &Device::Cpu).unwrap()));
    assert!(msg.contains("input size 5"), "{msg}");
    let msg = err_text(lstm.forward(&Tensor::zeros((1, 0, 5), DType::F32, &Device::Cpu).unwrap()));
    assert!(msg.contains("steps >= 1"), "{msg}");
    assert!(err_text(lstm.forward(&Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap())).contains("LSTM"));
    // Wrong sizes against the checkpoint are refused at load, naming the tensor.
    let msg = err_text(BiLstm::new(6, 4, vb("lstm.small")));
    assert!(msg.contains("weight_ih_l0"), "{msg}");
}

#[test]
fn instance_norm_and_adain_match_pytorch() {
    let x = t("instance_norm.x");
    let (w, b) = (t("instance_norm.weight"), t("instance_norm.bias"));
    let affine = instance_norm_1d(&x, Some(&w), Some(&b), INSTANCE_NORM_EPS).unwrap();
    check(&affine, &t("instance_norm.y_affine"), "instance norm, affine", TOLERANCE);
    let plain = instance_norm_1d(&x, None, None, INSTANCE_NORM_EPS).unwrap();
    check(&plain, &t("instance_norm.y_plain"), "instance norm", TOLERANCE);
    check(
        &instance_norm_1d(&x, None, None, 0.1).unwrap(),
        &t("instance_norm.y_eps_0.1"),
        "instance norm, eps 0.1",
        TOLERANCE,
    );
    let two = instance_norm_1d(&t("instance_norm.x_len2"), None, None, INSTANCE_NORM_EPS).unwrap();
    check(&two, &t("instance_norm.y_len2"), "instance norm, 2 steps", TOLERANCE);
    let module = InstanceNorm1d::new(3, true, INSTANCE_NORM_EPS, vb("instance_norm")).unwrap();
    check(&module.forward(&x).unwrap(), &t("instance_norm.y_affine"), "InstanceNorm1d", TOLERANCE);

    let one = Tensor::zeros((1, 2, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(err_text(instance_norm_1d(&one, None, None, 1e-5)).contains("at least 2 time steps"));
    assert!(
        err_text(instance_norm_1d(&x, Some(&b.narrow(0, 0, 2).unwrap()), None, 1e-5)).contains("weight has shape [2]")
    );

    let adain = AdaIn1d::new(6, 4, vb("adain")).unwrap();
    let (x, s) = (t("adain.x"), t("adain.s"));
    check(&adain.forward(&x, &s).unwrap(), &t("adain.y"), "AdaIN", TOLERANCE);
    // Without norm.weight / norm.bias, as Kokoro's strict=False load leaves them.
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in ["fc.weight", "fc.bias"] {
        tensors.insert(name.into(), t(&format!("adain.{name}")));
    }
    let plain = AdaIn1d::new(6, 4, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)).unwrap();
    check(&plain.forward(&x, &s).unwrap(), &t("adain.y_no_norm_weights"), "AdaIN, no norm weights", TOLERANCE);
    let msg = err_text(adain.forward(&x, &s.narrow(0, 0, 1).unwrap()));
    assert!(msg.contains("AdaIN over 4 channels"), "{msg}");
}

/// Snake in f64 from PyTorch's AdaIN output: `y + sin²(α·y) / α`, α per channel.
fn snake_f64(y: &Tensor, alpha: &[f32]) -> Tensor {
    let (batch, channels, len) = y.dims3().unwrap();
    let out: Vec<f32> = values(y)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (v, a) = (f64::from(v), f64::from(alpha[(i / len) % channels]));
            (v + (a * v).sin().powi(2) / a) as f32
        })
        .collect();
    Tensor::from_vec(out, (batch, channels, len), &Device::Cpu).unwrap()
}

#[test]
fn adain_then_snake_matches_pytorch_fused_or_not() {
    let (x, s) = (t("adain.x"), t("adain.s"));
    let alpha = [0.5f32, 1.0, 2.5, 0.2];
    let alpha_t = Tensor::new(&alpha, &Device::Cpu).unwrap();
    let adain = AdaIn1d::new(6, 4, vb("adain")).unwrap();
    let want = snake_f64(&t("adain.y"), &alpha);
    // The CPU kernel (contiguous f32) and the whole-tensor ops (a strided x) are both checked.
    check(&adain.forward_snake(&x, &s, &alpha_t).unwrap(), &want, "AdaIN + Snake, fused", TOLERANCE);
    let strided = x.transpose(1, 2).unwrap().contiguous().unwrap().transpose(1, 2).unwrap();
    assert!(!strided.is_contiguous());
    check(&adain.forward_snake(&strided, &s, &alpha_t).unwrap(), &want, "AdaIN + Snake, unfused", TOLERANCE);
    check(&snake_1d(&t("adain.y"), &alpha_t).unwrap(), &want, "Snake", TOLERANCE);
    // Without norm weights, as Kokoro's strict=False load leaves them.
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in ["fc.weight", "fc.bias"] {
        tensors.insert(name.into(), t(&format!("adain.{name}")));
    }
    let plain = AdaIn1d::new(6, 4, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)).unwrap();
    let want = snake_f64(&t("adain.y_no_norm_weights"), &alpha);
    check(&plain.forward_snake(&x, &s, &alpha_t).unwrap(), &want, "AdaIN + Snake, no norm weights", TOLERANCE);
    let msg = err_text(adain.forward_snake(&x, &s.narrow(0, 0, 1).unwrap(), &alpha_t));
    assert!(msg.contains("AdaIN over 4 channels"), "{msg}");
    let msg = err_text(adain.forward_snake(&x, &s, &alpha_t.narrow(0, 0, 3).unwrap()));
    assert!(msg.contains("do not fit"), "{msg}");
}

/// `F.conv1d` (stride 1) by its definition, in f64.
fn conv1d_f64(x: &Tensor, weight: &Tensor, bias: &Tensor, padding: usize, dilation: usize) -> Tensor {
    let (batch, c_in, len) = x.dims3().unwrap();
    let (c_out, _, kernel) = weight.dims3().unwrap();
    let out_len = len + 2 * padding - dilation * (kernel - 1);
    let (xv, wv, bv) = (values(x), values(weight), values(bias));
    let mut y = vec![0f32; batch * c_out * out_len];
    for n in 0..batch {
        for o in 0..c_out {
            for j in 0..out_len {
                let mut acc = f64::from(bv[o]);
                for c in 0..c_in {
                    for t in 0..kernel {
                        let i = (j + t * dilation) as isize - padding as isize;
                        if (0..len as isize).contains(&i) {
                            acc += f64::from(wv[(o * c_in + c) * kernel + t])
                                * f64::from(xv[(n * c_in + c) * len + i as usize]);
                        }
                    }
                }
                y[(n * c_out + o) * out_len + j] = acc as f32;
            }
        }
    }
    Tensor::from_vec(y, (batch, c_out, out_len), &Device::Cpu).unwrap()
}

#[test]
fn tap_convolution_matches_the_definition() {
    let dev = Device::Cpu;
    // Kernels, dilations and paddings of Kokoro's convolutions (same-length, and padding 0);
    // lengths shorter than the kernel's span on one side, and long enough for several column
    // stripes per thread.
    for (batch, c_in, c_out, len, kernel, dilation, padding) in [
        (1, 3, 5, 9, 3, 1, 1),
        (1, 4, 2, 40, 11, 5, 25),
        (2, 3, 4, 17, 7, 3, 9),
        (1, 2, 3, 12, 5, 1, 0),
        (1, 2, 2, 4, 7, 1, 3),
        (1, 6, 4, 1500, 3, 2, 2),
    ] {
        let x = Tensor::randn(0f32, 1., (batch, c_in, len), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.3, (c_out, c_in, kernel), &dev).unwrap();
        let b = Tensor::randn(0f32, 1., c_out, &dev).unwrap();
        let taps = w.permute((2, 0, 1)).unwrap().contiguous().unwrap();
        let got = tap_conv1d(&x, &taps, &b, padding, dilation).unwrap();
        let what = format!("tap conv ({batch}, {c_in}→{c_out}, {len}), kernel {kernel}, dilation {dilation}");
        check(&got, &conv1d_f64(&x, &w, &b, padding, dilation), &what, TOLERANCE);
    }
    let x = Tensor::zeros((1, 3, 4), DType::F32, &dev).unwrap();
    let taps = Tensor::zeros((3, 2, 3), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(2, DType::F32, &dev).unwrap();
    let msg = err_text(tap_conv1d(&x, &taps.narrow(2, 0, 2).unwrap().contiguous().unwrap(), &b, 1, 1));
    assert!(msg.contains("do not fit"), "{msg}");
    assert!(err_text(tap_conv1d(&x, &taps, &b, 0, 2)).contains("shorter than the kernel's span 4"));
    assert!(err_text(tap_conv1d(&x.to_dtype(DType::F64).unwrap(), &taps, &b, 1, 1)).contains("f32"));
}

#[test]
fn reflect_padding_matches_pytorch() {
    let x = t("reflect_pad.x");
    for (left, right) in [(2, 3), (5, 5), (0, 0), (1, 0), (0, 4)] {
        let y = reflect_pad_1d(&x, left, right).unwrap();
        // A gather: exact.
        check(&y, &t(&format!("reflect_pad.y_{left}_{right}")), &format!("reflect pad ({left}, {right})"), 0.);
    }
    let y = reflect_pad_1d(&t("reflect_pad.x_len2"), 1, 1).unwrap();
    check(&y, &t("reflect_pad.y_len2_1_1"), "reflect pad of 2 samples", 0.);
    // Rank 2 works on the last dimension too.
    let row = Tensor::new(&[[0f32, 1., 2., 3.]], &Device::Cpu).unwrap();
    assert_eq!(values(&reflect_pad_1d(&row, 3, 0).unwrap()), [3., 2., 1., 0., 1., 2., 3.]);

    let msg = err_text(reflect_pad_1d(&x, 6, 0));
    assert!(msg.contains("must be shorter than the length 6"), "{msg}");
    assert!(err_text(reflect_pad_1d(&Tensor::new(1f32, &Device::Cpu).unwrap(), 0, 0)).contains("scalar"));
    let empty = Tensor::zeros((1, 0), DType::F32, &Device::Cpu).unwrap();
    assert!(reflect_pad_1d(&empty, 0, 0).is_err());
}

#[test]
fn atan2_matches_pytorch_in_every_quadrant_and_at_zero() {
    let (y, x, want) = (t("atan2.y"), t("atan2.x"), t("atan2.out"));
    let got = atan2(&y, &x).unwrap();
    // Cephes' f32 polynomial: about 2 ulp of π at worst.
    check(&got, &want, "atan2", 1e-6);
    // Signed zeros are part of the contract (Kokoro's phase of a DC bin is ±π from them).
    for (g, w) in values(&got).iter().zip(values(&want)) {
        if w == 0. {
            assert_eq!(g.to_bits(), w.to_bits(), "atan2 returned {g:?} where PyTorch has {w:?}");
        }
    }
    let head = values(&got);
    assert_eq!(&head[..4], &[0., -0., PI, -PI]);
    let nan = Tensor::new(&[f32::NAN, 1.], &Device::Cpu).unwrap();
    let ones = Tensor::new(&[1f32, f32::NAN], &Device::Cpu).unwrap();
    assert!(values(&atan2(&nan, &ones).unwrap()).iter().all(|v| v.is_nan()));
    // f64 and f16 inputs keep their dtype.
    let y64 = y.to_dtype(DType::F64).unwrap();
    let x64 = x.to_dtype(DType::F64).unwrap();
    let got64 = atan2(&y64, &x64).unwrap();
    assert_eq!(got64.dtype(), DType::F64);
    check(&got64.to_dtype(DType::F32).unwrap(), &want, "atan2 in f64", 1e-6);
    assert_eq!(atan2(&y.to_dtype(DType::F16).unwrap(), &x.to_dtype(DType::F16).unwrap()).unwrap().dtype(), DType::F16);

    let msg = err_text(atan2(&y, &x.narrow(0, 0, 3).unwrap()));
    assert!(msg.contains("same shape"), "{msg}");
    assert!(err_text(atan2(&y, &x64)).contains("same float dtype"));
}

#[test]
fn linear_and_nearest_interpolation_match_pytorch() {
    let x = t("interp.x");
    for size in [11, 4, 7, 1, 20] {
        let y = interpolate_linear_1d(&x, Resize::Size(size)).unwrap();
        check(&y, &t(&format!("interp.linear_size_{size}")), &format!("linear to {size}"), TOLERANCE);
    }
    for scale in ["2.5", "0.5", "3.0"] {
        let y = interpolate_linear_1d(&x, Resize::Scale(scale.parse().unwrap())).unwrap();
        check(&y, &t(&format!("interp.linear_scale_{scale}")), &format!("linear by {scale}"), TOLERANCE);
    }
    // SineGen's pair: down by 1/300 (averages) then up by 300.
    let down = interpolate_linear_1d(&t("interp.sine_x"), Resize::Scale(1. / 300.)).unwrap();
    check(&down, &t("interp.sine_down"), "linear by 1/300", TOLERANCE);
    let up = interpolate_linear_1d(&t("interp.sine_down"), Resize::Scale(300.)).unwrap();
    check(&up, &t("interp.sine_up"), "linear by 300", TOLERANCE);
    let one = interpolate_linear_1d(&t("interp.one"), Resize::Size(5)).unwrap();
    check(&one, &t("interp.one_up"), "linear from 1 sample", TOLERANCE);

    // Nearest is a gather: exact.
    for (resize, name) in [
        (Resize::Scale(2.), "scale_2"),
        (Resize::Scale(3.), "scale_3"),
        (Resize::Size(5), "size_5"),
        (Resize::Size(10), "size_10"),
    ] {
        let y = interpolate_nearest_1d(&x, resize).unwrap();
        check(&y, &t(&format!("interp.nearest_{name}")), &format!("nearest {name}"), 0.);
    }
    let f0 = interpolate_nearest_1d(&t("interp.f0"), Resize::Scale(300.)).unwrap();
    check(&f0, &t("interp.f0_up"), "nearest by 300 (F0)", 0.);

    let msg = err_text(interpolate_linear_1d(&x, Resize::Size(0)));
    assert!(msg.contains("output length 0"), "{msg}");
    assert!(err_text(interpolate_nearest_1d(&x, Resize::Scale(0.))).contains("scale factor"));
    assert!(err_text(interpolate_nearest_1d(&x, Resize::Scale(f64::NAN))).contains("scale factor"));
    assert!(err_text(interpolate_linear_1d(&x, Resize::Scale(0.1))).contains("output length 0"));
    let empty = Tensor::zeros((1, 1, 0), DType::F32, &Device::Cpu).unwrap();
    assert!(err_text(interpolate_linear_1d(&empty, Resize::Size(3))).contains("no samples"));
    assert!(err_text(interpolate_linear_1d(&x.flatten_all().unwrap(), Resize::Size(3)))
        .contains("(batch, channels, length)"));
}

/// Phase differences, wrapped to [-π, π], where the magnitude is large enough for the phase to
/// be well defined: an f32 rounding of size ε moves the phase of a value of size m by ε / m.
fn phase_error(got: &Tensor, want: &Tensor, magnitude: &Tensor) -> f32 {
    let (got, want, magnitude) = (values(got), values(want), values(magnitude));
    let mut worst = 0f32;
    for ((g, w), m) in got.iter().zip(&want).zip(&magnitude) {
        assert!(g.is_finite());
        let mut d = (g - w).abs();
        if d > PI {
            d = 2. * PI - d;
        }
        if *m > 1e-2 {
            worst = worst.max(d * m.min(1.));
        }
    }
    worst
}

#[test]
fn stft_and_istft_match_pytorch() {
    let cases = [("k", 20, 5, 20, 4, 12), ("odd", 15, 4, 12, 2, 3)];
    for (name, n_fft, hop, win, signals, extra) in cases {
        let stft = Stft::new(n_fft, hop, win, &Device::Cpu).unwrap();
        for i in 0..signals {
            let p = format!("stft.{name}.{i}");
            let x = t(&format!("{p}.x"));
            let len = x.dim(1).unwrap();
            let (mag, phase) = stft.transform(&x).unwrap();
            check(&mag, &t(&format!("{p}.mag")), &format!("{p} magnitude"), TOLERANCE);
            // Phase: scaled by the magnitude (below 1) and skipped below 1e-2, see phase_error.
            let err = phase_error(&phase, &t(&format!("{p}.phase")), &mag);
            eprintln!("{p} phase: max error {err:.2e}");
            assert!(err <= TOLERANCE, "{p} phase differs from PyTorch by {err}");
            let back = stft.inverse(&t(&format!("{p}.mag")), &t(&format!("{p}.phase")), None).unwrap();
            check(&back, &t(&format!("{p}.istft")), &format!("{p} istft"), TOLERANCE);
            let back = stft.inverse(&mag, &phase, Some(len)).unwrap();
            check(&back, &t(&format!("{p}.istft_len")), &format!("{p} istft with length"), TOLERANCE);
            // The round trip returns the signal, odd and even lengths alike.
            check(&back, &x, &format!("{p} round trip ({len} samples)"), TOLERANCE);
        }
        // A spectrogram no signal has, as the decoder makes it.
        let (mag, phase) = (t(&format!("stft.{name}.free.mag")), t(&format!("stft.{name}.free.phase")));
        let y = stft.inverse(&mag, &phase, None).unwrap();
        check(&y, &t(&format!("stft.{name}.free.istft")), &format!("{name} istft of a free spectrogram"), TOLERANCE);
        let long = 8 * hop + extra;
        let y = stft.inverse(&mag, &phase, Some(long)).unwrap();
        check(&y, &t(&format!("stft.{name}.free.istft_long")), &format!("{name} istft to {long} samples"), TOLERANCE);
    }
    // The negative signal's DC phase is +π in PyTorch, from a +0 imaginary part.
    let stft = Stft::new(20, 5, 20, &Device::Cpu).unwrap();
    let (_, phase) = stft.transform(&t("stft.k.3.x")).unwrap();
    assert!(values(&phase.narrow(1, 0, 1).unwrap()).iter().all(|&p| p == PI));

    // Refusals.
    let short = Tensor::zeros((1, 10), DType::F32, &Device::Cpu).unwrap();
    let msg = err_text(stft.transform(&short));
    assert!(msg.contains("more than 10 samples"), "{msg}");
    assert!(err_text(stft.transform(&Tensor::zeros(30, DType::F32, &Device::Cpu).unwrap())).contains("(batch, length)"));
    let mag = t("stft.k.free.mag");
    let msg = err_text(stft.inverse(&mag.narrow(1, 0, 10).unwrap(), &mag.narrow(1, 0, 10).unwrap(), None));
    assert!(msg.contains("(batch, 11, frames >= 1)"), "{msg}");
    assert!(err_text(stft.inverse(&mag, &mag.narrow(2, 0, 3).unwrap(), None)).contains("differ in shape"));
    assert!(err_text(stft.inverse(&mag, &mag, Some(0))).contains("length of 0"));
    let one_frame = mag.narrow(2, 0, 1).unwrap();
    assert!(err_text(stft.inverse(&one_frame, &one_frame, None)).contains("leave no samples"));
    // Past the window's reach the envelope is 0: PyTorch refuses to divide by it, so do we.
    let odd = Stft::new(15, 4, 12, &Device::Cpu).unwrap();
    let (mag, phase) = (t("stft.odd.free.mag"), t("stft.odd.free.phase"));
    let msg = err_text(odd.inverse(&mag, &phase, Some(39)));
    assert!(msg.contains("cannot be divided by"), "{msg}");
    assert!(Stft::new(0, 5, 0, &Device::Cpu).is_err());
    assert!(Stft::new(20, 0, 20, &Device::Cpu).is_err());
    assert!(Stft::new(20, 5, 21, &Device::Cpu).is_err());
}

#[test]
fn depthwise_transposed_conv_matches_pytorch() {
    let cases = [
        ("kokoro", TransposeConfig { stride: 2, padding: 1, output_padding: 1, dilation: 1 }),
        ("wide", TransposeConfig { stride: 3, padding: 2, output_padding: 2, dilation: 2 }),
        ("len1", TransposeConfig { stride: 2, ..Default::default() }),
        ("stride1", TransposeConfig { padding: 2, ..Default::default() }),
    ];
    for (name, cfg) in cases {
        let p = format!("dwconvt.{name}");
        let (x, w, b) = (t(&format!("{p}.x")), t(&format!("{p}.weight")), t(&format!("{p}.bias")));
        let y = depthwise_conv_transpose_1d(&x, &w, Some(&b), cfg).unwrap();
        check(&y, &t(&format!("{p}.y")), &p, TOLERANCE);
        let (channels, _, kernel) = w.dims3().unwrap();
        let module = DepthwiseConvTranspose1d::new(channels, kernel, cfg, true, vb(&p)).unwrap();
        check(&module.forward(&x).unwrap(), &t(&format!("{p}.y")), &format!("{p} module"), TOLERANCE);
    }
    let (x, w) = (t("dwconvt.kokoro.x"), t("dwconvt.kokoro.weight"));
    let bad = TransposeConfig { stride: 2, output_padding: 2, ..Default::default() };
    assert!(err_text(depthwise_conv_transpose_1d(&x, &w, None, bad)).contains("output_padding"));
    let msg = err_text(depthwise_conv_transpose_1d(&x, &w.narrow(0, 0, 2).unwrap(), None, TransposeConfig::default()));
    assert!(msg.contains("expected [3, 1, kernel]"), "{msg}");
    let wide_pad = TransposeConfig { padding: 9, ..Default::default() };
    assert!(err_text(depthwise_conv_transpose_1d(&x, &w, None, wide_pad)).contains("leaves no output"));
    let empty = Tensor::zeros((1, 3, 0), DType::F32, &Device::Cpu).unwrap();
    assert!(depthwise_conv_transpose_1d(&empty, &w, None, TransposeConfig::default()).is_err());
}

#[test]
fn weight_norm_folds_as_pytorch() {
    let (g, v) = (t("wn.conv.weight_g"), t("wn.conv.weight_v"));
    let w = fold_weight_norm(&g, &v, 0).unwrap();
    check(&w, &t("wn.conv.weight"), "weight norm, conv weight", TOLERANCE);
    let y = t("wn.conv.x")
        .conv1d(&w, 0, 1, 1, 1)
        .unwrap()
        .broadcast_add(&t("wn.conv.bias").reshape((1, 4, 1)).unwrap())
        .unwrap();
    check(&y, &t("wn.conv.y"), "weight-normed conv1d", TOLERANCE);
    // A transposed depthwise conv loaded from weight_g / weight_v (dim 0: its input channels).
    let cfg = TransposeConfig { stride: 2, padding: 1, output_padding: 1, dilation: 1 };
    let convt = DepthwiseConvTranspose1d::new(3, 3, cfg, true, vb("wn.convt")).unwrap();
    check(&convt.forward(&t("wn.convt.x")).unwrap(), &t("wn.convt.y"), "weight-normed transposed conv", TOLERANCE);

    let msg = err_text(fold_weight_norm(&g.reshape((1, 4, 1)).unwrap(), &v, 0));
    assert!(msg.contains("expected [4, 1, 1]"), "{msg}");
    assert!(err_text(fold_weight_norm(&g, &v, 3)).contains("dimension 3"));
}
