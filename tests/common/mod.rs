//! Hand-written `Stages` doubles with scripted latencies and failures, for the scheduler tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vortex::config::Orchestration;
use vortex::units::{RetryCount, Seconds, SecondsOrZero};
use vortex::{PerStage, Recipe, Stage, StageError, Stages, Verdict};

/// What one attempt of a scripted stage does.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Succeeds after this many seconds.
    Ok(f64),
    /// Fails after this many seconds.
    Err(f64),
    /// Never finishes; only a timeout or cancellation ends it.
    Hang,
}

/// The verification double's verdict.
#[derive(Debug)]
pub struct Check(pub bool);

impl Verdict for Check {
    fn passed(&self) -> bool {
        self.0
    }
}

/// What happened to one attempt, as the double saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Finished(Stage, u32),
    Dropped(Stage, u32),
}

/// Stages that follow a script: attempt k of stage s does `script[s][k]` (the last step repeats).
#[derive(Clone)]
pub struct Scripted {
    script: PerStage<Vec<Step>>,
    clip_passes: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Every stage succeeds after the given seconds.
    pub fn ok(audio: f64, image: f64, video: f64, clip: f64) -> Self {
        Scripted {
            script: PerStage::new(
                vec![Step::Ok(audio)],
                vec![Step::Ok(image)],
                vec![Step::Ok(video)],
                vec![Step::Ok(clip)],
            ),
            clip_passes: true,
            seen: Arc::default(),
        }
    }

    /// Replaces one stage's script.
    pub fn with(mut self, stage: Stage, steps: &[Step]) -> Self {
        *self.script.get_mut(stage) = steps.to_vec();
        self
    }

    /// Makes the CLIP self-check fail.
    pub fn clip_fails(mut self) -> Self {
        self.clip_passes = false;
        self
    }

    /// What happened to each attempt, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn attempt(&self, stage: Stage, attempt: u32) -> impl std::future::Future<Output = Result<(), StageError>> + Send {
        let steps = self.script.get(stage);
        let step = steps[(attempt as usize).min(steps.len() - 1)];
        let tracker = Tracker { seen: self.seen.clone(), stage, attempt, finished: false };
        async move {
            // Move the whole tracker in (not just the field it writes), so it drops with the future.
            let mut tracker = tracker;
            let result = match step {
                Step::Ok(s) => {
                    vortex::rt::sleep(Duration::from_secs_f64(s)).await;
                    Ok(())
                }
                Step::Err(s) => {
                    vortex::rt::sleep(Duration::from_secs_f64(s)).await;
                    Err(StageError::new(format!("{stage} failed on attempt {attempt}")))
                }
                Step::Hang => std::future::pending().await,
            };
            tracker.finished = true;
            result
        }
    }
}

/// Records whether an attempt's future finished or was dropped (cancelled) mid-way.
struct Tracker {
    seen: Arc<Mutex<Vec<Seen>>>,
    stage: Stage,
    attempt: u32,
    finished: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let event = if self.finished {
            Seen::Finished(self.stage, self.attempt)
        } else {
            Seen::Dropped(self.stage, self.attempt)
        };
        self.seen.lock().unwrap().push(event);
    }
}

impl Stages for Scripted {
    type Audio = ();
    type Image = ();
    type Video = ();
    type Verdict = Check;

    fn audio(&self, _: &Recipe, attempt: u32) -> impl std::future::Future<Output = Result<(), StageError>> + Send {
        self.attempt(Stage::Audio, attempt)
    }

    fn image(&self, _: &Recipe, attempt: u32) -> impl std::future::Future<Output = Result<(), StageError>> + Send {
        self.attempt(Stage::Image, attempt)
    }

    fn video(
        &self,
        _: &Recipe,
        _: &(),
        _: &(),
        attempt: u32,
    ) -> impl std::future::Future<Output = Result<(), StageError>> + Send {
        self.attempt(Stage::Video, attempt)
    }

    async fn clip(&self, _: &Recipe, _: &(), attempt: u32) -> Result<Check, StageError> {
        self.attempt(Stage::Clip, attempt).await.map(|()| Check(self.clip_passes))
    }
}

/// The production orchestration defaults (config.yaml's values).
pub fn policy() -> Orchestration {
    Orchestration::default()
}

/// The defaults with other retry counts.
pub fn policy_with_retries(audio: u32, image: u32) -> Orchestration {
    let mut p = policy();
    p.retry_policy.audio = RetryCount::new(audio.into()).unwrap();
    p.retry_policy.image = RetryCount::new(image.into()).unwrap();
    p
}

/// The defaults with another deadline buffer.
pub fn policy_with_buffer(buffer_s: f64) -> Orchestration {
    let mut p = policy();
    p.deadline_buffer_s = SecondsOrZero::new(buffer_s).unwrap();
    p
}

/// Seconds as a config value.
pub fn secs(s: f64) -> Seconds {
    Seconds::new(s).unwrap()
}

/// A plain recipe.
pub fn recipe() -> Recipe {
    Recipe::new(42, "Good evening, here is the news.", "a news anchor in a studio, photorealistic")
}

/// Asserts a millisecond figure within 1 ms (the simulator adds nanoseconds of scheduling jitter).
#[track_caller]
pub fn assert_ms(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1.0, "expected {expected} ms, got {actual} ms");
}
