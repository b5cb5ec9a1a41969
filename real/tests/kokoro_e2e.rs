//! Kokoro-82M end to end (`vortex_real::kokoro::model::Kokoro`) against kokoro 0.9.4's
//! `KModel.forward_with_tokens` (PyTorch 2.9.1, CPU) at FULL size: all 686 tensors of the five
//! parts (81.2M values) from the counter-based generator (`common/counter.rs`,
//! `tools/counter_weights.py`), one override committed in the fixture (the duration head's bias,
//! so each token lasts 2 frames rather than 25), a random voice row, the harmonic source's
//! randomness frozen. Fixture: `fixtures/kokoro_e2e/` from `tools/gen_kokoro_e2e_fixture.py`
//! (run once by hand): inputs, outputs and the manifest of names and shapes, no weights.
//!
//! Durations must match exactly (the fixture's sums sit at least 0.38 from a rounding boundary,
//! so f32 rounding cannot flip one). The audio is compared relative to its largest reference
//! value, within 1e-4: it passes through about 40 convolutions, an STFT whose phases (atan2)
//! amplify rounding where a bin's magnitude is tiny, and exp of log-magnitudes, so an
//! element-wise relative bound would be meaningless near zero crossings, while 1e-4 of the range
//! is still 50 times tighter than the 16-bit output's step. Measured (2026-11-30): 2.2e-6 of
//! the range (`cargo test -p vortex-real --test kokoro_e2e -- --nocapture` prints it).

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vortex_real::executor::CancelToken;
use vortex_real::kokoro::decoder::Excitation;
use vortex_real::kokoro::model::{Config, Kokoro};

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kokoro_e2e")
}

fn relative_error(got: &[f32], want: &[f32], what: &str) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).fold(0f32, |worst, (g, w)| {
        assert!(g.is_finite(), "{what}: {g} where PyTorch has {w}");
        worst.max((g - w).abs() / scale)
    })
}

#[test]
fn kokoro_end_to_end_matches_pytorch_at_full_size() {
    let fixture = candle_core::safetensors::load(fixture_dir().join("e2e.safetensors"), &Device::Cpu).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap()).unwrap();
    let seed = manifest["seed"].as_u64().unwrap();
    let override_name = manifest["override"].as_str().unwrap();
    let mut weights: HashMap<String, Tensor> = HashMap::new();
    for entry in manifest["tensors"].as_array().unwrap() {
        let name = entry[0].as_str().unwrap();
        let dims: Vec<usize> = entry[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let tensor = if name == override_name {
            fixture[name].clone()
        } else {
            Tensor::from_vec(common::counter::values(seed, name, &dims), dims, &Device::Cpu).unwrap()
        };
        weights.insert(name.to_string(), tensor);
    }
    let model = Kokoro::new(&Config::kokoro_v1(), VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu)).unwrap();

    let ids: Vec<u32> = fixture["ids"].to_vec1::<f32>().unwrap().iter().map(|&v| v as u32).collect();
    let style = fixture["style"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let speed = manifest["speed"].as_f64().unwrap() as f32;
    let want_durations: Vec<u32> = fixture["durations"].to_vec1::<f32>().unwrap().iter().map(|&v| v as u32).collect();
    assert_eq!(model.durations(&ids, &style, speed).unwrap(), want_durations, "durations");

    let (phase, noise) = (fixture["excitation_phase"].clone(), fixture["excitation_noise"].clone());
    let out = model
        .forward(
            &ids,
            &style,
            speed,
            |samples, _| {
                assert_eq!(noise.dim(1).unwrap(), samples, "the excitation's length");
                Ok(Excitation { phase: phase.clone(), noise: noise.clone() })
            },
            &CancelToken::default(),
        )
        .unwrap();
    assert_eq!(out.durations, want_durations);
    let want = fixture["audio"].to_vec1::<f32>().unwrap();
    let audio = relative_error(&out.samples, &want, "audio");
    eprintln!("audio: {} samples, largest error {audio:.3e} of max |audio|", want.len());
    assert!(audio <= 1e-4, "audio differs by {audio:.3e} of its range");

    // The same inputs with a cancelled token stop before any work.
    let cancel = CancelToken::default();
    cancel.cancel();
    let stopped = model.forward(&ids, &style, speed, |_, _| unreachable!("cancelled first"), &cancel);
    assert!(matches!(stopped, Err(vortex_real::executor::ModelError::Cancelled(_))));
}
