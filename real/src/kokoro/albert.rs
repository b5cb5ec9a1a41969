//! PL-BERT as Kokoro-82M runs it: transformers' `AlbertModel` (kokoro 0.9.4's `CustomAlbert`,
//! which returns only `last_hidden_state`), loaded under transformers' parameter names.
//!
//! ALBERT (Lan et al. 2019, <https://arxiv.org/abs/1909.11942>): small embeddings (word,
//! absolute position and token type, summed, then LayerNorm) projected to the hidden size, then
//! ONE transformer layer (post-LayerNorm attention, `gelu_new` feed-forward) applied
//! `num_hidden_layers` times with the same weights. Reference: `modeling_albert.py` in
//! transformers 4.57 and `model.py` in kokoro 0.9.4; Kokoro builds it as
//! `AlbertConfig(vocab_size=n_token, **config["plbert"])`, so AlbertConfig's defaults fill in
//! what its config leaves out ([`Config::kokoro`]).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::kokoro::albert::{Albert, Config};
//!
//! let cfg = Config { hidden_size: 32, num_attention_heads: 4, intermediate_size: 64,
//!                    num_hidden_layers: 2, ..Config::kokoro() };
//! let vars = VarMap::new();
//! let model = Albert::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
//! let ids = Tensor::new(&[[0u32, 5, 9, 0]], &Device::Cpu)?;
//! let mask = Tensor::new(&[[1u32, 1, 1, 1]], &Device::Cpu)?;
//! assert_eq!(model.forward(&ids, Some(&mask))?.dims(), [1, 4, 32]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

/// Largest width (vocabulary, embedding, hidden, intermediate, positions) a config may ask for.
pub const MAX_DIM: usize = 1 << 20;
/// Most times the shared layer may be applied.
pub const MAX_LAYERS: usize = 1024;

/// The subset of transformers' `AlbertConfig` that Kokoro's PL-BERT uses, under its field names.
/// The activation is always `gelu_new` (the tanh approximation), position embeddings absolute,
/// and there is one hidden group of one layer: AlbertConfig's defaults, which Kokoro keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Phoneme vocabulary (Kokoro's `n_token`).
    pub vocab_size: usize,
    /// Width of the word, position and token-type embeddings.
    pub embedding_size: usize,
    /// Width of the transformer layer.
    pub hidden_size: usize,
    /// How many times the one shared layer is applied.
    pub num_hidden_layers: usize,
    /// Attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest input, in tokens.
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding (only row 0 is used: Kokoro passes no token types).
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f64,
}

impl Config {
    /// Kokoro-82M's PL-BERT: its config's `plbert` section (hidden 768, 12 heads, intermediate
    /// 2048, 512 positions, 12 layers), `n_token` 178, and AlbertConfig's defaults for the rest.
    pub fn kokoro() -> Self {
        Config {
            vocab_size: 178,
            embedding_size: 128,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 2048,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// Refuses a config no model can have: zero or oversized widths, zero or too many layers,
    /// heads that do not divide the hidden size, a LayerNorm epsilon that is not positive.
    pub fn validate(&self) -> Result<()> {
        let widths = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, value) in widths {
            if value == 0 || value > MAX_DIM {
                bail!("ALBERT config: {name} is {value}, must be between 1 and {MAX_DIM}");
            }
        }
        if self.num_hidden_layers == 0 || self.num_hidden_layers > MAX_LAYERS {
            bail!("ALBERT config: num_hidden_layers is {}, must be between 1 and {MAX_LAYERS}", self.num_hidden_layers);
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            bail!(
                "ALBERT config: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.) {
            bail!("ALBERT config: layer_norm_eps is {}, must be positive", self.layer_norm_eps);
        }
        Ok(())
    }
}

/// Word + position + token-type (row 0) embeddings, then LayerNorm (`embeddings.*`).
#[derive(Debug, Clone)]
struct Embeddings {
    word: Embedding,
    /// `[max_position_embeddings, embedding_size]`.
    position: Tensor,
    /// `[1, embedding_size]`: token type 0, the only one Kokoro uses.
    token_type_0: Tensor,
    norm: LayerNorm,
}

impl Embeddings {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let word = embedding(cfg.vocab_size, cfg.embedding_size, vb.pp("word_embeddings"))?;
        let position = vb.get((cfg.max_position_embeddings, cfg.embedding_size), "position_embeddings.weight")?;
        let token_type = vb.get((cfg.type_vocab_size, cfg.embedding_size), "token_type_embeddings.weight")?;
        let norm = layer_norm(cfg.embedding_size, cfg.layer_norm_eps, vb.pp("LayerNorm"))?;
        Ok(Embeddings { word, position, token_type_0: token_type.narrow(0, 0, 1)?, norm })
    }

    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (_, t) = input_ids.dims2()?;
        let positions = self.position.narrow(0, 0, t)?;
        let xs = self.word.forward(input_ids)?.broadcast_add(&positions)?.broadcast_add(&self.token_type_0)?;
        self.norm.forward(&xs)
    }
}

/// The shared layer (`encoder.albert_layer_groups.0.albert_layers.0.*`): self-attention with a
/// residual LayerNorm, then `ffn` → `gelu_new` → `ffn_output` with a residual LayerNorm.
#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    attention_norm: LayerNorm,
    ffn: Linear,
    ffn_output: Linear,
    full_layer_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Layer {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let att = vb.pp("attention");
        Ok(Layer {
            query: linear(h, h, att.pp("query"))?,
            key: linear(h, h, att.pp("key"))?,
            value: linear(h, h, att.pp("value"))?,
            dense: linear(h, h, att.pp("dense"))?,
            attention_norm: layer_norm(h, eps, att.pp("LayerNorm"))?,
            ffn: linear(h, cfg.intermediate_size, vb.pp("ffn"))?,
            ffn_output: linear(cfg.intermediate_size, h, vb.pp("ffn_output"))?,
            full_layer_norm: layer_norm(h, eps, vb.pp("full_layer_layer_norm"))?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// `xs` `[b, t, hidden]`; `bias` `[b, 1, 1, t]`, added to the attention scores.
    fn forward(&self, xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, t, hidden) = xs.dims3()?;
        let split = |x: Tensor| x.reshape((b, t, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = split(self.query.forward(xs)?)?;
        let k = split(self.key.forward(xs)?)?;
        let v = split(self.value.forward(xs)?)?;
        let scale = 1. / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, hidden))?;
        let attended = self.attention_norm.forward(&(xs + self.dense.forward(&context)?)?)?;
        let ffn = self.ffn_output.forward(&self.ffn.forward(&attended)?.gelu()?)?;
        self.full_layer_norm.forward(&(ffn + attended)?)
    }
}

/// Kokoro's PL-BERT: `AlbertModel` returning `last_hidden_state`.
#[derive(Debug, Clone)]
pub struct Albert {
    embeddings: Embeddings,
    mapping_in: Linear,
    layer: Layer,
    cfg: Config,
}

impl Albert {
    /// Validates `cfg` ([`Config::validate`]) and loads transformers' names from `vb`:
    /// `embeddings.*`, `encoder.embedding_hidden_mapping_in.*` and
    /// `encoder.albert_layer_groups.0.albert_layers.0.*` (a checkpoint's `pooler.*` is unused).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let encoder = vb.pp("encoder");
        Ok(Albert {
            embeddings: Embeddings::new(cfg, vb.pp("embeddings"))?,
            mapping_in: linear(cfg.embedding_size, cfg.hidden_size, encoder.pp("embedding_hidden_mapping_in"))?,
            layer: Layer::new(cfg, encoder.pp("albert_layer_groups.0.albert_layers.0"))?,
            cfg: cfg.clone(),
        })
    }

    /// The config this model was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// `input_ids` `[b, t]` (integers), `attention_mask` `[b, t]` (any dtype, 1 where a token is
    /// real and 0 on padding; `None` attends everywhere) → `last_hidden_state` `[b, t, hidden]`.
    /// As in transformers, a masked key gets the dtype's lowest value added to its score, and
    /// padded positions still get outputs (which the caller ignores). Inputs longer than
    /// `max_position_embeddings` are refused.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if t == 0 || t > self.cfg.max_position_embeddings {
            bail!("ALBERT: input of {t} tokens, must be between 1 and {}", self.cfg.max_position_embeddings);
        }
        let xs = self.mapping_in.forward(&self.embeddings.forward(input_ids)?)?;
        let dtype = xs.dtype();
        let bias = match attention_mask {
            Some(mask) => {
                if mask.dims() != [b, t] {
                    bail!("ALBERT: attention mask of shape {:?}, input ids of shape [{b}, {t}]", mask.dims());
                }
                // (1 − mask) · lowest, transformers' additive mask.
                mask.to_dtype(dtype)?.affine(-lowest(dtype), lowest(dtype))?.reshape((b, 1, 1, t))?
            }
            None => Tensor::zeros((b, 1, 1, t), dtype, xs.device())?,
        };
        let mut xs = xs;
        for _ in 0..self.cfg.num_hidden_layers {
            xs = self.layer.forward(&xs, &bias)?;
        }
        Ok(xs)
    }
}

/// `torch.finfo(dtype).min`: transformers' additive mask value for a masked key.
fn lowest(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.,
        DType::BF16 => -3.3895313892515355e38,
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}
