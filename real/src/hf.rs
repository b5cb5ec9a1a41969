//! Hugging Face `config.json` shapes read by more than one model: the CLIP towers (the dual
//! CLIP ensemble's models, and Flux's CLIP-L text encoder, whose `config.json` is a text tower
//! alone).

use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig};
use serde::Deserialize;

/// One tower's sizes in `config.json`.
#[derive(Debug, Clone, Deserialize)]
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
        return Err(format!("hidden_act {:?} is not supported (quick_gelu only)", t.hidden_act));
    }
    Ok(ClipTextConfig {
        vocab_size: t.vocab_size.ok_or("missing vocab_size")?,
        embed_dim: t.hidden_size,
        activation: Activation::QuickGelu,
        intermediate_size: t.intermediate_size,
        max_position_embeddings: t.max_position_embeddings.ok_or("missing max_position_embeddings")?,
        pad_with: None,
        num_hidden_layers: t.num_hidden_layers,
        num_attention_heads: t.num_attention_heads,
        projection_dim,
    })
}
