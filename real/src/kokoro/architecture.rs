//! Kokoro's architecture file, `models.kokoro.architecture`: the layout of hexgrad/Kokoro-82M's
//! own `config.json`, read into [`Config`] with every size bounded, so that a small
//! random-weight Kokoro (`vortex models tiny`) loads through the same code as the published one.
//!
//! Keys as the reference reads them: `n_token`, `hidden_dim`, `style_dim` (128: the voices'
//! rows hold two styles of it), `n_layer`, `max_dur`,
//! `text_encoder_kernel_size`, `plbert` (transformers' `AlbertConfig` keys: `hidden_size`,
//! `num_attention_heads`, `intermediate_size`, `max_position_embeddings`, `num_hidden_layers`,
//! and optionally `embedding_size`, `type_vocab_size`, `layer_norm_eps`, `dropout`) and
//! `istftnet`. Accepted and not used by inference: `dim_in`, `dropout`, `max_conv_dim`,
//! `multispeaker`, `n_mels` (the reference's decoder takes it and ignores it). `vocab`, when
//! present, must be the G2P's ([`g2p::VOCAB`]): another phoneme set is not supported. One key
//! is this project's: `istftnet.decode_width`, the decoder's `encode`/`decode` width, which the
//! reference fixes at 1024 in code (default 1024). Any other key is refused.
//!
//! ```
//! use vortex_real::kokoro::{architecture, model::Config};
//! let json = architecture::to_json(&Config::kokoro_v1());
//! assert_eq!(architecture::from_json(&json).unwrap(), Config::kokoro_v1());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Config;
use super::{albert, decoder, g2p, voices};

/// Largest width (hidden, style, PL-BERT's, decoder channels) an architecture file may give:
/// twice the published model's widest (PL-BERT's intermediate 2048).
pub const MAX_WIDTH: usize = 4096;
/// Most layers (PL-BERT's repeats, the text encoder's convolutions and LSTMs).
pub const MAX_LAYERS: usize = 48;
/// Most attention heads.
pub const MAX_HEADS: usize = 64;
/// Largest `max_dur` (frames a token may last; published 50).
pub const MAX_DUR: usize = 200;
/// Largest text encoder kernel (odd; published 5).
pub const MAX_TEXT_KERNEL: usize = 31;
/// Longest PL-BERT context (published 512).
pub const MAX_CONTEXT: usize = 4096;
/// Shortest PL-BERT context: the G2P's longest chunk (510 phonemes) and the two boundary tokens.
pub const MIN_CONTEXT: usize = g2p::MAX_PHONEMES + 2;
/// Most `type_vocab_size` rows (published 2; Kokoro reads only row 0).
pub const MAX_TYPE_VOCAB: usize = 16;

/// `config.json` as the reference writes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "Kokoro's config.json: a map with n_token, hidden_dim, style_dim, n_layer, max_dur, \
                 text_encoder_kernel_size, plbert and istftnet"
)]
struct File {
    n_token: usize,
    hidden_dim: usize,
    style_dim: usize,
    n_layer: usize,
    max_dur: usize,
    text_encoder_kernel_size: usize,
    plbert: Plbert,
    istftnet: Istftnet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vocab: Option<BTreeMap<String, u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dim_in: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_conv_dim: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multispeaker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n_mels: Option<usize>,
}

/// The `plbert` section: `AlbertConfig` keyword arguments (its `vocab_size` is `n_token`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "PL-BERT's settings: a map with hidden_size, num_attention_heads, intermediate_size, \
                 max_position_embeddings, num_hidden_layers"
)]
struct Plbert {
    hidden_size: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    num_hidden_layers: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    embedding_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    type_vocab_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer_norm_eps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropout: Option<f64>,
}

/// The `istftnet` section.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "iSTFTNet's settings: a map with upsample_kernel_sizes, upsample_rates, gen_istft_hop_size, \
                 gen_istft_n_fft, resblock_dilation_sizes, resblock_kernel_sizes, upsample_initial_channel"
)]
struct Istftnet {
    upsample_kernel_sizes: Vec<usize>,
    upsample_rates: Vec<usize>,
    gen_istft_hop_size: usize,
    gen_istft_n_fft: usize,
    resblock_dilation_sizes: Vec<Vec<usize>>,
    resblock_kernel_sizes: Vec<usize>,
    upsample_initial_channel: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decode_width: Option<usize>,
}

/// Why an architecture file was refused: the key (dotted, `[i]` for list entries; empty for
/// the file itself) and what is wrong with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchitectureError {
    /// The key, e.g. `plbert.hidden_size`.
    pub key: String,
    /// What is wrong, with the value and the allowed range.
    pub reason: String,
}

impl std::fmt::Display for ArchitectureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "key {}: {}", self.key, self.reason)
        }
    }
}

fn refuse(key: impl Into<String>, reason: impl Into<String>) -> ArchitectureError {
    ArchitectureError { key: key.into(), reason: reason.into() }
}

/// `value` must be from `lo` to `hi`.
fn within(key: &str, value: usize, lo: usize, hi: usize) -> Result<usize, ArchitectureError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(refuse(key, format!("{value}; expected a whole number from {lo} to {hi}")))
    }
}

/// A list of `len` entries, each from `lo` to `hi`.
fn list_within(key: &str, list: &[usize], len: (usize, usize), lo: usize, hi: usize) -> Result<(), ArchitectureError> {
    if !(len.0..=len.1).contains(&list.len()) {
        return Err(refuse(key, format!("{} entries; expected {} to {}", list.len(), len.0, len.1)));
    }
    list.iter().enumerate().try_for_each(|(i, &v)| within(&format!("{key}[{i}]"), v, lo, hi).map(|_| ()))
}

/// Reads an architecture file's text.
pub fn from_json(text: &str) -> Result<Config, ArchitectureError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let file: File = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let key = e.path().to_string();
        refuse(if key == "." { String::new() } else { key }, crate::loading::quote(e.into_inner()))
    })?;
    de.end().map_err(|e| refuse("", format!("text after the JSON object: {e}")))?;
    to_config(file)
}

/// The file's values as the model's config, every size checked.
fn to_config(f: File) -> Result<Config, ArchitectureError> {
    let n_token = g2p::N_TOKEN as usize;
    within("n_token", f.n_token, n_token, MAX_WIDTH).map_err(|e| ArchitectureError {
        reason: format!("{} (the G2P's phoneme ids go up to {})", e.reason, n_token - 1),
        ..e
    })?;
    within("hidden_dim", f.hidden_dim, 1, MAX_WIDTH)?;
    if f.style_dim * 2 != voices::STYLE_DIM {
        return Err(refuse(
            "style_dim",
            format!(
                "{}; must be {} (a voice row holds {} values: two styles)",
                f.style_dim,
                voices::STYLE_DIM / 2,
                voices::STYLE_DIM
            ),
        ));
    }
    within("n_layer", f.n_layer, 1, MAX_LAYERS)?;
    within("max_dur", f.max_dur, 1, MAX_DUR)?;
    within("text_encoder_kernel_size", f.text_encoder_kernel_size, 1, MAX_TEXT_KERNEL)?;
    if f.text_encoder_kernel_size % 2 == 0 {
        return Err(refuse(
            "text_encoder_kernel_size",
            format!("{}; expected an odd number", f.text_encoder_kernel_size),
        ));
    }
    if let Some(vocab) = &f.vocab {
        check_vocab(vocab)?;
    }
    let p = &f.plbert;
    let hidden = within("plbert.hidden_size", p.hidden_size, 1, MAX_WIDTH)?;
    let heads = within("plbert.num_attention_heads", p.num_attention_heads, 1, MAX_HEADS)?;
    if hidden % heads != 0 {
        return Err(refuse(
            "plbert.num_attention_heads",
            format!("{heads}, which does not divide plbert.hidden_size ({hidden})"),
        ));
    }
    within("plbert.intermediate_size", p.intermediate_size, 1, MAX_WIDTH)?;
    within("plbert.max_position_embeddings", p.max_position_embeddings, MIN_CONTEXT, MAX_CONTEXT).map_err(|e| {
        ArchitectureError { reason: format!("{} (the G2P's chunks take up to {MIN_CONTEXT} ids)", e.reason), ..e }
    })?;
    within("plbert.num_hidden_layers", p.num_hidden_layers, 1, MAX_LAYERS)?;
    let albert_default = albert::Config::kokoro();
    let embedding_size = p.embedding_size.unwrap_or(albert_default.embedding_size);
    within("plbert.embedding_size", embedding_size, 1, MAX_WIDTH)?;
    let type_vocab_size = p.type_vocab_size.unwrap_or(albert_default.type_vocab_size);
    within("plbert.type_vocab_size", type_vocab_size, 1, MAX_TYPE_VOCAB)?;
    let layer_norm_eps = p.layer_norm_eps.unwrap_or(albert_default.layer_norm_eps);
    if !(layer_norm_eps > 0.0 && layer_norm_eps <= 1.0) {
        return Err(refuse(
            "plbert.layer_norm_eps",
            format!("{layer_norm_eps}; expected a number above 0 and at most 1"),
        ));
    }
    let plbert = albert::Config {
        vocab_size: f.n_token,
        embedding_size,
        hidden_size: hidden,
        num_hidden_layers: p.num_hidden_layers,
        num_attention_heads: heads,
        intermediate_size: p.intermediate_size,
        max_position_embeddings: p.max_position_embeddings,
        type_vocab_size,
        layer_norm_eps,
    };
    plbert.validate().map_err(|e| refuse("plbert", e.to_string()))?;

    let i = &f.istftnet;
    let stages = (1, decoder::MAX_STAGES);
    list_within("istftnet.upsample_rates", &i.upsample_rates, stages, 1, decoder::MAX_RATE)?;
    list_within("istftnet.upsample_kernel_sizes", &i.upsample_kernel_sizes, stages, 1, decoder::MAX_KERNEL)?;
    list_within("istftnet.resblock_kernel_sizes", &i.resblock_kernel_sizes, stages, 1, decoder::MAX_KERNEL)?;
    if i.resblock_dilation_sizes.len() != i.resblock_kernel_sizes.len() {
        return Err(refuse(
            "istftnet.resblock_dilation_sizes",
            format!(
                "{} lists; expected one per resblock kernel ({})",
                i.resblock_dilation_sizes.len(),
                i.resblock_kernel_sizes.len()
            ),
        ));
    }
    for (n, dilations) in i.resblock_dilation_sizes.iter().enumerate() {
        list_within(&format!("istftnet.resblock_dilation_sizes[{n}]"), dilations, (3, 3), 1, decoder::MAX_RATE)?;
    }
    within("istftnet.upsample_initial_channel", i.upsample_initial_channel, 1, MAX_WIDTH)?;
    within("istftnet.gen_istft_n_fft", i.gen_istft_n_fft, 2, decoder::MAX_N_FFT)?;
    within("istftnet.gen_istft_hop_size", i.gen_istft_hop_size, 1, decoder::MAX_N_FFT)?;
    let decode_width = i.decode_width.unwrap_or(decoder::HIDDEN);
    within("istftnet.decode_width", decode_width, 1, MAX_WIDTH)?;
    let istftnet = decoder::Config {
        resblock_kernel_sizes: i.resblock_kernel_sizes.clone(),
        upsample_rates: i.upsample_rates.clone(),
        upsample_initial_channel: i.upsample_initial_channel,
        resblock_dilation_sizes: i.resblock_dilation_sizes.clone(),
        upsample_kernel_sizes: i.upsample_kernel_sizes.clone(),
        gen_istft_n_fft: i.gen_istft_n_fft,
        gen_istft_hop_size: i.gen_istft_hop_size,
        decode_width,
    };
    istftnet.validate().map_err(|e| refuse("istftnet", e.to_string()))?;
    Ok(Config {
        n_token: f.n_token,
        hidden_dim: f.hidden_dim,
        style_dim: f.style_dim,
        n_layer: f.n_layer,
        max_dur: f.max_dur,
        text_encoder_kernel_size: f.text_encoder_kernel_size,
        plbert,
        istftnet,
    })
}

/// A `vocab` must map exactly the G2P's phonemes to the G2P's ids.
fn check_vocab(vocab: &BTreeMap<String, u32>) -> Result<(), ArchitectureError> {
    let ours: BTreeMap<String, u32> = g2p::VOCAB.iter().map(|&(c, id)| (c.to_string(), id)).collect();
    if let Some((symbol, id)) = vocab.iter().find(|&(s, id)| ours.get(s) != Some(id)) {
        let theirs = ours.get(symbol).map_or("no id".to_string(), |i| format!("id {i}"));
        return Err(refuse(
            format!("vocab.{}", crate::loading::quote(symbol)),
            format!(
                "{id}, where the G2P (Kokoro v1.0's phoneme set) has {theirs}: another vocabulary is not supported"
            ),
        ));
    }
    if vocab.len() != ours.len() {
        return Err(refuse("vocab", format!("{} entries; Kokoro v1.0's has {}", vocab.len(), ours.len())));
    }
    Ok(())
}

/// `cfg` as an architecture file in the reference's layout (with the G2P's `vocab`); the keys
/// whose values are the reference's defaults are left out. [`from_json`] reads it back to `cfg`
/// when `cfg.plbert.vocab_size` is `cfg.n_token`, as in every Kokoro.
pub fn to_json(cfg: &Config) -> String {
    let albert_default = albert::Config::kokoro();
    let differs = |v: usize, d: usize| (v != d).then_some(v);
    let p = &cfg.plbert;
    let i = &cfg.istftnet;
    let file = File {
        n_token: cfg.n_token,
        hidden_dim: cfg.hidden_dim,
        style_dim: cfg.style_dim,
        n_layer: cfg.n_layer,
        max_dur: cfg.max_dur,
        text_encoder_kernel_size: cfg.text_encoder_kernel_size,
        plbert: Plbert {
            hidden_size: p.hidden_size,
            num_attention_heads: p.num_attention_heads,
            intermediate_size: p.intermediate_size,
            max_position_embeddings: p.max_position_embeddings,
            num_hidden_layers: p.num_hidden_layers,
            embedding_size: differs(p.embedding_size, albert_default.embedding_size),
            type_vocab_size: differs(p.type_vocab_size, albert_default.type_vocab_size),
            layer_norm_eps: (p.layer_norm_eps != albert_default.layer_norm_eps).then_some(p.layer_norm_eps),
            dropout: None,
        },
        istftnet: Istftnet {
            upsample_kernel_sizes: i.upsample_kernel_sizes.clone(),
            upsample_rates: i.upsample_rates.clone(),
            gen_istft_hop_size: i.gen_istft_hop_size,
            gen_istft_n_fft: i.gen_istft_n_fft,
            resblock_dilation_sizes: i.resblock_dilation_sizes.clone(),
            resblock_kernel_sizes: i.resblock_kernel_sizes.clone(),
            upsample_initial_channel: i.upsample_initial_channel,
            decode_width: differs(i.decode_width, decoder::HIDDEN),
        },
        vocab: Some(g2p::VOCAB.iter().map(|&(c, id)| (c.to_string(), id)).collect()),
        dim_in: None,
        dropout: None,
        max_conv_dim: None,
        multispeaker: None,
        n_mels: None,
    };
    serde_json::to_string_pretty(&file).expect("plain numbers and strings serialize") + "\n"
}
