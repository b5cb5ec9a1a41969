//! What a slot produced: its outcome, timing breakdown and attempt log.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::stage::{FailureKind, PerStage, Stage, StageError, MILLIS_KEYS};

/// The predictive-abort checkpoints, in the order a slot passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// Before audio and image start.
    BeforeStart,
    /// After audio and image, before video.
    BeforeVideo,
    /// After video, before verification.
    BeforeClip,
}

impl Checkpoint {
    /// The checkpoint's snake-case name, as in events and reports.
    pub fn name(self) -> &'static str {
        match self {
            Checkpoint::BeforeStart => "before_start",
            Checkpoint::BeforeVideo => "before_video",
            Checkpoint::BeforeClip => "before_clip",
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The full result of one slot.
#[derive(Debug)]
pub struct SlotResult<O> {
    /// Slot id and its start, end and deadline.
    pub meta: SlotMeta,
    /// Completed, aborted or failed.
    pub outcome: Outcome<O>,
    /// Time spent per stage and in total.
    pub timing: Timing,
    /// Attempts started per stage.
    pub attempts: PerStage<u32>,
    /// Every attempt in the order it started.
    pub log: Vec<AttemptRecord>,
}

impl<O> SlotResult<O> {
    /// The completed part, if the slot completed.
    pub fn completed(&self) -> Option<&Completed<O>> {
        match &self.outcome {
            Outcome::Completed(c) => Some(c),
            _ => None,
        }
    }
}

/// Identity and time frame of a slot. Times are offsets from the slot's start, so they read the
/// same in real and virtual time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotMeta {
    /// The recipe's slot id.
    pub slot_id: u64,
    /// When the slot started, on the mode's clock.
    pub start: crate::rt::Instant,
    /// When the slot ended, relative to its start.
    pub end: Duration,
    /// The deadline, relative to the slot's start.
    pub deadline: Duration,
}

/// How a slot ended.
#[derive(Debug)]
pub enum Outcome<O> {
    /// All four stages finished.
    Completed(Completed<O>),
    /// The predictor said the slot could not finish in time, so it stopped at a checkpoint.
    Aborted(Abort),
    /// A stage exhausted its attempts.
    Failed(Failure),
}

/// A slot that ran all four stages.
#[derive(Debug)]
pub struct Completed<O> {
    /// True when the slot ended by its deadline.
    pub deadline_met: bool,
    /// True when the CLIP self-check passed; a failed check is reported, not aborted.
    pub clip_passed: bool,
    /// The stage outputs.
    pub outputs: O,
}

/// The outputs of a completed slot.
#[derive(Debug)]
pub struct Outputs<A, I, V, C> {
    /// The audio stage's output.
    pub audio: A,
    /// The image stage's output.
    pub image: I,
    /// The video stage's output.
    pub video: V,
    /// The verification verdict (with its scores, in real mode).
    pub verdict: C,
}

/// A predictive abort.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Abort {
    /// Where the slot stopped.
    pub checkpoint: Checkpoint,
    /// Time since the slot started, at the abort.
    pub elapsed: Duration,
    /// When the slot would have finished by the predictor's estimate, relative to its start.
    pub predicted_finish: Duration,
}

/// A stage that exhausted its attempts (or whose retry could no longer fit).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The stage that failed first.
    pub stage: Stage,
    /// Why its last attempt failed.
    pub reason: FailReason,
    /// Attempts made at that stage.
    pub attempts: u32,
    /// True when a retry was allowed by policy but skipped because it could no longer fit.
    pub retry_skipped: bool,
}

/// Why a stage's last attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FailReason {
    /// The attempt ran into its timeout.
    TimedOut {
        /// True when the limit was the time left to the deadline, not the stage's timeout.
        capped_by_deadline: bool,
    },
    /// The backend returned an error.
    Error(StageError),
}

impl FailReason {
    /// The kind of failure, as reports count it.
    pub fn kind(&self) -> FailureKind {
        match self {
            FailReason::TimedOut { capped_by_deadline: false } => FailureKind::TimedOut,
            FailReason::TimedOut { capped_by_deadline: true } => FailureKind::DeadlineCapped,
            FailReason::Error(e) => e.kind(),
        }
    }
}

/// The timing breakdown of a slot, in milliseconds. `total_ms` is not the sum of the stages:
/// audio and image overlap. A stage that never finished has no figure.
///
/// Each stage's figure runs from its first attempt's start to its success, retries and backoff
/// included. In JSON: `audio_ms`, `image_ms`, `video_ms`, `clip_ms`, `total_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timing {
    /// Time per stage, `None` for a stage that did not finish.
    #[serde(flatten, serialize_with = "millis_keys")]
    pub stage_ms: PerStage<Option<f64>>,
    /// Slot start to slot end.
    pub total_ms: f64,
}

fn millis_keys<S: serde::Serializer>(v: &PerStage<Option<f64>>, s: S) -> Result<S::Ok, S::Error> {
    v.serialize_keyed(MILLIS_KEYS, s)
}

/// One attempt at one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    /// The stage.
    pub stage: Stage,
    /// 0 for the first attempt.
    pub attempt: u32,
    /// When it started, relative to the slot's start.
    pub start: Duration,
    /// How long it ran (until success, error, timeout or cancellation).
    pub duration: Duration,
    /// How it ended.
    pub result: AttemptResult,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// It returned an output.
    Ok,
    /// It failed: an error of the backend, or a timeout.
    Failed(FailureKind),
    /// The slot ended while it ran (its parallel sibling failed, or the slot was dropped).
    Cancelled,
}

impl fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptResult::Ok => f.write_str("ok"),
            AttemptResult::Failed(kind) => write!(f, "failed: {kind}"),
            AttemptResult::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Milliseconds of a duration, as reports write them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
