//! Tiny random-weight models written to a temp dir in the production file layout.
#![allow(dead_code)]

pub mod counter;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{Init, VarBuilder, VarMap};
use candle_transformers::models::clip::ClipModel;
use vortex_real::clip::HfClipConfig;
use vortex_real::config::{ClipModelConfig, ModelDtype};

/// A tiny CLIP `config.json` (vocab 100, widths 32, 2 layers, 32×32 images in 8×8 patches).
pub fn tiny_clip_config(context: usize) -> String {
    format!(
        r#"{{"projection_dim": 16,
  "text_config": {{"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": {context}, "hidden_act": "quick_gelu"}},
  "vision_config": {{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu"}}}}"#
    )
}

/// A word-level `tokenizer.json`: `<unk>` = 0, `w1`..`w97` = 1..97, `<|startoftext|>` = 98 and
/// `<|endoftext|>` = 99 (the largest id, as in CLIP), added around every text.
pub fn tiny_tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for i in 1..98 {
        vocab.insert(format!("w{i}"), i.into());
    }
    vocab.insert("<|startoftext|>".into(), 98.into());
    vocab.insert("<|endoftext|>".into(), 99.into());
    let special = |t: &str, id: u32| serde_json::json!({"id": t, "ids": [id], "tokens": [t]});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|startoftext|>": special("<|startoftext|>", 98), "<|endoftext|>": special("<|endoftext|>", 99)}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// Writes a tiny random CLIP (weights, config, tokenizer) into `dir/name/` and returns its entry;
/// `context` is the text context length.
pub fn write_tiny_clip(dir: &Path, name: &str, context: usize) -> ClipModelConfig {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    let config_json = tiny_clip_config(context);
    std::fs::write(root.join("config.json"), &config_json).unwrap();
    std::fs::write(root.join("tokenizer.json"), tiny_tokenizer_json()).unwrap();
    let arch: HfClipConfig = serde_json::from_str(&config_json).unwrap();
    // candle's CPU generator cannot be seeded: each call draws new weights, which is all these
    // tests need (golden comparisons use the committed PyTorch fixture instead).
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    // candle draws a missing class embedding at random on every load: store one.
    vb.pp("vision_model")
        .pp("embeddings")
        .get_with_hints(32, "class_embedding", Init::Randn { mean: 0.0, stdev: 1.0 })
        .unwrap();
    ClipModel::new(vb, &arch.to_candle()).unwrap();
    varmap.save(root.join("model.safetensors")).unwrap();
    ClipModelConfig {
        weights: root.join("model.safetensors"),
        tokenizer: root.join("tokenizer.json"),
        config: root.join("config.json"),
        dtype: ModelDtype::F32,
    }
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

/// Writes a tiny random Flux (transformer, autoencoder, T5 and CLIP-L text encoders, their
/// configs and tokenizers) into `dir/flux/` and returns its config entry (64×64 images, 4 steps).
pub fn write_tiny_flux(dir: &Path) -> vortex_real::config::FluxModelConfig {
    use candle_transformers::models::clip::text_model::ClipTextTransformer;
    use candle_transformers::models::flux::autoencoder::{AutoEncoder, Config as VaeConfig};
    use candle_transformers::models::flux::model::{Config as FluxConfig, Flux};
    use candle_transformers::models::t5;

    let root = dir.join("flux");
    std::fs::create_dir_all(&root).unwrap();
    let device = Device::Cpu;
    let save = |name: &str, build: &dyn Fn(VarBuilder)| {
        let varmap = VarMap::new();
        build(VarBuilder::from_varmap(&varmap, DType::F32, &device));
        // A VarMap starts RMS-norm scales at zero, which would zero every attention score.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.ends_with(".scale") {
                var.set(&var.ones_like().unwrap()).unwrap();
            }
        }
        varmap.save(root.join(name)).unwrap();
    };

    let arch = r#"{"in_channels": 64, "vec_in_dim": 32, "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 2.0,
        "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000, "qkv_bias": true}"#;
    std::fs::write(root.join("transformer.json"), arch).unwrap();
    let flux_cfg = FluxConfig {
        in_channels: 64,
        vec_in_dim: 32,
        context_in_dim: 32,
        hidden_size: 64,
        mlp_ratio: 2.0,
        num_heads: 2,
        depth: 1,
        depth_single_blocks: 1,
        axes_dim: vec![8, 12, 12],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: false,
    };
    save("transformer.safetensors", &|vb| {
        Flux::new(&flux_cfg, vb).unwrap();
    });

    let vae_json = r#"{"resolution": 64, "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 16,
        "scale_factor": 0.3611, "shift_factor": 0.1159}"#;
    std::fs::write(root.join("vae.json"), vae_json).unwrap();
    let vae_cfg = VaeConfig {
        resolution: 64,
        in_channels: 3,
        ch: 32,
        out_ch: 3,
        ch_mult: vec![1, 1, 1, 1],
        num_res_blocks: 1,
        z_channels: 16,
        scale_factor: 0.3611,
        shift_factor: 0.1159,
    };
    save("ae.safetensors", &|vb| {
        AutoEncoder::new(&vae_cfg, vb).unwrap();
    });

    let t5_json = r#"{"vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
        "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "dropout_rate": 0.0,
        "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": true, "tie_word_embeddings": false, "pad_token_id": 0, "eos_token_id": 1}"#;
    std::fs::write(root.join("t5.json"), t5_json).unwrap();
    let t5_cfg: t5::Config = serde_json::from_str(t5_json).unwrap();
    save("t5.safetensors", &|vb| {
        t5::T5EncoderModel::load(vb, &t5_cfg).unwrap();
    });

    let clip_json = r#"{"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu"}"#;
    std::fs::write(root.join("clip.json"), clip_json).unwrap();
    let tower: vortex_real::hf::HfTower = serde_json::from_str(clip_json).unwrap();
    let clip_cfg = vortex_real::hf::text_config(&tower, 32).unwrap();
    save("clip.safetensors", &|vb| {
        ClipTextTransformer::new(vb.pp("text_model"), &clip_cfg).unwrap();
    });
    std::fs::write(root.join("tokenizer.json"), tiny_tokenizer_json()).unwrap();

    let files = |weights: &str, config: &str| vortex_real::config::TextEncoderFiles {
        weights: root.join(weights).into(),
        config: root.join(config),
        tokenizer: root.join("tokenizer.json"),
    };
    vortex_real::config::FluxModelConfig {
        transformer: root.join("transformer.safetensors"),
        transformer_config: Some(root.join("transformer.json")),
        vae: root.join("ae.safetensors"),
        vae_config: Some(root.join("vae.json")),
        t5: files("t5.safetensors", "t5.json"),
        clip: files("clip.safetensors", "clip.json"),
        dtype: ModelDtype::F32,
        image_px: vortex_real::config::ImagePx::new(64).unwrap(),
        steps: vortex_real::config::DenoiseSteps::new(4).unwrap(),
        t5_tokens: vortex_real::config::T5Tokens::new(16).unwrap(),
    }
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

/// Kokoro's shape at small widths (its full size is checked against PyTorch in kokoro_e2e.rs);
/// `max_dur` 6 keeps random-weight durations near 3 frames per phoneme.
pub fn small_kokoro() -> vortex_real::kokoro::model::Config {
    use vortex_real::kokoro::{albert, decoder, model};
    model::Config {
        hidden_dim: 32,
        n_layer: 2,
        max_dur: 6,
        plbert: albert::Config {
            embedding_size: 16,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            ..albert::Config::kokoro()
        },
        istftnet: decoder::Config {
            resblock_kernel_sizes: vec![3],
            resblock_dilation_sizes: vec![vec![1, 3, 5]],
            upsample_initial_channel: 32,
            decode_width: 64,
            ..decoder::Config::kokoro()
        },
        ..model::Config::kokoro_v1()
    }
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
