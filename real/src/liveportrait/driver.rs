//! The audio-driven motion: what LivePortrait, normally driven by a video, is told to do in each
//! output frame. Per frame (24 per second, one for every started 1/24 s of audio):
//!
//! - **Lips**: a loudness envelope (RMS over a two-frame window, in dBFS, mapped from
//!   [`LIP_FLOOR_DBFS`] = closed to [`LIP_FULL_DBFS`] = fully open, then smoothed with a fast
//!   attack and a slower release) times the openness of the phonemes under the frame (Kokoro's
//!   per-phoneme timings: open vowels open wide, close vowels less, `p b m` shut the lips, pauses
//!   close them). Silence keeps the mouth closed.
//! - **Eyes**: blinks at a natural rate (a seeded renewal process: at least
//!   [`MIN_BLINK_GAP_S`] apart, exponential beyond, about 17 per minute for `neutral`), each
//!   [`BLINK_S`] long, closing faster than it opens.
//! - **Head**: a small seeded sway, the sum of two slow sines per axis, plus a slight nod with
//!   the loudness.
//!
//! The recipe's expression preset (`neutral`, `excited`, `manic`, `calm`) and its intensity
//! (from 0 to 1) scale the lips, the sway and the blink rate. The same audio, phonemes, expression and seed
//! give the same motion, bit for bit.
//!
//! ```
//! use vortex::recipe::Expression;
//! use vortex_real::liveportrait::driver::{drive, FPS};
//!
//! let sr = 24_000;
//! let tone: Vec<f32> = (0..sr).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect(); // 1 s
//! let motion = drive(&tone, sr as u32, &[], &Expression::default(), 7)?;
//! assert_eq!(motion.len(), FPS as usize);
//! assert!(motion[12].lip_open > 0.5);
//! # Ok::<(), vortex_real::liveportrait::driver::MotionError>(())
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vortex::recipe::Expression;

use crate::kokoro::pipeline::PhonemeTiming;

/// Output frames per second.
pub const FPS: u32 = 24;
/// At most this many frames (5 minutes) per clip: a longer audio is refused rather than
/// animated for minutes.
pub const MAX_FRAMES: usize = 5 * 60 * FPS as usize;
/// Loudness at or below which the lips stay closed.
pub const LIP_FLOOR_DBFS: f32 = -45.0;
/// Loudness at or above which the lips open fully (before the phoneme's openness).
pub const LIP_FULL_DBFS: f32 = -15.0;
/// Time constant of the envelope's rise (the mouth opens quickly).
pub const ATTACK_S: f32 = 0.02;
/// Time constant of the envelope's fall (and closes a little more slowly).
pub const RELEASE_S: f32 = 0.06;
/// Shortest time between two blinks.
pub const MIN_BLINK_GAP_S: f32 = 1.2;
/// A blink's length: closing, then opening.
pub const BLINK_S: f32 = 0.2;
/// Sample rates the driver accepts.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=192_000;

/// Why a motion cannot be derived.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MotionError {
    /// The expression preset is not one of [`Preset::NAMES`].
    #[error("expression.preset {0:?} is not one of neutral, excited, manic, calm")]
    UnknownPreset(String),
    /// The expression intensity is outside 0 to 1.
    #[error("expression.intensity {0} is outside 0 to 1")]
    Intensity(f32),
    /// The sample rate is outside [`SAMPLE_RATES`].
    #[error("audio sample rate {0} Hz is outside 8,000 to 192,000")]
    SampleRate(u32),
    /// The audio is longer than [`MAX_FRAMES`] frames.
    #[error("the audio lasts {frames} frames at 24 fps; at most {MAX_FRAMES} (5 minutes) are animated")]
    TooLong {
        /// Frames the audio would need.
        frames: usize,
    },
    /// A sample is NaN or infinite.
    #[error("audio sample {0} is not finite")]
    NonFinite(usize),
}

/// One output frame's motion targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMotion {
    /// How far the mouth opens: 0 closed, 1 fully open.
    pub lip_open: f32,
    /// How far the eyes are open: 1 open, 0 shut (a blink's middle).
    pub eye_open: f32,
    /// Head pitch offset from the source's pose, degrees (positive: nods down).
    pub pitch_deg: f32,
    /// Head yaw offset, degrees.
    pub yaw_deg: f32,
    /// Head roll offset, degrees.
    pub roll_deg: f32,
}

/// The recipe's expression presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A newsreader: moderate lips and sway.
    Neutral,
    /// Livelier: wider lips, more sway, more blinks.
    Excited,
    /// Exaggerated everything.
    Manic,
    /// Small lips, little sway, slow blinks.
    Calm,
}

/// How a preset at full intensity scales the motion.
#[derive(Debug, Clone, Copy)]
struct Gains {
    lip: f32,
    sway_deg: f32,
    blinks_per_min: f32,
}

impl Preset {
    /// The names recipes use.
    pub const NAMES: [&'static str; 4] = ["neutral", "excited", "manic", "calm"];

    /// The preset named `name`.
    pub fn parse(name: &str) -> Result<Self, MotionError> {
        match name {
            "neutral" => Ok(Preset::Neutral),
            "excited" => Ok(Preset::Excited),
            "manic" => Ok(Preset::Manic),
            "calm" => Ok(Preset::Calm),
            other => Err(MotionError::UnknownPreset(other.to_string())),
        }
    }

    fn gains(self) -> Gains {
        match self {
            Preset::Neutral => Gains { lip: 1.0, sway_deg: 3.0, blinks_per_min: 17.0 },
            Preset::Excited => Gains { lip: 1.2, sway_deg: 5.0, blinks_per_min: 22.0 },
            Preset::Manic => Gains { lip: 1.45, sway_deg: 9.0, blinks_per_min: 30.0 },
            Preset::Calm => Gains { lip: 0.8, sway_deg: 1.5, blinks_per_min: 12.0 },
        }
    }
}

/// How far a phoneme opens the mouth (0 to 1), by Kokoro's (misaki's) phoneme symbols: open
/// vowels and diphthongs that start open are widest, mid vowels less, close vowels least; the
/// bilabials `p b m` close the lips; other consonants leave them slightly apart; pauses (spaces,
/// punctuation) close them.
pub fn openness(symbol: char) -> f32 {
    match symbol {
        'ɑ' | 'æ' | 'a' | 'ɒ' | 'A' | 'I' | 'W' | 'ʌ' | 'ɐ' => 1.0,
        'ɛ' | 'ɔ' | 'ə' | 'ɜ' | 'O' | 'Y' | 'Q' | 'e' | 'o' | 'ɚ' => 0.7,
        'ᵊ' | 'i' | 'u' | 'ɪ' | 'ʊ' | 'ᵻ' | 'y' => 0.45,
        'p' | 'b' | 'm' => 0.0,
        'f' | 'v' | 'w' => 0.15,
        'ˈ' | 'ˌ' | 'ː' => 0.3, // marks attach to a neighbour; never a frame of their own in practice
        c if c.is_alphabetic() => 0.3,
        _ => 0.0,
    }
}

/// The motion of every frame for `samples` at `sample_rate`, with Kokoro's `phonemes` (empty:
/// loudness alone shapes the lips), the recipe's `expression` and `seed`.
pub fn drive(
    samples: &[f32],
    sample_rate: u32,
    phonemes: &[PhonemeTiming],
    expression: &Expression,
    seed: u64,
) -> Result<Vec<FrameMotion>, MotionError> {
    let preset = Preset::parse(&expression.preset)?;
    let intensity = expression.intensity;
    if !(0.0..=1.0).contains(&intensity) {
        return Err(MotionError::Intensity(intensity));
    }
    if !SAMPLE_RATES.contains(&sample_rate) {
        return Err(MotionError::SampleRate(sample_rate));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(MotionError::NonFinite(i));
    }
    let frames = frame_count(samples.len(), sample_rate);
    if frames > MAX_FRAMES {
        return Err(MotionError::TooLong { frames });
    }
    let gains = preset.gains();
    // Intensity 0.5 is the preset as described; 0 halves it, 1 makes it 1.5 ×.
    let scale = 0.5 + intensity;
    let loudness = envelope(samples, sample_rate, frames);
    let shapes = phoneme_openness(phonemes, sample_rate, frames);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let eyes = blinks(frames, gains.blinks_per_min * (0.75 + 0.5 * intensity), &mut rng);
    let sway = Sway::new(gains.sway_deg * scale, &mut rng);
    Ok((0..frames)
        .map(|f| {
            let t = f as f32 / FPS as f32;
            let level = loudness[f];
            let shape = if phonemes.is_empty() { 1.0 } else { shapes[f] };
            let (pitch, yaw, roll) = sway.at(t);
            FrameMotion {
                lip_open: (level * shape * gains.lip * scale).min(1.0),
                eye_open: eyes[f],
                // A slight nod on loud syllables, as speakers do.
                pitch_deg: pitch + 0.15 * gains.sway_deg * scale * level,
                yaw_deg: yaw,
                roll_deg: roll,
            }
        })
        .collect())
}

/// Frames for `samples` at `sample_rate`: one per started 1/24 s.
pub fn frame_count(samples: usize, sample_rate: u32) -> usize {
    (samples as u64 * u64::from(FPS)).div_ceil(u64::from(sample_rate)) as usize
}

/// The smoothed loudness of each frame, 0 (at or below the floor) to 1.
fn envelope(samples: &[f32], sample_rate: u32, frames: usize) -> Vec<f32> {
    let per_frame = sample_rate as f32 / FPS as f32;
    let coefficient = |tau: f32| 1.0 - (-1.0 / (FPS as f32 * tau)).exp();
    let (attack, release) = (coefficient(ATTACK_S), coefficient(RELEASE_S));
    let mut level = 0.0f32;
    (0..frames)
        .map(|f| {
            // Two frames wide, centred on the frame's middle.
            let centre = (f as f32 + 0.5) * per_frame;
            let start = ((centre - per_frame) as usize).min(samples.len());
            let end = ((centre + per_frame) as usize).min(samples.len());
            let window = &samples[start..end];
            let power = window.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / window.len().max(1) as f64;
            let dbfs = 10.0 * (power + 1e-12).log10() as f32;
            let target = ((dbfs - LIP_FLOOR_DBFS) / (LIP_FULL_DBFS - LIP_FLOOR_DBFS)).clamp(0.0, 1.0);
            level += (target - level) * if target > level { attack } else { release };
            level
        })
        .collect()
}

/// Each frame's openness: the phonemes under the frame's span, weighted by their overlap with
/// it (a frame across a vowel and a `p` is half open).
fn phoneme_openness(phonemes: &[PhonemeTiming], sample_rate: u32, frames: usize) -> Vec<f32> {
    let per_frame = f64::from(sample_rate) / f64::from(FPS);
    let mut out = vec![0f32; frames];
    for p in phonemes {
        let (start, end) = (p.start as f64, (p.start + p.len) as f64);
        let first = (start / per_frame) as usize;
        let last = ((end / per_frame).ceil() as usize).min(frames);
        for (f, slot) in out.iter_mut().enumerate().take(last).skip(first) {
            let (f0, f1) = (f as f64 * per_frame, (f + 1) as f64 * per_frame);
            let overlap = (end.min(f1) - start.max(f0)).max(0.0) / per_frame;
            *slot += (overlap as f32) * openness(p.symbol);
        }
    }
    out
}

/// Each frame's eye openness, 1 but during blinks.
fn blinks(frames: usize, per_minute: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut eyes = vec![1f32; frames];
    let mean_gap = 60.0 / per_minute;
    let extra = (mean_gap - MIN_BLINK_GAP_S).max(0.1);
    // The first blink comes at a random point of an ordinary gap, not at the clip's start.
    let mut t = rng.gen::<f32>() * mean_gap;
    let duration = frames as f32 / FPS as f32;
    while t < duration {
        for (f, eye) in eyes.iter_mut().enumerate() {
            let phase = (f as f32 / FPS as f32 - t) / BLINK_S;
            if (0.0..1.0).contains(&phase) {
                // Closing takes the first 40 %, opening the rest.
                let closure = if phase < 0.4 { phase / 0.4 } else { 1.0 - (phase - 0.4) / 0.6 };
                *eye = eye.min(1.0 - closure);
            }
        }
        let u: f32 = rng.gen_range(f32::EPSILON..1.0);
        t += MIN_BLINK_GAP_S + BLINK_S - extra * u.ln();
    }
    eyes
}

/// Two slow sines per axis with seeded periods and phases.
struct Sway {
    amplitude: f32,
    waves: [[(f32, f32); 2]; 3],
}

impl Sway {
    fn new(amplitude_deg: f32, rng: &mut ChaCha8Rng) -> Self {
        let mut wave =
            || (std::f32::consts::TAU / rng.gen_range(2.5f32..7.0), rng.gen_range(0.0..std::f32::consts::TAU));
        let waves = [[wave(), wave()], [wave(), wave()], [wave(), wave()]];
        Sway { amplitude: amplitude_deg, waves }
    }

    /// (pitch, yaw, roll) at `t` seconds; roll sways half as far.
    fn at(&self, t: f32) -> (f32, f32, f32) {
        let axis = |i: usize| self.waves[i].iter().map(|&(w, phase)| (w * t + phase).sin()).sum::<f32>() / 2.0;
        (self.amplitude * 0.6 * axis(0), self.amplitude * axis(1), self.amplitude * 0.5 * axis(2))
    }
}
