//! Kokoro-82M's prosody predictor: StyleTTS 2's `ProsodyPredictor` with its `DurationEncoder`
//! (kokoro 0.9.4's `modules.py`), loaded under PyTorch's parameter names (`predictor.*` in
//! Kokoro's checkpoint).
//!
//! `KModel.forward_with_tokens` uses it in three steps, one method each here:
//! 1. [`ProsodyPredictor::encode`]: PL-BERT's projected features and the style vector → `d`,
//!    through `n_layers` pairs of a bidirectional LSTM and an AdaLayerNorm, the style appended
//!    to every step before each LSTM and after the last norm;
//! 2. [`ProsodyPredictor::durations`]: `d` → each phoneme's duration in frames, unrounded; the
//!    caller divides by the speed, rounds, and aligns `d` to frames (`en`);
//! 3. [`ProsodyPredictor::f0_n`]: `en` → the pitch (F0) and energy (N) curves at twice the frame
//!    rate, through a shared LSTM and two stacks of `AdainResBlk1d`.
//!
//! Kokoro runs one unpadded utterance at a time: its text mask is all false, so PyTorch's
//! `masked_fill`s change nothing and packing the LSTMs' inputs is the plain LSTM. This port has
//! neither: every batch row is a whole utterance. Dropout is the identity in inference.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::kokoro::predictor::ProsodyPredictor;
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! // Kokoro: style 128, d_hid 512, 3 layers, max_dur 50.
//! let predictor = ProsodyPredictor::new(8, 16, 2, 50, vb)?;
//! let style = Tensor::randn(0f32, 1., (1, 8), &Device::Cpu)?;
//! let d_en = Tensor::randn(0f32, 1., (1, 16, 6), &Device::Cpu)?; // 6 phonemes
//! let d = predictor.encode(&d_en, &style)?;
//! assert_eq!(d.dims(), [1, 6, 24]);
//! assert_eq!(predictor.durations(&d)?.dims(), [1, 6]);
//! let en = Tensor::randn(0f32, 1., (1, 24, 10), &Device::Cpu)?; // 10 frames
//! let (f0, n) = predictor.f0_n(&en, &style)?;
//! assert_eq!((f0.dims(), n.dims()), ([1, 20].as_slice(), [1, 20].as_slice()));
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor, D};
use candle_nn::{linear, Conv1dConfig, Linear, VarBuilder};

use super::blocks::{conv1d, AdainResBlk1d, Conv1d};
use crate::ops::BiLstm;

/// Largest width (style, hidden, duration bins) the predictor may be built with.
pub const MAX_DIM: usize = 1 << 20;
/// Most LSTM + AdaLayerNorm pairs the duration encoder may have.
pub const MAX_LAYERS: usize = 1024;
/// Epsilon of StyleTTS 2's `AdaLayerNorm` (its default, which Kokoro keeps).
pub const ADA_LAYER_NORM_EPS: f64 = 1e-5;

/// StyleTTS 2's `AdaLayerNorm` on `(batch, T, channels)`: LayerNorm over channels without
/// affine parameters, then `(1 + γ) · x + β`, γ and β the two halves of `fc(style)`.
#[derive(Debug, Clone)]
struct AdaLayerNorm {
    fc: Linear,
    channels: usize,
}

impl AdaLayerNorm {
    fn new(style_dim: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { fc: linear(style_dim, 2 * channels, vb.pp("fc"))?, channels })
    }

    /// `x` `(batch, T, channels)`, `style` `(batch, style_dim)`.
    fn forward(&self, x: &Tensor, style: &Tensor) -> Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&var.affine(1., ADA_LAYER_NORM_EPS)?.sqrt()?)?;
        let h = self.fc.forward(style)?.unsqueeze(1)?;
        let gamma = h.narrow(2, 0, self.channels)?;
        let beta = h.narrow(2, self.channels, self.channels)?;
        normed.broadcast_mul(&gamma.affine(1., 1.)?)?.broadcast_add(&beta)
    }
}

/// StyleTTS 2's `ProsodyPredictor` in inference: the duration encoder, the duration head, and
/// the F0 / energy head (`F0Ntrain`).
#[derive(Debug, Clone)]
pub struct ProsodyPredictor {
    /// The duration encoder's `(LSTM, AdaLayerNorm)` pairs (`text_encoder.lstms.{2i, 2i+1}`).
    encoder: Vec<(BiLstm, AdaLayerNorm)>,
    lstm: BiLstm,
    duration_proj: Linear,
    shared: BiLstm,
    f0: Vec<AdainResBlk1d>,
    n: Vec<AdainResBlk1d>,
    f0_proj: Conv1d,
    n_proj: Conv1d,
    style_dim: usize,
    d_hid: usize,
}

impl ProsodyPredictor {
    /// Loads PyTorch's names from `vb`: `text_encoder.lstms.{2i}.*` (LSTM, input
    /// `d_hid + style_dim`, `d_hid / 2` per direction) and `text_encoder.lstms.{2i+1}.fc.*`
    /// (AdaLayerNorm) for `i < n_layers`; `lstm.*` and `shared.*` (the same LSTM shape);
    /// `duration_proj.linear_layer.*` (`d_hid` → `max_dur`); `F0.{0,1,2}.*` and `N.{0,1,2}.*`
    /// (`AdainResBlk1d` `d_hid → d_hid`, `d_hid → d_hid / 2` upsampling, `d_hid / 2 → d_hid / 2`);
    /// `F0_proj.*` and `N_proj.*` (1×1 convolutions to one channel).
    ///
    /// `d_hid` must be even: the LSTMs' `d_hid / 2` per direction must give back `d_hid` features.
    pub fn new(style_dim: usize, d_hid: usize, n_layers: usize, max_dur: usize, vb: VarBuilder) -> Result<Self> {
        for (name, value) in [("style_dim", style_dim), ("d_hid", d_hid), ("max_dur", max_dur)] {
            if value == 0 || value > MAX_DIM {
                bail!("Kokoro prosody predictor: {name} is {value}, must be between 1 and {MAX_DIM}");
            }
        }
        if d_hid % 2 != 0 {
            bail!("Kokoro prosody predictor: d_hid is {d_hid}, must be even (the LSTMs have d_hid / 2 per direction)");
        }
        if n_layers > MAX_LAYERS {
            bail!("Kokoro prosody predictor: n_layers is {n_layers}, must be at most {MAX_LAYERS}");
        }
        let (width, half) = (d_hid + style_dim, d_hid / 2);
        let lstms = vb.pp("text_encoder").pp("lstms");
        let encoder = (0..n_layers)
            .map(|i| {
                let lstm = BiLstm::new(width, half, lstms.pp(2 * i))?;
                Ok((lstm, AdaLayerNorm::new(style_dim, d_hid, lstms.pp(2 * i + 1))?))
            })
            .collect::<Result<_>>()?;
        let stack = |vb: VarBuilder| -> Result<Vec<AdainResBlk1d>> {
            Ok(vec![
                AdainResBlk1d::new(d_hid, d_hid, style_dim, false, vb.pp("0"))?,
                AdainResBlk1d::new(d_hid, half, style_dim, true, vb.pp("1"))?,
                AdainResBlk1d::new(half, half, style_dim, false, vb.pp("2"))?,
            ])
        };
        let one = Conv1dConfig::default();
        Ok(Self {
            encoder,
            lstm: BiLstm::new(width, half, vb.pp("lstm"))?,
            duration_proj: linear(d_hid, max_dur, vb.pp("duration_proj").pp("linear_layer"))?,
            shared: BiLstm::new(width, half, vb.pp("shared"))?,
            f0: stack(vb.pp("F0"))?,
            n: stack(vb.pp("N"))?,
            f0_proj: conv1d(half, 1, 1, one, true, vb.pp("F0_proj"))?,
            n_proj: conv1d(half, 1, 1, one, true, vb.pp("N_proj"))?,
            style_dim,
            d_hid,
        })
    }

    /// The duration encoder (`predictor.text_encoder(d_en, s, lengths, mask)`): `d_en`
    /// `(batch, d_hid, T)` (PL-BERT through `bert_encoder`, channels first), `style`
    /// `(batch, style_dim)` (`ref_s[:, 128:]`) → `d` `(batch, T, d_hid + style_dim)`, the style
    /// in its last `style_dim` features.
    pub fn encode(&self, d_en: &Tensor, style: &Tensor) -> Result<Tensor> {
        let (batch, channels, t) =
            d_en.dims3().map_err(|e| e.context("Kokoro prosody predictor wants d_en as (batch, d_hid, T)"))?;
        if channels != self.d_hid || t == 0 {
            bail!(
                "Kokoro prosody predictor: d_en of shape {:?}, expected ({batch}, {}, T >= 1)",
                d_en.dims(),
                self.d_hid
            );
        }
        self.check_style(style, batch)?;
        // The style repeated at every step, appended before each LSTM and after the last norm.
        let s = style.unsqueeze(1)?.broadcast_as((batch, t, self.style_dim))?.contiguous()?;
        let mut x = Tensor::cat(&[&d_en.transpose(1, 2)?, &s], 2)?;
        for (lstm, norm) in &self.encoder {
            let h = norm.forward(&lstm.forward(&x)?, style)?;
            x = Tensor::cat(&[&h, &s], 2)?;
        }
        Ok(x)
    }

    /// The duration head: `d` `(batch, T, d_hid + style_dim)` from [`Self::encode`] →
    /// `sigmoid(duration_proj(lstm(d))).sum(-1)`, `(batch, T)`: each phoneme's length in frames,
    /// between 0 and `max_dur`. Kokoro then divides by the speed and rounds with `torch.round`,
    /// which rounds halves to even (candle's `round` rounds them away from zero).
    pub fn durations(&self, d: &Tensor) -> Result<Tensor> {
        let x = self.lstm.forward(d)?;
        candle_nn::ops::sigmoid(&self.duration_proj.forward(&x)?)?.sum(D::Minus1)
    }

    /// `F0Ntrain`: `en` `(batch, d_hid + style_dim, frames)` (`d` aligned to frames, channels
    /// first), `style` `(batch, style_dim)` → `(F0, N)`, each `(batch, 2·frames)`. `frames` must
    /// be at least 2 (the blocks' instance norms, as in PyTorch).
    pub fn f0_n(&self, en: &Tensor, style: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, channels, frames) = en
            .dims3()
            .map_err(|e| e.context("Kokoro prosody predictor wants en as (batch, d_hid + style_dim, frames)"))?;
        if channels != self.d_hid + self.style_dim || frames < 2 {
            bail!(
                "Kokoro prosody predictor: en of shape {:?}, expected ({batch}, {}, frames >= 2)",
                en.dims(),
                self.d_hid + self.style_dim
            );
        }
        self.check_style(style, batch)?;
        let x = self.shared.forward(&en.transpose(1, 2)?.contiguous()?)?.transpose(1, 2)?.contiguous()?;
        let head = |blocks: &[AdainResBlk1d], proj: &Conv1d| -> Result<Tensor> {
            let mut y = x.clone();
            for block in blocks {
                y = block.forward(&y, style)?;
            }
            proj.forward(&y)?.squeeze(1)
        };
        Ok((head(&self.f0, &self.f0_proj)?, head(&self.n, &self.n_proj)?))
    }

    fn check_style(&self, style: &Tensor, batch: usize) -> Result<()> {
        if style.dims() != [batch, self.style_dim] {
            bail!(
                "Kokoro prosody predictor: style of shape {:?}, expected ({batch}, {})",
                style.dims(),
                self.style_dim
            );
        }
        Ok(())
    }
}
