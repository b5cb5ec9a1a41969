//! The four stages of a slot and the `Stages` backend trait that runs them.
//!
//! The scheduler never knows what a stage does: the simulator implements [`Stages`] with drawn
//! latencies, real mode with candle models, tests with scripted doubles.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;

/// One stage of the slot pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[serde(expecting = "a stage name: audio, image, video or clip")]
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
///
/// In YAML and JSON it is a map keyed by stage name plus the unit suffix of `T` (see
/// [`StageKeys`]): `PerStage<Seconds>` reads `{ audio_s: 3, image_s: 15, video_s: 10, clip_s: 2 }`,
/// `PerStage<RetryCount>` reads `{ audio: 1, image: 0, video: 0, clip: 0 }`. Unknown and repeated
/// keys are refused; a missing stage is refused too, unless the field reads a partial map with
/// [`PerStage::deserialize_partial`] and fills the gaps from defaults.
///
/// ```
/// use vortex::units::Seconds;
/// use vortex::{PerStage, Stage};
/// let t: PerStage<Seconds> = serde_yaml_ng::from_str("{ audio_s: 3, image_s: 15, video_s: 10, clip_s: 2 }").unwrap();
/// assert_eq!(t.get(Stage::Image).get(), 15.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

    /// Applies `f` to every value.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerStage<U> {
        PerStage { audio: f(self.audio), image: f(self.image), video: f(self.video), clip: f(self.clip) }
    }

    /// References to the values.
    pub fn as_ref(&self) -> PerStage<&T> {
        PerStage { audio: &self.audio, image: &self.image, video: &self.video, clip: &self.clip }
    }
}

impl<T: Clone> PerStage<Option<T>> {
    /// Fills the stages that have no value from `defaults`.
    pub fn or(self, defaults: &PerStage<T>) -> PerStage<T> {
        PerStage::from_fn(|stage| self.get(stage).clone().unwrap_or_else(|| defaults.get(stage).clone()))
    }
}

/// How the keys of a [`PerStage`] of this type are spelt in files and reports: the stage names
/// with the value's unit as suffix (`audio_s` for seconds, plain `audio` for counts).
pub trait StageKeys {
    /// Keys of audio, image, video and clip, in that order.
    const KEYS: &'static [&'static str; 4];
}

/// Keys without a unit: `audio`, `image`, `video`, `clip`.
pub const PLAIN_KEYS: &[&str; 4] = &["audio", "image", "video", "clip"];
/// Keys of values in seconds.
pub const SECONDS_KEYS: &[&str; 4] = &["audio_s", "image_s", "video_s", "clip_s"];
/// Keys of values in milliseconds.
pub const MILLIS_KEYS: &[&str; 4] = &["audio_ms", "image_ms", "video_ms", "clip_ms"];

/// Implements [`StageKeys`] with plain stage names for the listed types.
#[macro_export]
macro_rules! plain_stage_keys {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::stage::StageKeys for $ty {
            const KEYS: &'static [&'static str; 4] = $crate::stage::PLAIN_KEYS;
        })*
    };
}

plain_stage_keys!(u32, u64, f64, bool, crate::units::RetryCount, crate::units::Probability);

impl StageKeys for crate::units::Seconds {
    const KEYS: &'static [&'static str; 4] = SECONDS_KEYS;
}

impl<T: StageKeys> StageKeys for Option<T> {
    const KEYS: &'static [&'static str; 4] = T::KEYS;
}

impl<T: Serialize> PerStage<T> {
    /// Serializes as a map with the given keys (audio, image, video, clip), for a field whose
    /// unit is not its value type's (`#[serde(serialize_with = ...)]`).
    pub fn serialize_keyed<S: serde::Serializer>(&self, keys: &[&str; 4], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(4))?;
        for stage in Stage::ALL {
            map.serialize_entry(keys[stage.index()], self.get(stage))?;
        }
        map.end()
    }
}

impl<T: Serialize + StageKeys> Serialize for PerStage<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_keyed(T::KEYS, s)
    }
}

impl<'de, T: Deserialize<'de> + StageKeys> Deserialize<'de> for PerStage<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let partial = d.deserialize_map(StageMapVisitor::<T>(std::marker::PhantomData))?;
        let mut missing = Stage::ALL.into_iter().filter(|s| partial.get(*s).is_none());
        if let Some(stage) = missing.next() {
            return Err(serde::de::Error::missing_field(T::KEYS[stage.index()]));
        }
        Ok(partial.map(|v| v.expect("every stage checked present")))
    }
}

impl<T: StageKeys> PerStage<T> {
    /// Reads a map that may name only some stages (the others are `None`); unknown and repeated
    /// keys are still refused. For `#[serde(deserialize_with = ...)]` on fields with defaults.
    pub fn deserialize_partial<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PerStage<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
    {
        d.deserialize_map(StageMapVisitor::<T>(std::marker::PhantomData))
    }
}

struct StageMapVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + StageKeys> serde::de::Visitor<'de> for StageMapVisitor<T> {
    type Value = PerStage<Option<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map with the keys {}", T::KEYS.join(", "))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: PerStage<Option<T>> = PerStage::new(None, None, None, None);
        while let Some(index) = map.next_key_seed(KeySeed(T::KEYS))? {
            let slot = out.get_mut(Stage::ALL[index]);
            if slot.is_some() {
                return Err(serde::de::Error::duplicate_field(T::KEYS[index]));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(out)
    }
}

/// Reads one key as a stage's index; an unknown key fails inside the key's own deserialization,
/// so the error's path names it.
struct KeySeed(&'static [&'static str; 4]);

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = usize;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for KeySeed {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.0.join(", "))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<usize, E> {
        self.0.iter().position(|k| *k == key).ok_or_else(|| E::unknown_field(key, self.0))
    }
}

/// Why a stage's attempt failed, as reports, events and the service count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The attempt ran into the stage's own timeout.
    TimedOut,
    /// The attempt ran into the slot's deadline, which came before the stage's timeout.
    DeadlineCapped,
    /// The model (or the simulated stage) returned an error.
    ModelError,
    /// The model ran out of (GPU) memory.
    OutOfMemory,
    /// The model stopped because its job was cancelled.
    Cancelled,
    /// The model returned output that cannot be used (non-finite values, wrong shape).
    InvalidOutput,
}

impl FailureKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::TimedOut,
        FailureKind::DeadlineCapped,
        FailureKind::ModelError,
        FailureKind::OutOfMemory,
        FailureKind::Cancelled,
        FailureKind::InvalidOutput,
    ];

    /// The kind's snake-case name, as in events and reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::TimedOut => "timed_out",
            FailureKind::DeadlineCapped => "deadline_capped",
            FailureKind::ModelError => "model_error",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::Cancelled => "cancelled",
            FailureKind::InvalidOutput => "invalid_output",
        }
    }

    /// True for the two kinds the scheduler imposes (a backend never returns them).
    pub fn is_timeout(self) -> bool {
        matches!(self, FailureKind::TimedOut | FailureKind::DeadlineCapped)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one attempt of a stage failed, as the backend reports it. Timeouts are not `StageError`s:
/// the scheduler imposes them (see [`FailureKind::TimedOut`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    kind: FailureKind,
    message: Cow<'static, str>,
}

impl StageError {
    /// A model error with the given explanation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        StageError::of_kind(FailureKind::ModelError, message)
    }

    /// An error of the given kind. A timeout kind is refused: only the scheduler times out.
    pub fn of_kind(kind: FailureKind, message: impl Into<Cow<'static, str>>) -> Self {
        assert!(!kind.is_timeout(), "a backend does not report timeouts; the scheduler imposes them");
        StageError { kind, message: message.into() }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `prefix: ` before its message (a stage's or model's name).
    pub fn prefixed(self, prefix: &str) -> Self {
        StageError { kind: self.kind, message: format!("{prefix}: {}", self.message).into() }
    }
}

/// A stage's model still busy with work the scheduler already gave up on: a cancelled attempt
/// (timed out, aborted, its sibling failed) that has not reached its next cancellation point.
/// The stage's next attempt waits behind it, so the scheduler logs the wait and counts it in its
/// deadline checks instead of letting it delay the slot silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The busy model, as the backend names it (`flux`, `clip_l14`).
    pub model: Cow<'static, str>,
    /// The slot whose cancelled attempt it is still running, when the backend knows it.
    pub slot_id: Option<u64>,
    /// How long the model has been running the cancelled work since its cancellation.
    pub busy_for: Duration,
    /// How much longer the backend expects it to take: the next attempt starts that much later.
    pub expected_wait: Duration,
}

impl Backlog {
    /// Why the stage waits, in words: `busy with a cancelled job of slot 7`.
    pub fn reason(&self) -> String {
        match self.slot_id {
            Some(slot) => format!("busy with a cancelled job of slot {slot}"),
            None => "busy with a cancelled job".to_string(),
        }
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

    /// Whether the stage's model is still busy with a cancelled attempt, and for how long it is
    /// expected to be. Asked before a stage starts and before a retry; the default, for backends
    /// whose cancelled work stops at once, is never busy.
    fn backlog(&self, _stage: Stage) -> Option<Backlog> {
        None
    }
}
