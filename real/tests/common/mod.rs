//! Tiny random-weight models written to a temp dir in the production file layout.
#![allow(dead_code)]

pub mod counter;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use vortex_real::config::ClipModelConfig;

/// A tiny CLIP `config.json` ([`vortex_real::tiny::clip_config_json`]).
pub fn tiny_clip_config(context: usize) -> String {
    vortex_real::tiny::clip_config_json(context)
}

/// A word-level `tokenizer.json` ([`vortex_real::tiny::tokenizer_json`]): `<unk>` = 0, `w1`..`w97`
/// = 1..97, `<|startoftext|>` = 98 and `<|endoftext|>` = 99.
pub fn tiny_tokenizer_json() -> String {
    vortex_real::tiny::tokenizer_json()
}

/// Writes a tiny random CLIP (weights, config, tokenizer) into `dir/name/` and returns its entry;
/// `context` is the text context length. The weights depend on `name`, so two models differ.
pub fn write_tiny_clip(dir: &Path, name: &str, context: usize) -> ClipModelConfig {
    vortex_real::tiny::write_clip(dir, name, context, 0).unwrap()
}

/// A config.yaml naming two tiny CLIP models, written into `dir`.
pub fn write_config_with_clips(dir: &Path, extra: &str) -> PathBuf {
    write_config(dir, extra, false)
}

/// A config.yaml naming two tiny CLIP models and, when `with_flux`, a tiny Flux.
pub fn write_config(dir: &Path, extra: &str, with_flux: bool) -> PathBuf {
    let b = write_tiny_clip(dir, "clip_b32", 16);
    let l = write_tiny_clip(dir, "clip_l14", 16);
    let flux = if with_flux { flux_yaml(&write_tiny_flux(dir)) } else { String::new() };
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.yaml")).unwrap();
    let entry = |c: &ClipModelConfig| {
        format!(
            "\n    weights: {}\n    tokenizer: {}\n    config: {}\n    dtype: f32",
            c.weights.display(),
            c.tokenizer.display(),
            c.config.display()
        )
    };
    let text = base
        .replace("models: {}", &format!("models:\n  clip_b32:{}\n  clip_l14:{}{flux}", entry(&b), entry(&l)))
        + extra;
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a tiny random Flux into `dir/flux/` and returns its config entry (64×64 images, 4
/// steps; [`vortex_real::tiny::write_flux`]).
pub fn write_tiny_flux(dir: &Path) -> vortex_real::config::FluxModelConfig {
    vortex_real::tiny::write_flux(dir, 0).unwrap()
}

/// The `models.flux` entry as YAML lines (indented for the `models:` map).
pub fn flux_yaml(f: &vortex_real::config::FluxModelConfig) -> String {
    let p = |x: &Path| x.display().to_string();
    format!(
        "\n  flux:\n    transformer: {}\n    transformer_config: {}\n    vae: {}\n    vae_config: {}\n    t5: {{ weights: {}, config: {}, tokenizer: {} }}\n    clip: {{ weights: {}, config: {}, tokenizer: {} }}\n    dtype: f32\n    image_px: {}\n    steps: {}\n    t5_tokens: {}",
        p(&f.transformer),
        p(f.transformer_config.as_ref().unwrap()),
        p(&f.vae),
        p(f.vae_config.as_ref().unwrap()),
        p(&f.t5.weights.0[0]),
        p(&f.t5.config),
        p(&f.t5.tokenizer),
        p(&f.clip.weights.0[0]),
        p(&f.clip.config),
        p(&f.clip.tokenizer),
        f.image_px.get(),
        f.steps.get(),
        f.t5_tokens.get()
    )
}

/// Writes a safetensors file's tensors into a GGUF file: 2-D weights whose rows are a multiple of
/// 32 quantized to `dtype`, everything else kept in f32 (as published quantized Flux files do).
pub fn quantize_to_gguf(safetensors: &Path, gguf: &Path, dtype: candle_core::quantized::GgmlDType) {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let tensors = candle_core::safetensors::load(safetensors, &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let quantized: Vec<(String, QTensor)> = names
        .into_iter()
        .map(|name| {
            let t = &tensors[name];
            let q = if t.rank() == 2 && t.dim(1).unwrap() % 32 == 0 { dtype } else { GgmlDType::F32 };
            (name.clone(), QTensor::quantize(t, q).unwrap())
        })
        .collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut file = std::fs::File::create(gguf).unwrap();
    gguf_file::write(&mut file, &[], &refs).unwrap();
}

/// Largest |got − want| / max(1, |want|) over f32 tensors, after checking shapes and finiteness
/// element by element (candle's CPU max skips NaN).
#[track_caller]
pub fn relative_error(got: &candle_core::Tensor, want: &candle_core::Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shape");
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    got.iter().zip(&want).fold(0f32, |worst, (g, w)| {
        assert!(g.is_finite(), "{g} where PyTorch has {w}");
        worst.max((g - w).abs() / w.abs().max(1.))
    })
}

/// The largest absolute value of a tensor, in f32.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    let t = t.to_dtype(candle_core::DType::F32).unwrap();
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Panics unless `ours` has `theirs`'s shape, is finite, and is within `tolerance` of it
/// everywhere; `theirs` must be large enough (above 0.05) to check anything.
#[track_caller]
pub fn assert_close(ours: &candle_core::Tensor, theirs: &candle_core::Tensor, tolerance: f32, what: &str) {
    assert_eq!(ours.dims(), theirs.dims(), "{what}: shapes differ");
    assert_finite(ours, what);
    let (size, diff) = (max_abs(theirs), max_abs(&(ours - theirs).unwrap()));
    assert!(size > 0.05, "{what}: the fixture's output is too small to check anything ({size})");
    assert!(diff < tolerance, "{what}: differs from the reference by {diff} (output range {size})");
    eprintln!("{what}: max difference {diff:.3e}");
}

/// Panics unless every value is finite. candle's CPU `max` skips a NaN that is not the first
/// element, so a max-abs comparison alone can pass on NaN output.
#[track_caller]
pub fn assert_finite(t: &candle_core::Tensor, what: &str) {
    let values = t.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    assert!(bad == 0, "{what}: {bad} of {} values are not finite", values.len());
}

/// A sampled output of a fixture written by `tools/liveportrait_fixture_common.py`'s `sampled`:
/// `name.shape`, `name.index` (flat indices) and `name.values`. Returns the largest
/// |ours − theirs| / max(1, |theirs|) over those elements after checking the full shape and that
/// every sampled element of ours is finite.
#[track_caller]
pub fn sampled_error(
    fixture: &std::collections::HashMap<String, candle_core::Tensor>,
    name: &str,
    ours: &candle_core::Tensor,
) -> f32 {
    let get = |suffix: &str| {
        fixture.get(&format!("{name}.{suffix}")).unwrap_or_else(|| panic!("the fixture has no {name}.{suffix}"))
    };
    let shape: Vec<usize> = get("shape").to_vec1::<i64>().unwrap().iter().map(|&d| d as usize).collect();
    assert_eq!(ours.dims(), shape, "{name}: shape");
    let index = get("index").to_dtype(candle_core::DType::U32).unwrap();
    let got = ours.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().index_select(&index, 0).unwrap();
    let (got, want) = (got.to_vec1::<f32>().unwrap(), get("values").to_vec1::<f32>().unwrap());
    got.iter().zip(&want).fold(0f32, |worst, (g, w)| {
        assert!(g.is_finite(), "{name}: {g} where PyTorch has {w}");
        worst.max((g - w).abs() / w.abs().max(1.))
    })
}

/// Kokoro's shape at small widths ([`vortex_real::tiny::kokoro_config`]); `max_dur` 6 keeps
/// random-weight durations near 3 frames per phoneme.
pub fn small_kokoro() -> vortex_real::kokoro::model::Config {
    vortex_real::tiny::kokoro_config()
}

/// A small Kokoro on counter weights with one voice, `af_heart`.
pub fn tiny_kokoro() -> vortex_real::kokoro::pipeline::KokoroPipeline {
    use vortex_real::kokoro::g2p::G2p;
    use vortex_real::kokoro::model::Kokoro;
    use vortex_real::kokoro::pipeline::KokoroPipeline;
    use vortex_real::kokoro::voices::{Voices, ROWS, STYLE_DIM};
    // Counter weights: plain tensors as a weights file gives (a VarMap's variables record every
    // op for backpropagation, and a 500-step LSTM's record overflows the stack when dropped),
    // and no zero Snake α (a VarMap's default), which would make the audio NaN.
    let vb = VarBuilder::from_backend(Box::new(counter::CounterWeights { seed: 11 }), DType::F32, Device::Cpu);
    let model = Kokoro::new(&small_kokoro(), vb).unwrap();
    let voice: Vec<f32> = (0..ROWS * STYLE_DIM).map(|i| ((i * 7919) % 1000) as f32 / 5000. - 0.1).collect();
    KokoroPipeline::new(model, Voices::from_tables([("af_heart".to_string(), voice)]), G2p::new())
}

/// A golden fixture under `real/tests/fixtures/` (`rel`, e.g. `kokoro_ops/ops.safetensors`).
pub fn load_fixture(rel: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Tensor `name` of a fixture.
#[track_caller]
pub fn fixture_tensor(
    fixture: &std::collections::HashMap<String, candle_core::Tensor>,
    name: &str,
) -> candle_core::Tensor {
    fixture.get(name).unwrap_or_else(|| panic!("the fixture has no tensor {name}")).clone()
}

/// A fixture's tensors under `prefix.`, with the prefix removed: a module's PyTorch names.
pub fn fixture_vb(
    fixture: &std::collections::HashMap<String, candle_core::Tensor>,
    prefix: &str,
) -> VarBuilder<'static> {
    let prefix = format!("{prefix}.");
    let tensors =
        fixture.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest.to_string(), v.clone()))).collect();
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

/// The message of an error the call must return.
#[track_caller]
pub fn err_text<T: std::fmt::Debug>(r: candle_core::Result<T>) -> String {
    format!("{}", r.expect_err("expected an error"))
}

/// Panics unless `result` is an error whose message contains every one of `words`.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(result: candle_core::Result<T>, words: &[&str]) {
    let message = err_text(result);
    for word in words {
        assert!(message.contains(word), "{message:?} does not say {word:?}");
    }
}
