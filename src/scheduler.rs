//! The slot scheduler: runs one recipe through the four stages under timeouts, retries with
//! exponential backoff and the predictive deadline abort.
//!
//! ```text
//!   slot started ── checkpoint before_start
//!        ├── audio (attempts, backoff) ──┐   first failure cancels the sibling
//!        └── image (attempts, backoff) ──┤
//!                                        └─ checkpoint before_video ── video ── checkpoint before_clip ── clip
//! ```
//!
//! Every wait goes through [`crate::rt`], so this file runs unchanged under tokio and madsim.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::try_join;
use tracing::{error, info, warn};

use crate::config::Orchestration;
use crate::events::TARGET;
use crate::outcome::{
    ms, Abort, AttemptRecord, AttemptResult, Checkpoint, Completed, FailReason, Failure, Outcome, Outputs, SlotMeta,
    SlotResult, Timing,
};
use crate::predictor::{Predictor, Remaining, StaticPredictor};
use crate::recipe::Recipe;
use crate::rt::{self, Stopwatch};
use crate::stage::{Backlog, PerStage, Stage, StageError, Stages, Verdict};
use crate::units::RetryCount;

/// The outputs of a completed slot for backend `S`.
pub type SlotOutputs<S> =
    Outputs<<S as Stages>::Audio, <S as Stages>::Image, <S as Stages>::Video, <S as Stages>::Verdict>;

/// The result of one slot for backend `S`.
pub type SlotReport<S> = SlotResult<SlotOutputs<S>>;

/// The scheduler's policy as durations, taken once from [`Orchestration`].
#[derive(Debug, Clone)]
struct Policy {
    buffer: Duration,
    backoff_base: Duration,
    timeouts: PerStage<Duration>,
    retries: PerStage<u32>,
}

/// Runs slots through a [`Stages`] backend.
///
/// ```
/// # #[cfg(not(madsim))] {
/// use std::time::Duration;
/// use vortex::{Orchestration, Recipe, SlotScheduler, StaticPredictor};
/// # use vortex::{Stages, StageError, Verdict};
/// # struct Instant; struct Pass;
/// # impl Verdict for Pass { fn passed(&self) -> bool { true } }
/// # impl Stages for Instant {
/// #     type Audio = (); type Image = (); type Video = (); type Verdict = Pass;
/// #     async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> { Ok(()) }
/// #     async fn image(&self, _: &Recipe, _: u32) -> Result<(), StageError> { Ok(()) }
/// #     async fn video(&self, _: &Recipe, _: &(), _: &(), _: u32) -> Result<(), StageError> { Ok(()) }
/// #     async fn clip(&self, _: &Recipe, _: &(), _: u32) -> Result<Pass, StageError> { Ok(Pass) }
/// # }
/// let policy = Orchestration::default();
/// let predictor = StaticPredictor::new(policy.target_durations());
/// let scheduler = SlotScheduler::new(Instant, predictor, &policy);
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
/// let result = rt.block_on(scheduler.run_slot(&Recipe::new(1, "Hello.", "a news anchor"), Duration::from_secs(45)));
/// assert!(result.completed().unwrap().deadline_met);
/// # }
/// ```
pub struct SlotScheduler<S, P = StaticPredictor> {
    stages: S,
    predictor: P,
    policy: Policy,
    predictive_abort: bool,
}

/// Why a slot stopped before completing.
enum Stop {
    Aborted(Abort),
    Failed(Failure),
}

impl<S: Stages, P: Predictor> SlotScheduler<S, P> {
    /// A scheduler with the given backend, predictor and policy.
    pub fn new(stages: S, predictor: P, orchestration: &Orchestration) -> Self {
        let policy = Policy {
            buffer: orchestration.deadline_buffer_s.duration(),
            backoff_base: orchestration.backoff_base_s.duration(),
            timeouts: orchestration.timeout_durations(),
            retries: orchestration.retry_policy.map(RetryCount::get),
        };
        SlotScheduler { stages, predictor, policy, predictive_abort: true }
    }

    /// Turns the checkpoint aborts off (retries are still skipped when they cannot fit). The
    /// simulator uses this to ask what an aborted slot would have done had it continued.
    pub fn with_predictive_abort(mut self, enabled: bool) -> Self {
        self.predictive_abort = enabled;
        self
    }

    /// The backend.
    pub fn stages(&self) -> &S {
        &self.stages
    }

    /// The predictor.
    pub fn predictor(&self) -> &P {
        &self.predictor
    }

    /// Runs one slot to its outcome; `deadline` is relative to the slot's start.
    ///
    /// Dropping the returned future cancels the slot: its running stages are dropped (and so
    /// cancelled) and a `slot_cancelled` event says so.
    pub async fn run_slot(&self, recipe: &Recipe, deadline: Duration) -> SlotReport<S> {
        let slot = SlotState::new(recipe.slot_id, deadline);
        info!(target: TARGET, event = "slot_started", slot_id = recipe.slot_id, elapsed_ms = 0.0,
              deadline_ms = ms(deadline), "slot started");
        let dropped = DroppedSlot(&slot);
        let outcome = match self.drive(&slot, recipe).await {
            Ok(completed) => Outcome::Completed(completed),
            Err(Stop::Aborted(abort)) => Outcome::Aborted(abort),
            Err(Stop::Failed(failure)) => Outcome::Failed(failure),
        };
        std::mem::forget(dropped);
        let result = slot.finish(outcome, deadline);
        for stage in Stage::ALL.into_iter().filter(|&s| *result.attempts.get(s) == 0) {
            self.predictor.skipped(stage);
        }
        emit_final(&result);
        result
    }

    async fn drive(&self, slot: &SlotState, recipe: &Recipe) -> Result<Completed<SlotOutputs<S>>, Stop> {
        self.checkpoint(slot, Checkpoint::BeforeStart)?;
        // try_join returns at the first error and drops the other future: that is the sibling's
        // cancellation, so nothing keeps running for a dead slot.
        let (audio, image) = try_join(
            self.run_stage(slot, Stage::Audio, |n| self.stages.audio(recipe, n)),
            self.run_stage(slot, Stage::Image, |n| self.stages.image(recipe, n)),
        )
        .await
        .map_err(Stop::Failed)?;
        self.checkpoint(slot, Checkpoint::BeforeVideo)?;
        let video = self
            .run_stage(slot, Stage::Video, |n| self.stages.video(recipe, &audio, &image, n))
            .await
            .map_err(Stop::Failed)?;
        self.checkpoint(slot, Checkpoint::BeforeClip)?;
        let verdict =
            self.run_stage(slot, Stage::Clip, |n| self.stages.clip(recipe, &video, n)).await.map_err(Stop::Failed)?;
        let elapsed = slot.elapsed();
        Ok(Completed {
            deadline_met: elapsed <= slot.deadline,
            clip_passed: verdict.passed(),
            outputs: Outputs { audio, image, video, verdict },
        })
    }

    /// Continues only if `(deadline - now) - buffer >= estimated remaining work + wait`, where
    /// `wait` is how long the models of the stages about to start are still expected to be busy
    /// with cancelled work (each busy one logs `stage_waiting`, with or without the check).
    fn checkpoint(&self, slot: &SlotState, checkpoint: Checkpoint) -> Result<(), Stop> {
        let (work, starting): (_, &[Stage]) = match checkpoint {
            Checkpoint::BeforeStart => (Remaining::Slot, &[Stage::Audio, Stage::Image]),
            Checkpoint::BeforeVideo => (Remaining::From(Stage::Video), &[Stage::Video]),
            Checkpoint::BeforeClip => (Remaining::From(Stage::Clip), &[Stage::Clip]),
        };
        let wait = self.backlog_wait(slot, starting);
        if !self.predictive_abort {
            return Ok(());
        }
        let remaining = self.predictor.remaining(work) + wait;
        let elapsed = slot.elapsed();
        if self.fits(slot, elapsed, remaining) {
            return Ok(());
        }
        Err(Stop::Aborted(Abort { checkpoint, elapsed, predicted_finish: elapsed + remaining }))
    }

    /// The longest expected wait among the models of `stages` that are still busy with a
    /// cancelled attempt; logs `stage_waiting` for each. Zero, without reading the clock, when
    /// none is busy (always, in the simulator).
    fn backlog_wait(&self, slot: &SlotState, stages: &[Stage]) -> Duration {
        let mut wait = Duration::ZERO;
        for &stage in stages {
            if let Some(backlog) = self.stages.backlog(stage) {
                emit_waiting(slot.slot_id, slot.elapsed(), stage, &backlog);
                wait = wait.max(backlog.expected_wait);
            }
        }
        wait
    }

    /// True when `work` fits in the time left before the deadline at `elapsed`, less the buffer.
    fn fits(&self, slot: &SlotState, elapsed: Duration, work: Duration) -> bool {
        let left = slot.deadline.saturating_sub(elapsed);
        left >= self.policy.buffer && left - self.policy.buffer >= work
    }

    /// Runs one stage's attempts until one succeeds, the retries run out, or a retry cannot fit.
    async fn run_stage<T, F, Fut>(&self, slot: &SlotState, stage: Stage, mut attempt_fn: F) -> Result<T, Failure>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
    {
        let max_attempts = self.policy.retries.get(stage) + 1;
        // The clock is read once per attempt start and once per attempt end: in the simulator a
        // clock read is a large part of a slot's cost.
        let mut started = slot.elapsed();
        let stage_start = started;
        for attempt in 0..max_attempts {
            let stage_timeout = *self.policy.timeouts.get(stage);
            let left = slot.deadline.saturating_sub(started);
            let limit = stage_timeout.min(left);
            let record = slot.open_attempt(stage, attempt, started);
            let outcome = rt::timeout(limit, attempt_fn(attempt)).await;
            let ended = slot.elapsed();
            let reason = match outcome {
                Ok(Ok(output)) => {
                    let took = slot.close_attempt(record, AttemptResult::Ok, ended);
                    self.predictor.observe(stage, took);
                    let stage_time = ended - stage_start;
                    slot.set_stage_time(stage, stage_time);
                    emit_complete(slot.slot_id, stage, attempt + 1, ended, stage_time);
                    return Ok(output);
                }
                Ok(Err(error)) => FailReason::Error(error),
                Err(rt::TimedOut) => FailReason::TimedOut { capped_by_deadline: left < stage_timeout },
            };
            slot.close_attempt(record, AttemptResult::Failed(reason.kind()), ended);
            let attempts = attempt + 1;
            let failure = |retry_skipped| Failure { stage, reason: reason.clone(), attempts, retry_skipped };
            if attempts == max_attempts {
                return Err(failure(false));
            }
            let backoff = self.policy.backoff_base * 2u32.pow(attempt);
            // The failed attempt may still be running on its model (a timeout cancels it): the
            // retry would queue behind it.
            let wait = self.backlog_wait(slot, &[stage]).saturating_sub(backoff);
            if !self.fits(slot, ended, backoff + wait + self.predictor.remaining(Remaining::From(stage))) {
                return Err(failure(true));
            }
            rt::sleep(backoff).await;
            started = slot.elapsed();
            // Logged after the backoff, when the retry really starts: a sibling's failure during
            // the backoff drops this future, and no retry is announced that never ran.
            warn!(target: TARGET, event = "stage_retry", slot_id = slot.slot_id, elapsed_ms = ms(started),
                  stage = stage.name(), next_attempt = attempts, backoff_ms = ms(backoff),
                  reason = reason.kind().name(), "stage retry");
        }
        unreachable!("the loop returns on the last attempt")
    }
}

/// Logs `slot_cancelled` when a slot's future is dropped before it reached an outcome (the
/// caller gave up on it: a shutdown, a client that went away). Forgotten on the normal path.
struct DroppedSlot<'a>(&'a SlotState);

impl Drop for DroppedSlot<'_> {
    fn drop(&mut self) {
        warn!(target: TARGET, event = "slot_cancelled", slot_id = self.0.slot_id,
              elapsed_ms = ms(self.0.elapsed()), "slot cancelled from outside");
    }
}

/// The mutable state of one running slot. The two parallel stages share it, hence the mutex; it is
/// never held across an await.
struct SlotState {
    slot_id: u64,
    clock: Stopwatch,
    deadline: Duration,
    inner: Mutex<SlotLog>,
}

struct SlotLog {
    attempts: Vec<OpenAttempt>,
    stage_time: PerStage<Option<Duration>>,
}

struct OpenAttempt {
    stage: Stage,
    attempt: u32,
    start: Duration,
    end: Option<(Duration, AttemptResult)>,
}

impl SlotState {
    fn new(slot_id: u64, deadline: Duration) -> Self {
        let inner = SlotLog { attempts: Vec::with_capacity(8), stage_time: PerStage::default() };
        SlotState { slot_id, clock: Stopwatch::start(), deadline, inner: Mutex::new(inner) }
    }

    fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, SlotLog> {
        self.inner.lock().expect("slot log poisoned")
    }

    fn open_attempt(&self, stage: Stage, attempt: u32, start: Duration) -> usize {
        let mut log = self.log();
        log.attempts.push(OpenAttempt { stage, attempt, start, end: None });
        log.attempts.len() - 1
    }

    /// Records how an attempt ended at `end` and returns how long it ran.
    fn close_attempt(&self, index: usize, result: AttemptResult, end: Duration) -> Duration {
        let mut log = self.log();
        let open = &mut log.attempts[index];
        assert!(open.end.is_none(), "attempt closed twice");
        open.end = Some((end, result));
        end - open.start
    }

    fn set_stage_time(&self, stage: Stage, took: Duration) {
        *self.log().stage_time.get_mut(stage) = Some(took);
    }

    /// Closes the books: attempts still open were cancelled at the slot's end.
    fn finish<O>(self, outcome: Outcome<O>, deadline: Duration) -> SlotResult<O> {
        let end = self.elapsed();
        let log = self.inner.into_inner().expect("slot log poisoned");
        let mut attempts = PerStage::default();
        let log_records: Vec<AttemptRecord> = log
            .attempts
            .into_iter()
            .map(|a| {
                *attempts.get_mut(a.stage) += 1;
                let (stop, result) = a.end.unwrap_or((end, AttemptResult::Cancelled));
                AttemptRecord { stage: a.stage, attempt: a.attempt, start: a.start, duration: stop - a.start, result }
            })
            .collect();
        let timing = Timing { stage_ms: log.stage_time.map(|t| t.map(ms)), total_ms: ms(end) };
        for stage in Stage::ALL {
            assert!(timing.stage_ms.get(stage).is_none_or(|t| t <= timing.total_ms), "a stage outlasted its slot");
        }
        SlotResult {
            meta: SlotMeta { slot_id: self.slot_id, start: self.clock.started_at(), end, deadline },
            outcome,
            timing,
            attempts,
            log: log_records,
        }
    }
}

fn emit_complete(slot_id: u64, stage: Stage, attempts: u32, at: Duration, took: Duration) {
    let (event, message) = match stage {
        Stage::Audio => ("audio_complete", "audio complete"),
        Stage::Image => ("image_complete", "image complete"),
        Stage::Video => ("video_complete", "video complete"),
        Stage::Clip => ("clip_complete", "clip complete"),
    };
    info!(target: TARGET, event, slot_id, elapsed_ms = ms(at), stage = stage.name(),
          attempts, stage_ms = ms(took), "{message}");
}

fn emit_waiting(slot_id: u64, at: Duration, stage: Stage, backlog: &Backlog) {
    warn!(target: TARGET, event = "stage_waiting", slot_id, elapsed_ms = ms(at), stage = stage.name(),
          model = backlog.model.as_ref(), reason = backlog.reason().as_str(), busy_ms = ms(backlog.busy_for),
          wait_ms = ms(backlog.expected_wait), "stage waits for its model");
}

fn emit_final<O>(result: &SlotResult<O>) {
    let slot_id = result.meta.slot_id;
    let elapsed_ms = ms(result.meta.end);
    match &result.outcome {
        Outcome::Completed(c) => info!(target: TARGET, event = "slot_complete", slot_id, elapsed_ms,
            total_ms = result.timing.total_ms, deadline_met = c.deadline_met, clip_passed = c.clip_passed, "slot complete"),
        Outcome::Aborted(a) => warn!(target: TARGET, event = "slot_aborted", slot_id, elapsed_ms,
            checkpoint = a.checkpoint.name(), predicted_finish_ms = ms(a.predicted_finish), "slot aborted"),
        Outcome::Failed(f) => match &f.reason {
            FailReason::Error(e) => {
                error!(target: TARGET, event = "slot_failed", slot_id, elapsed_ms, stage = f.stage.name(),
                reason = f.reason.kind().name(), error = e.message(), attempts = f.attempts,
                retry_skipped = f.retry_skipped, "slot failed")
            }
            FailReason::TimedOut { .. } => {
                error!(target: TARGET, event = "slot_failed", slot_id, elapsed_ms, stage = f.stage.name(),
                reason = f.reason.kind().name(), attempts = f.attempts, retry_skipped = f.retry_skipped, "slot failed")
            }
        },
    }
}
