//! Tiny random-weight models written to a temp dir in the production file layout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{Init, VarBuilder, VarMap};
use candle_transformers::models::clip::ClipModel;
use vortex::config::{ClipModelConfig, ModelDtype};
use vortex_real::clip::HfClipConfig;

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
    let b = write_tiny_clip(dir, "clip_b32", 16);
    let l = write_tiny_clip(dir, "clip_l14", 16);
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.yaml")).unwrap();
    let entry = |c: &ClipModelConfig| {
        format!(
            "\n    weights: {}\n    tokenizer: {}\n    config: {}\n    dtype: f32",
            c.weights.display(),
            c.tokenizer.display(),
            c.config.display()
        )
    };
    let text =
        base.replace("models: {}", &format!("models:\n  clip_b32:{}\n  clip_l14:{}", entry(&b), entry(&l))) + extra;
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}
