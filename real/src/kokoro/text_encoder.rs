//! Kokoro-82M's acoustic text encoder: StyleTTS 2's `TextEncoder` (kokoro 0.9.4's
//! `modules.py`), loaded under PyTorch's parameter names (`text_encoder.*` in Kokoro's checkpoint).
//!
//! Phoneme ids are embedded, go through `depth` blocks of a weight-normed "same" convolution, a
//! LayerNorm over channels and LeakyReLU(0.2), then a bidirectional LSTM; the decoder reads the
//! result, aligned to frames, as its content input (`asr`).
//!
//! Kokoro runs one unpadded utterance at a time: its text mask is all false, so PyTorch's
//! `masked_fill`s change nothing and packing the LSTM's input is the plain LSTM. This port has
//! neither: every batch row is a whole utterance. Dropout is the identity in inference.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::kokoro::text_encoder::TextEncoder;
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let encoder = TextEncoder::new(16, 5, 3, 178, vb)?; // Kokoro: 512 channels, kernel 5, depth 3
//! let ids = Tensor::new(&[[0u32, 50, 83, 156, 0]], &Device::Cpu)?;
//! assert_eq!(encoder.forward(&ids)?.dims(), [1, 16, 5]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::{embedding, Embedding, LayerNorm, VarBuilder};

use super::blocks::{conv1d, same_padding, Conv1d, LEAKY_SLOPE};
use crate::ops::BiLstm;

/// Largest width (channels, kernel, vocabulary) the encoder may be built with.
pub const MAX_DIM: usize = 1 << 20;
/// Most convolution blocks the encoder may have.
pub const MAX_DEPTH: usize = 1024;
/// Epsilon of StyleTTS 2's channel LayerNorm (`modules.LayerNorm`'s default, which Kokoro keeps).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// StyleTTS 2's `TextEncoder` in inference: phoneme ids `(batch, T)` → features
/// `(batch, channels, T)`.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    embedding: Embedding,
    /// Each block's convolution and its LayerNorm (over the last dimension of `(batch, T, channels)`).
    cnn: Vec<(Conv1d, LayerNorm)>,
    lstm: BiLstm,
    n_symbols: usize,
}

impl TextEncoder {
    /// Loads `embedding.weight` `[n_symbols, channels]`, for each block `i < depth`
    /// `cnn.{i}.0.weight_g` / `weight_v` (or a folded `weight`) `[channels, channels, kernel_size]`,
    /// `cnn.{i}.0.bias`, `cnn.{i}.1.gamma` / `beta` `[channels]`, and the LSTM's `lstm.*`
    /// (`channels / 2` hidden units per direction).
    ///
    /// `channels` must be even (PyTorch's LSTM would otherwise return `channels − 1` features)
    /// and `kernel_size` odd (an even one shortens the sequence, which PyTorch's mask then
    /// refuses).
    pub fn new(channels: usize, kernel_size: usize, depth: usize, n_symbols: usize, vb: VarBuilder) -> Result<Self> {
        for (name, value) in [("channels", channels), ("kernel_size", kernel_size), ("n_symbols", n_symbols)] {
            if value == 0 || value > MAX_DIM {
                bail!("Kokoro text encoder: {name} is {value}, must be between 1 and {MAX_DIM}");
            }
        }
        if channels % 2 != 0 {
            bail!(
                "Kokoro text encoder: channels is {channels}, must be even (the LSTM has channels / 2 per direction)"
            );
        }
        if kernel_size % 2 == 0 {
            bail!("Kokoro text encoder: kernel_size is {kernel_size}, must be odd to keep the length");
        }
        if depth > MAX_DEPTH {
            bail!("Kokoro text encoder: depth is {depth}, must be at most {MAX_DEPTH}");
        }
        let cnn = (0..depth)
            .map(|i| {
                let block = vb.pp("cnn").pp(i);
                let conv = conv1d(channels, channels, kernel_size, same_padding(kernel_size, 1), true, block.pp("0"))?;
                let norm = block.pp("1");
                let norm = LayerNorm::new(norm.get(channels, "gamma")?, norm.get(channels, "beta")?, LAYER_NORM_EPS);
                Ok((conv, norm))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            embedding: embedding(n_symbols, channels, vb.pp("embedding"))?,
            cnn,
            lstm: BiLstm::new(channels, channels / 2, vb.pp("lstm"))?,
            n_symbols,
        })
    }

    /// `ids`: `(batch, T)` phoneme ids (u8, u32 or i64), each below `n_symbols`, `T ≥ 1`;
    /// returns `(batch, channels, T)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2().map_err(|e| e.context("Kokoro text encoder wants ids as (batch, T)"))?;
        if t == 0 {
            bail!("Kokoro text encoder: empty input, shape {:?}", ids.dims());
        }
        if !matches!(ids.dtype(), DType::U8 | DType::U32 | DType::I64) {
            bail!("Kokoro text encoder: ids of dtype {:?}, expected u8, u32 or i64", ids.dtype());
        }
        // The range check costs one small read back, and gives the same refusal on every device
        // (candle's CUDA gather does not check its indices).
        let flat = ids.flatten_all()?.to_dtype(DType::I64)?;
        let (lowest, highest) = (flat.min(0)?.to_scalar::<i64>()?, flat.max(0)?.to_scalar::<i64>()?);
        if lowest < 0 || highest >= self.n_symbols as i64 {
            bail!(
                "Kokoro text encoder: phoneme ids from {lowest} to {highest}, must be between 0 and {}",
                self.n_symbols - 1
            );
        }

        // (batch, T, channels) between blocks: the layout the LayerNorm and the LSTM want; the
        // convolution alone wants channels first.
        let mut x = self.embedding.forward(ids)?;
        for (conv, norm) in &self.cnn {
            let y = conv.forward(&x.transpose(1, 2)?.contiguous()?)?.transpose(1, 2)?.contiguous()?;
            x = candle_nn::ops::leaky_relu(&norm.forward(&y)?, LEAKY_SLOPE)?;
        }
        self.lstm.forward(&x)?.transpose(1, 2)?.contiguous()
    }
}
