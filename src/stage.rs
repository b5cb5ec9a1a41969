//! The four stages of a slot and the `Stages` backend trait that runs them.
//!
//! The scheduler never knows what a stage does: the simulator implements [`Stages`] with drawn
//! latencies, real mode with candle models, tests with scripted doubles.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;

/// One stage of the slot pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Text-to-speech (Kokoro-82M); runs in parallel with `Image`.
    Audio,
    /// The actor image (Flux.1-Schnell); runs in parallel with `Audio`.
    Image,
    /// LivePortrait animation of the image, driven by the audio.
    Video,
    /// Dual CLIP verification of the video against the prompt.
    Clip,
}

impl Stage {
    /// All stages, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Audio, Stage::Image, Stage::Video, Stage::Clip];

    /// The stage's lowercase name, as used in config keys, events and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Audio => "audio",
            Stage::Image => "image",
            Stage::Video => "video",
            Stage::Clip => "clip",
        }
    }

    /// Position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per stage, indexed by [`Stage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PerStage<T> {
    /// Audio's value.
    pub audio: T,
    /// Image's value.
    pub image: T,
    /// Video's value.
    pub video: T,
    /// Verification's value.
    pub clip: T,
}

impl<T> PerStage<T> {
    /// Builds from the four values in pipeline order.
    pub const fn new(audio: T, image: T, video: T, clip: T) -> Self {
        PerStage { audio, image, video, clip }
    }

    /// Builds by calling `f` for each stage.
    pub fn from_fn(mut f: impl FnMut(Stage) -> T) -> Self {
        PerStage { audio: f(Stage::Audio), image: f(Stage::Image), video: f(Stage::Video), clip: f(Stage::Clip) }
    }

    /// The value of one stage.
    pub fn get(&self, stage: Stage) -> &T {
        match stage {
            Stage::Audio => &self.audio,
            Stage::Image => &self.image,
            Stage::Video => &self.video,
            Stage::Clip => &self.clip,
        }
    }

    /// The value of one stage, mutably.
    pub fn get_mut(&mut self, stage: Stage) -> &mut T {
        match stage {
            Stage::Audio => &mut self.audio,
            Stage::Image => &mut self.image,
            Stage::Video => &mut self.video,
            Stage::Clip => &mut self.clip,
        }
    }
}

/// Why one attempt of a stage failed (a timeout is not a `StageError`: the scheduler imposes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    message: Cow<'static, str>,
}

impl StageError {
    /// An error with the given explanation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        StageError { message: message.into() }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What the scheduler needs to know of a verification result.
pub trait Verdict {
    /// True when the CLIP self-check passed. A failed check is reported, never an abort.
    fn passed(&self) -> bool;
}

/// The backend that runs the stages: simulated, real (candle) or a test double.
///
/// Each call is one attempt; the scheduler owns timeouts, retries and cancellation. Dropping the
/// returned future cancels the attempt, so an implementation must stop its work when dropped.
pub trait Stages: Send + Sync {
    /// Audio output (samples, or a simulated token).
    type Audio: Send;
    /// Image output.
    type Image: Send;
    /// Video output.
    type Video: Send;
    /// Verification result.
    type Verdict: Verdict + Send;

    /// One attempt at the audio stage; `attempt` counts from 0.
    fn audio(&self, recipe: &Recipe, attempt: u32) -> impl Future<Output = Result<Self::Audio, StageError>> + Send;

    /// One attempt at the image stage.
    fn image(&self, recipe: &Recipe, attempt: u32) -> impl Future<Output = Result<Self::Image, StageError>> + Send;

    /// One attempt at the video stage, given both parallel outputs.
    fn video(
        &self,
        recipe: &Recipe,
        audio: &Self::Audio,
        image: &Self::Image,
        attempt: u32,
    ) -> impl Future<Output = Result<Self::Video, StageError>> + Send;

    /// One attempt at verification of the video against the recipe's prompt.
    fn clip(
        &self,
        recipe: &Recipe,
        video: &Self::Video,
        attempt: u32,
    ) -> impl Future<Output = Result<Self::Verdict, StageError>> + Send;
}
