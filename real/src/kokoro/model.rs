//! Kokoro-82M end to end (kokoro 0.9.4's `KModel.forward_with_tokens`): phoneme ids and a voice
//! style in, 24 kHz samples and per-token durations out.
//!
//! PL-BERT reads the ids; a linear map takes its 768 widths to 512; the prosody predictor's
//! duration encoder and LSTM predict how many 25-ms frames each token lasts; the tokens are
//! repeated to that many frames (the alignment); the predictor's F0 and noise branches, and the
//! text encoder's features repeated the same way, drive the iSTFTNet decoder.
//!
//! The alignment is a gather (`index_select`) rather than the reference's one-hot matrix
//! product: the same values exactly, without a `tokens × frames` matrix.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::albert::{self, Albert};
use super::decoder::{self, Decoder, Excitation};
use super::predictor::ProsodyPredictor;
use super::text_encoder::TextEncoder;
use crate::executor::{CancelToken, ModelError};

/// Output sample rate in Hz.
pub const SAMPLE_RATE: u32 = decoder::SAMPLE_RATE as u32;
/// Samples per predicted frame: the decoder upsamples each frame 2 × 10 × 6 times and the
/// inverse STFT's hop is 5 (25 ms at 24 kHz).
pub const SAMPLES_PER_FRAME: usize = 600;
/// Most frames one call may predict (5 minutes of audio). A 510-phoneme chunk spoken at normal
/// speed takes about 1,500; the bound keeps a pathological prediction (random weights, a very
/// slow speed) from allocating gigabytes in the decoder.
pub const MAX_FRAMES: usize = 12_000;
/// Slowest and fastest speaking speed accepted (Kokoro's own demo offers 0.5 to 2).
pub const SPEED_RANGE: (f32, f32) = (0.5, 2.0);

/// Kokoro's architecture: its `config.json` without the vocabulary (the G2P holds that).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Phoneme vocabulary size (ids are below it).
    pub n_token: usize,
    /// Width of the text encoder, the predictor and the decoder's input.
    pub hidden_dim: usize,
    /// Width of each half of a voice style (decoder, predictor).
    pub style_dim: usize,
    /// Convolutions of the text encoder and LSTM layers of the duration encoder.
    pub n_layer: usize,
    /// Duration bins of the predictor: a token lasts at most this many frames at speed 1.
    pub max_dur: usize,
    /// Kernel of the text encoder's convolutions.
    pub text_encoder_kernel_size: usize,
    /// PL-BERT.
    pub plbert: albert::Config,
    /// The iSTFTNet decoder.
    pub istftnet: decoder::Config,
}

impl Config {
    /// Kokoro-82M v1.0 (`hexgrad/Kokoro-82M`'s `config.json`).
    pub fn kokoro_v1() -> Self {
        Config {
            n_token: 178,
            hidden_dim: 512,
            style_dim: 128,
            n_layer: 3,
            max_dur: 50,
            text_encoder_kernel_size: 5,
            plbert: albert::Config::kokoro(),
            istftnet: decoder::Config::kokoro(),
        }
    }
}

/// What one call synthesised.
#[derive(Debug, Clone)]
pub struct Output {
    /// Mono samples at [`SAMPLE_RATE`].
    pub samples: Vec<f32>,
    /// Frames ([`SAMPLES_PER_FRAME`] samples each) per input id, the padding ids included.
    pub durations: Vec<u32>,
}

/// Kokoro-82M loaded on a device.
#[derive(Debug, Clone)]
pub struct Kokoro {
    bert: Albert,
    bert_encoder: Linear,
    predictor: ProsodyPredictor,
    text_encoder: TextEncoder,
    decoder: Decoder,
    cfg: Config,
    device: Device,
}

impl Kokoro {
    /// Loads the five parts under their checkpoint names: `bert.*`, `bert_encoder.*`,
    /// `predictor.*`, `text_encoder.*`, `decoder.*`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_dim;
        Ok(Kokoro {
            bert: Albert::new(&cfg.plbert, vb.pp("bert"))?,
            bert_encoder: candle_nn::linear(cfg.plbert.hidden_size, h, vb.pp("bert_encoder"))?,
            predictor: ProsodyPredictor::new(cfg.style_dim, h, cfg.n_layer, cfg.max_dur, vb.pp("predictor"))?,
            text_encoder: TextEncoder::new(
                h,
                cfg.text_encoder_kernel_size,
                cfg.n_layer,
                cfg.n_token,
                vb.pp("text_encoder"),
            )?,
            decoder: Decoder::new(h, cfg.style_dim, &cfg.istftnet, vb.pp("decoder"))?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Samples per predicted frame: [`SAMPLES_PER_FRAME`] with Kokoro's decoder.
    pub fn samples_per_frame(&self) -> usize {
        2 * self.cfg.istftnet.samples_per_f0_frame()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Predicted frames per id, as the reference rounds them: `round(Σ sigmoid / speed)` (half to
    /// even, as `torch.round`), at least 1. `ids` include the padding 0 at both ends; `style`
    /// is a voice row of `2 · style_dim` values.
    pub fn durations(&self, ids: &[u32], style: &[f32], speed: f32) -> Result<Vec<u32>, ModelError> {
        Ok(self.front(ids, style, speed)?.durations)
    }

    /// Synthesises one utterance. `excitation` is called with the number of samples the
    /// harmonic source needs ([`Excitation::len_for`]) and returns its randomness (seeded in
    /// production, frozen in tests).
    pub fn forward(
        &self,
        ids: &[u32],
        style: &[f32],
        speed: f32,
        excitation: impl FnOnce(usize, &Device) -> candle_core::Result<Excitation>,
        cancel: &CancelToken,
    ) -> Result<Output, ModelError> {
        cancel.check()?;
        let front = self.front(ids, style, speed)?;
        cancel.check()?;
        let frames: usize = front.durations.iter().map(|&d| d as usize).sum();
        let index = Tensor::from_vec(front.frame_token, frames, &self.device)?;
        // en: (1, hidden + style, frames); the predictor's features repeated per frame.
        let en = front.d.transpose(1, 2)?.contiguous()?.index_select(&index, 2)?;
        let (f0, n) = self.predictor.f0_n(&en, &front.prosody_style)?;
        cancel.check()?;
        let asr = self.text_encoder.forward(&front.ids)?.contiguous()?.index_select(&index, 2)?;
        let excitation = excitation(Excitation::len_for(&self.cfg.istftnet, f0.dim(1)?), &self.device)?;
        // The decoder checks the audio is finite.
        let audio = self.decoder.forward(&asr, &f0, &n, &front.decoder_style, &excitation, cancel)?;
        Ok(Output { samples: audio.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?, durations: front.durations })
    }

    /// Everything up to the durations: checks the inputs, runs PL-BERT, the duration encoder and
    /// the duration head.
    fn front(&self, ids: &[u32], style: &[f32], speed: f32) -> Result<Front, ModelError> {
        let context = self.cfg.plbert.max_position_embeddings;
        if ids.len() < 3 || ids.len() > context {
            return Err(invalid(format!(
                "{} ids; Kokoro takes 3 to {context} (the phonemes and a 0 at each end)",
                ids.len()
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.cfg.n_token) {
            return Err(invalid(format!("id {bad} is outside the vocabulary of {}", self.cfg.n_token)));
        }
        let sd = self.cfg.style_dim;
        if style.len() != 2 * sd || style.iter().any(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "a style of {} values; a voice row has {} finite values",
                style.len(),
                2 * sd
            )));
        }
        if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
            return Err(invalid(format!("speed {speed}; Kokoro takes {} to {}", SPEED_RANGE.0, SPEED_RANGE.1)));
        }
        let dtype = self.bert_encoder.weight().dtype();
        let id_tensor = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let style_t = Tensor::new(style, &self.device)?.to_dtype(dtype)?.unsqueeze(0)?;
        let decoder_style = style_t.narrow(1, 0, sd)?;
        let prosody_style = style_t.narrow(1, sd, sd)?;

        let bert = self.bert.forward(&id_tensor, None)?;
        let d_en = self.bert_encoder.forward(&bert)?.transpose(1, 2)?;
        let d = self.predictor.encode(&d_en, &prosody_style)?;
        let raw = self.predictor.durations(&d)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let durations: Vec<u32> = raw
            .iter()
            .map(|&r| {
                // f32 division then half-to-even rounding: torch's `round(duration / speed)`.
                let f = (r / speed).round_ties_even();
                if f.is_finite() {
                    f.max(1.) as u32
                } else {
                    u32::MAX
                }
            })
            .collect();
        let frames = durations.iter().try_fold(0usize, |sum, &d| sum.checked_add(d as usize)).unwrap_or(usize::MAX);
        if frames > MAX_FRAMES {
            return Err(ModelError::InvalidOutput(format!(
                "Kokoro predicted {frames} frames ({:.0} s) for {} ids, more than the {MAX_FRAMES} one call may take",
                (frames * self.samples_per_frame()) as f64 / SAMPLE_RATE as f64,
                ids.len()
            )));
        }
        let frame_token: Vec<u32> =
            durations.iter().enumerate().flat_map(|(t, &d)| std::iter::repeat_n(t as u32, d as usize)).collect();
        Ok(Front { ids: id_tensor, d, durations, frame_token, decoder_style, prosody_style })
    }
}

/// The front half's results.
struct Front {
    ids: Tensor,
    /// The duration encoder's output, `(1, tokens, hidden + style)`.
    d: Tensor,
    durations: Vec<u32>,
    /// The token each frame repeats.
    frame_token: Vec<u32>,
    decoder_style: Tensor,
    prosody_style: Tensor,
}

fn invalid(reason: String) -> ModelError {
    input_error(format!("Kokoro input: {reason}"))
}

pub(crate) use crate::executor::input_error;
