//! The simulated `Stages` backend: each attempt sleeps in virtual time for a latency drawn from
//! the scenario, and may fail or hang as the scenario says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use vortex::rt::{self, Instant};
use vortex::{PerStage, Recipe, Stage, StageError, Stages, Verdict};

use crate::gpu::Gpu;
use crate::rng::{stream, Purpose};
use crate::scenario::Scenario;

/// What one attempt will do, drawn from the attempt's own streams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    /// Succeeds after this much solo work, in seconds.
    Finish(f64),
    /// Fails after this much solo work (a uniform fraction of the drawn latency).
    Fail(f64),
    /// Never finishes; only a timeout or cancellation ends it.
    Hang,
}

impl Plan {
    /// Draws attempt `attempt` of `stage` in slot `slot`: the same key always gives the same plan.
    pub fn draw(scenario: &Scenario, slot: u64, stage: Stage, attempt: u32) -> Plan {
        let model = scenario.stages.get(stage);
        let mut latency = model.latency.sample(&mut stream(scenario.seed, slot, stage, attempt, Purpose::Latency));
        if let Some(drift) = scenario.drift.as_ref().filter(|d| *d.stages.get(stage)) {
            // Both are bounded, but their product is clamped again: no draw may pass a day.
            latency = (latency * drift.factor(slot)).min(vortex::units::MAX_SECONDS);
        }
        if model.hang == 0.0 && model.transient_failure == 0.0 {
            // Nothing to draw: the fault stream could not change the plan (and skipping it saves
            // a ChaCha block refill per attempt).
            return Plan::Finish(latency);
        }
        let mut fault = stream(scenario.seed, slot, stage, attempt, Purpose::Fault);
        let (hang, fail, fraction) = (fault.gen::<f64>(), fault.gen::<f64>(), fault.gen::<f64>());
        if hang < model.hang {
            Plan::Hang
        } else if fail < model.transient_failure {
            Plan::Fail(latency * fraction)
        } else {
            Plan::Finish(latency)
        }
    }

    /// Solo work in seconds (infinite for a hang).
    pub fn work(self) -> f64 {
        match self {
            Plan::Finish(w) | Plan::Fail(w) => w,
            Plan::Hang => f64::INFINITY,
        }
    }
}

/// Whether the simulated CLIP self-check of `slot` passes.
pub fn clip_passes(scenario: &Scenario, slot: u64, attempt: u32) -> bool {
    scenario.stages.clip.reject == 0.0
        || stream(scenario.seed, slot, Stage::Clip, attempt, Purpose::Reject).gen::<f64>()
            >= scenario.stages.clip.reject
}

/// The simulated verdict: only pass or fail, since there are no real scores to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimVerdict {
    /// The drawn outcome of the self-check.
    pub passed: bool,
}

impl Verdict for SimVerdict {
    fn passed(&self) -> bool {
        self.passed
    }
}

/// The simulated backend for one scenario. Cheap to clone (shared state behind an `Arc`).
#[derive(Debug, Clone)]
pub struct SimStages {
    scenario: Arc<Scenario>,
    gpu: Arc<Gpu>,
    workers: Arc<Mutex<Workers>>,
}

/// With a cadence: when each stage's worker is free again, and the cancelled tails of this slot.
#[derive(Debug, Default)]
struct Workers {
    busy_until: PerStage<Option<Instant>>,
    tails: Duration,
}

impl SimStages {
    /// A backend drawing from `scenario`'s streams.
    pub fn new(scenario: Arc<Scenario>) -> Self {
        let gpu = Arc::new(Gpu::new(scenario.gpu.parallel_slowdown));
        SimStages { scenario, gpu, workers: Arc::default() }
    }

    /// A backend with the same draws and fresh GPU state (for a counterfactual re-run).
    pub fn fork(&self) -> Self {
        SimStages::new(self.scenario.clone())
    }

    /// After a slot that started at `start`: how long after its start the GPU stays busy with
    /// cancelled work, and the total of those cancelled tails. Resets the workers for the next slot.
    pub fn take_tails(&self, start: Instant) -> (Duration, Duration) {
        let mut w = self.workers.lock().expect("workers poisoned");
        let busy =
            Stage::ALL.iter().filter_map(|&s| *w.busy_until.get(s)).map(|t| t.saturating_duration_since(start)).max();
        let tails = w.tails;
        *w = Workers::default();
        (busy.unwrap_or_default(), tails)
    }

    async fn attempt(&self, recipe: &Recipe, stage: Stage, attempt: u32) -> Result<(), StageError> {
        let plan = Plan::draw(&self.scenario, recipe.slot_id, stage, attempt);
        let worker = match self.scenario.cadence {
            Some(c) => Some(self.claim(stage, *c.cancel_granularity.get(stage)).await),
            None => None,
        };
        match stage {
            // Only the parallel pair shares the GPU at once; video and clip run alone.
            Stage::Audio | Stage::Image if self.gpu.shares() => self.gpu.run(plan.work()).await,
            _ if plan == Plan::Hang => std::future::pending().await,
            _ => rt::sleep(Duration::from_secs_f64(plan.work())).await,
        }
        if let Some(mut w) = worker {
            w.finished = true;
        }
        match plan {
            Plan::Finish(_) => Ok(()),
            Plan::Fail(_) => Err(StageError::new("simulated transient failure")),
            Plan::Hang => unreachable!("a hung attempt never returns"),
        }
    }

    /// Waits until the stage's worker is free (a cancelled attempt may still be finishing its
    /// unit of work), then holds it for this attempt.
    async fn claim(&self, stage: Stage, granularity: Duration) -> WorkerGuard<'_> {
        let free_at = *self.workers.lock().expect("workers poisoned").busy_until.get(stage);
        if let Some(wait) = free_at.map(|t| t.saturating_duration_since(rt::now())).filter(|w| !w.is_zero()) {
            rt::sleep(wait).await;
        }
        WorkerGuard { stages: self, stage, started: rt::now(), granularity, finished: false }
    }
}

/// Holds a stage's worker for one attempt. Dropped unfinished (a timeout or a cancelled sibling),
/// the worker stays busy until the attempt's next cancellation point: work is not preemptible
/// mid-step.
struct WorkerGuard<'a> {
    stages: &'a SimStages,
    stage: Stage,
    started: Instant,
    granularity: Duration,
    finished: bool,
}

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        let now = rt::now();
        let mut w = self.stages.workers.lock().expect("workers poisoned");
        if self.finished {
            *w.busy_until.get_mut(self.stage) = None;
            return;
        }
        let ran = (now - self.started).as_nanos();
        let step = self.granularity.as_nanos().max(1);
        let steps = ran.div_ceil(step);
        let free_at = self.started + Duration::from_nanos((steps * step) as u64);
        w.tails += free_at.saturating_duration_since(now);
        *w.busy_until.get_mut(self.stage) = Some(free_at);
    }
}

impl Stages for SimStages {
    type Audio = ();
    type Image = ();
    type Video = ();
    type Verdict = SimVerdict;

    async fn audio(&self, recipe: &Recipe, attempt: u32) -> Result<(), StageError> {
        self.attempt(recipe, Stage::Audio, attempt).await
    }

    async fn image(&self, recipe: &Recipe, attempt: u32) -> Result<(), StageError> {
        self.attempt(recipe, Stage::Image, attempt).await
    }

    async fn video(&self, recipe: &Recipe, _: &(), _: &(), attempt: u32) -> Result<(), StageError> {
        self.attempt(recipe, Stage::Video, attempt).await
    }

    async fn clip(&self, recipe: &Recipe, _: &(), attempt: u32) -> Result<SimVerdict, StageError> {
        self.attempt(recipe, Stage::Clip, attempt).await?;
        Ok(SimVerdict { passed: clip_passes(&self.scenario, recipe.slot_id, attempt) })
    }
}
