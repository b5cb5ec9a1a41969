//! Kokoro-82M (StyleTTS 2 with an iSTFTNet vocoder) in candle, module by module, each checked
//! against the `kokoro` package's PyTorch reference on random weights. The ops it needs and
//! candle lacks are in [`crate::ops`].
//!
//! - [`albert`]: PL-BERT, the ALBERT text model Kokoro runs over phoneme ids.
//! - [`architecture`]: the `config.json` that `models.kokoro.architecture` names.
//! - [`blocks`]: weight-normed convolutions and `AdainResBlk1d`, shared by the predictor and
//!   the decoder.
//! - [`decoder`]: the decoder and its iSTFTNet vocoder: aligned text features, F0, energy and
//!   style to 24 kHz audio, the harmonic source's randomness an explicit seeded excitation.
//! - [`g2p`]: the English text front end: text → misaki phonemes → input ids, chunked to the
//!   model's 510 ids (misaki-rs without espeak).
//! - [`text_encoder`]: the acoustic text encoder (embedding, convolutions, BiLSTM) whose
//!   output, aligned to frames, the decoder reads.
//! - [`predictor`]: the prosody predictor: duration encoder, phoneme durations, F0 and energy.

pub mod albert;
pub mod architecture;
pub mod blocks;
pub mod decoder;
pub mod g2p;
pub mod model;
pub mod pipeline;
pub mod predictor;
pub mod text_encoder;
pub mod voices;
