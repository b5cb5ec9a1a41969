//! Hugging Face `config.json` shapes read by more than one model: the CLIP towers (the dual
//! CLIP ensemble's models, and Flux's CLIP-L text encoder, whose `config.json` is a text tower
//! alone).

use std::path::Path;

use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use serde::Deserialize;

use crate::loading::{from_json, read_json_value, JsonBounds};
use crate::LoadError;

/// The widest layer (`hidden_size`, `projection_dim`, `d_model`) an architecture file may
/// declare: 65,536 (the published models reach 4,096).
pub const MAX_WIDTH: u64 = 65_536;
/// The widest MLP (`intermediate_size`, `d_ff`): 262,144.
pub const MAX_MLP_WIDTH: u64 = 262_144;
/// Layers of one tower or block stack: 256.
pub const MAX_LAYERS: u64 = 256;
/// Attention heads: 1,024.
pub const MAX_HEADS: u64 = 1024;
/// Vocabulary size: 1,048,576.
pub const MAX_VOCAB: u64 = 1 << 20;
/// Text context in tokens (`max_position_embeddings`): 8,192.
pub const MAX_CONTEXT: u64 = 8192;
/// Side of a vision tower's input in pixels: 4,096.
pub const MAX_IMAGE_PX: u64 = 4096;

/// Which tower a `config.json` section describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tower {
    /// A text tower: needs a vocabulary and a context.
    Text,
    /// A vision tower: needs an input size and a patch size.
    Vision,
}

/// Checks one tower's numbers in a `config.json` (`prefix` is `text_config.`, `vision_config.`
/// or empty for a file that is the tower alone) before they reach candle: every size from 1 to
/// its limit, `hidden_size` a multiple of `num_attention_heads`, the image a whole number of
/// patches.
pub fn check_tower(b: &JsonBounds, prefix: &str, tower: Tower) -> Result<(), LoadError> {
    let key = |k: &str| format!("{prefix}{k}");
    let hidden = b.uint(&key("hidden_size"), 1, MAX_WIDTH)?;
    b.uint(&key("intermediate_size"), 1, MAX_MLP_WIDTH)?;
    b.uint(&key("num_hidden_layers"), 1, MAX_LAYERS)?;
    let heads = b.uint(&key("num_attention_heads"), 1, MAX_HEADS)?;
    b.multiple((&key("hidden_size"), hidden), (&key("num_attention_heads"), heads))?;
    match tower {
        Tower::Text => {
            b.uint(&key("vocab_size"), 1, MAX_VOCAB)?;
            b.uint(&key("max_position_embeddings"), 1, MAX_CONTEXT)?;
        }
        Tower::Vision => {
            let size = b.uint(&key("image_size"), 1, MAX_IMAGE_PX)?;
            let patch = b.uint(&key("patch_size"), 1, size as u64)?;
            b.multiple((&key("image_size"), size), (&key("patch_size"), patch))?;
        }
    }
    Ok(())
}

/// Reads a text tower's `config.json` (Flux's CLIP-L text encoder), its numbers checked.
pub fn read_text_tower(model: &str, path: &Path, published: &'static str) -> Result<HfTower, LoadError> {
    let value = read_json_value(model, path, published)?;
    check_tower(&JsonBounds::new(model, path, &value, published), "", Tower::Text)?;
    from_json(model, path, value, published)
}

/// One tower's sizes in `config.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a CLIP tower's settings (hidden_size, num_hidden_layers, ...)")]
pub struct HfTower {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Text: vocabulary size.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Text: context length (77 for CLIP).
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Vision: input size in pixels.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Vision: patch size.
    #[serde(default)]
    pub patch_size: Option<usize>,
    /// Activation; only `quick_gelu` is supported (every published CLIP uses it).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}

/// candle's text config from a `config.json` text tower (also Flux's CLIP-L text encoder, whose
/// `config.json` is the tower alone).
pub fn text_config(t: &HfTower, projection_dim: usize) -> Result<ClipTextConfig, String> {
    if t.hidden_act != "quick_gelu" {
        return Err(format!(
            "hidden_act \"{}\" is not supported (quick_gelu only)",
            crate::loading::quote(&t.hidden_act)
        ));
    }
    Ok(ClipTextConfig {
        vocab_size: t.vocab_size.ok_or("key vocab_size is missing")?,
        embed_dim: t.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: t.intermediate_size,
        max_position_embeddings: t.max_position_embeddings.ok_or("key max_position_embeddings is missing")?,
        pad_with: None,
        num_hidden_layers: t.num_hidden_layers,
        num_attention_heads: t.num_attention_heads,
        projection_dim,
    })
}
