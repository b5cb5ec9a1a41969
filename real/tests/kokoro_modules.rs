//! Kokoro's text encoder and prosody predictor (`vortex_real::kokoro::{text_encoder, predictor}`)
//! against kokoro 0.9.4's own `TextEncoder` and `ProsodyPredictor` (PyTorch 2.9.1, eval mode) on
//! the golden fixture `fixtures/kokoro_modules/modules.safetensors` from
//! `tools/gen_kokoro_modules_fixture.py` (run once by hand): tiny random weights (text encoder:
//! 24 channels, kernel 5, depth 3, 178 symbols; predictor: style 16, d_hid 24, 3 layers,
//! max_dur 50), weight-normed layers whose `weight_g` differs from `‖weight_v‖`, one unpadded
//! utterance of 12 phonemes and 20 frames, as `KModel.forward_with_tokens` runs them.
//!
//! Tolerance: |candle − PyTorch| ≤ 1e-4 · max(1, |PyTorch|) per element, in f32. Largest
//! difference measured (2026-11-30): text encoder 4.4e-7, duration encoder `d` 2.6e-6,
//! durations 2.5e-7 from PyTorch's `d` and 1.6e-7 from candle's (relative: they are near 23),
//! F0 3.3e-7, N 2.6e-7 (`cargo test -p vortex-real --test kokoro_modules -- --nocapture`
//! prints them).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vortex_real::kokoro::predictor::ProsodyPredictor;
use vortex_real::kokoro::text_encoder::TextEncoder;

const TOLERANCE: f32 = 1e-4;

// The fixture's configuration (tools/gen_kokoro_modules_fixture.py).
const CHANNELS: usize = 24;
const KERNEL: usize = 5;
const DEPTH: usize = 3;
const N_SYMBOLS: usize = 178;
const STYLE: usize = 16;
const D_HID: usize = 24;
const N_LAYERS: usize = 3;
const MAX_DUR: usize = 50;

fn fixture() -> &'static HashMap<String, Tensor> {
    static FIXTURE: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kokoro_modules/modules.safetensors");
        candle_core::safetensors::load(path, &Device::Cpu).expect("the fixture loads")
    })
}

fn t(name: &str) -> Tensor {
    fixture().get(name).unwrap_or_else(|| panic!("the fixture has no tensor {name}")).clone()
}

fn vb(tensors: HashMap<String, Tensor>) -> VarBuilder<'static> {
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

fn text_encoder(tensors: HashMap<String, Tensor>) -> candle_core::Result<TextEncoder> {
    TextEncoder::new(CHANNELS, KERNEL, DEPTH, N_SYMBOLS, vb(tensors).pp("text_encoder"))
}

fn predictor(tensors: HashMap<String, Tensor>) -> candle_core::Result<ProsodyPredictor> {
    ProsodyPredictor::new(STYLE, D_HID, N_LAYERS, MAX_DUR, vb(tensors).pp("predictor"))
}

fn check(what: &str, got: &Tensor, want: &Tensor) {
    let err = common::relative_error(got, want);
    eprintln!("{what}: max error {err:.2e}");
    assert!(err <= TOLERANCE, "{what} differs from kokoro by {err:e} (tolerance {TOLERANCE:e})");
}

#[test]
fn text_encoder_matches_kokoro() {
    let encoder = text_encoder(fixture().clone()).expect("the fixture's weights load");
    let ids = t("input_ids");
    check("text encoder (i64 ids)", &encoder.forward(&ids).unwrap(), &t("t_en"));
    check("text encoder (u32 ids)", &encoder.forward(&ids.to_dtype(DType::U32).unwrap()).unwrap(), &t("t_en"));
}

#[test]
fn duration_encoder_matches_kokoro() {
    let predictor = predictor(fixture().clone()).expect("the fixture's weights load");
    check("duration encoder d", &predictor.encode(&t("d_en"), &t("style")).unwrap(), &t("d"));
}

#[test]
fn durations_match_kokoro() {
    let predictor = predictor(fixture().clone()).expect("the fixture's weights load");
    // From PyTorch's d, so that this checks the duration head alone.
    check("durations", &predictor.durations(&t("d")).unwrap(), &t("durations"));
    let d = predictor.encode(&t("d_en"), &t("style")).unwrap();
    check("durations from candle's d", &predictor.durations(&d).unwrap(), &t("durations"));
}

#[test]
fn f0_and_energy_match_kokoro() {
    let predictor = predictor(fixture().clone()).expect("the fixture's weights load");
    let (f0, n) = predictor.f0_n(&t("en"), &t("style")).unwrap();
    check("F0", &f0, &t("F0"));
    check("N", &n, &t("N"));
}

/// A checkpoint with a weight missing or of the wrong shape is refused with an error that names
/// the tensor, not a panic.
#[test]
fn missing_or_misshapen_weights_are_named() {
    let without = |name: &str| {
        let mut tensors = fixture().clone();
        assert!(tensors.remove(name).is_some(), "the fixture has {name}");
        tensors
    };
    let reshaped = |name: &str| {
        let mut tensors = fixture().clone();
        let wrong = tensors[name].flatten_all().unwrap().narrow(0, 1, tensors[name].elem_count() - 1).unwrap();
        tensors.insert(name.to_string(), wrong);
        tensors
    };
    for name in ["text_encoder.cnn.1.1.gamma", "text_encoder.cnn.2.0.weight_v", "text_encoder.lstm.bias_hh_l0_reverse"]
    {
        for (how, tensors) in [("missing", without(name)), ("misshapen", reshaped(name))] {
            let err = text_encoder(tensors).expect_err("a bad checkpoint is refused").to_string();
            assert!(err.contains(name), "{how} {name}: {err:?} should name it");
        }
    }
    for name in [
        "predictor.text_encoder.lstms.4.weight_ih_l0",
        "predictor.text_encoder.lstms.5.fc.weight",
        "predictor.duration_proj.linear_layer.bias",
        "predictor.F0.1.pool.weight_g",
        "predictor.N.2.norm2.fc.bias",
        "predictor.N_proj.weight",
    ] {
        for (how, tensors) in [("missing", without(name)), ("misshapen", reshaped(name))] {
            let err = predictor(tensors).expect_err("a bad checkpoint is refused").to_string();
            assert!(err.contains(name), "{how} {name}: {err:?} should name it");
        }
    }
}

#[test]
fn bad_configs_are_refused_with_a_clear_message() {
    let zeros = || VarBuilder::zeros(DType::F32, &Device::Cpu);
    for ((channels, kernel, depth, symbols), want) in [
        ((0, 5, 3, 178), "channels is 0, must be between 1 and"),
        ((23, 5, 3, 178), "channels is 23, must be even"),
        ((24, 4, 3, 178), "kernel_size is 4, must be odd"),
        ((24, 5, 3, 0), "n_symbols is 0"),
        ((24, 5, 5000, 178), "depth is 5000, must be at most"),
    ] {
        let err = TextEncoder::new(channels, kernel, depth, symbols, zeros()).expect_err("refused").to_string();
        assert!(err.contains("Kokoro text encoder: ") && err.contains(want), "{err:?} should say {want:?}");
    }
    for ((style, d_hid, layers, max_dur), want) in [
        ((0, 24, 3, 50), "style_dim is 0"),
        ((16, 25, 3, 50), "d_hid is 25, must be even"),
        ((16, usize::MAX, 3, 50), "d_hid is 18446744073709551615"),
        ((16, 24, 3, 0), "max_dur is 0"),
        ((16, 24, 5000, 50), "n_layers is 5000, must be at most"),
    ] {
        let err = ProsodyPredictor::new(style, d_hid, layers, max_dur, zeros()).expect_err("refused").to_string();
        assert!(err.contains("Kokoro prosody predictor: ") && err.contains(want), "{err:?} should say {want:?}");
    }
}

#[test]
fn bad_inputs_are_refused() {
    let encoder = text_encoder(fixture().clone()).unwrap();
    let ids = Tensor::new(&[[0u32, 178, 3]], &Device::Cpu).unwrap();
    let err = encoder.forward(&ids).unwrap_err().to_string();
    assert!(err.contains("phoneme ids from 0 to 178, must be between 0 and 177"), "{err}");
    let ids = Tensor::new(&[[0i64, -1]], &Device::Cpu).unwrap();
    assert!(encoder.forward(&ids).unwrap_err().to_string().contains("phoneme ids from -1 to 0"));
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    assert!(encoder.forward(&empty).unwrap_err().to_string().contains("empty input"));
    let floats = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(encoder.forward(&floats).unwrap_err().to_string().contains("expected u8, u32 or i64"));

    let predictor = predictor(fixture().clone()).unwrap();
    let style = t("style");
    let narrow = Tensor::zeros((1, D_HID - 1, 5), DType::F32, &Device::Cpu).unwrap();
    let err = predictor.encode(&narrow, &style).unwrap_err().to_string();
    assert!(err.contains("d_en of shape [1, 23, 5], expected (1, 24, T >= 1)"), "{err}");
    let d_en = Tensor::zeros((2, D_HID, 5), DType::F32, &Device::Cpu).unwrap();
    let err = predictor.encode(&d_en, &style).unwrap_err().to_string();
    assert!(err.contains("style of shape [1, 16], expected (2, 16)"), "{err}");
    let d = Tensor::zeros((1, 5, D_HID), DType::F32, &Device::Cpu).unwrap();
    assert!(predictor.durations(&d).is_err());
    let en = Tensor::zeros((1, D_HID + STYLE, 1), DType::F32, &Device::Cpu).unwrap();
    let err = predictor.f0_n(&en, &style).unwrap_err().to_string();
    assert!(err.contains("en of shape [1, 40, 1], expected (1, 40, frames >= 2)"), "{err}");
}
