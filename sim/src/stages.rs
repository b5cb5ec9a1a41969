//! The simulated `Stages` backend: each attempt sleeps in virtual time for a latency drawn from
//! the scenario, and may fail or hang as the scenario says.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use vortex::{Recipe, Stage, StageError, Stages, Verdict};

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
        let latency = model.latency.sample(&mut stream(scenario.seed, slot, stage, attempt, Purpose::Latency));
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
    stream(scenario.seed, slot, Stage::Clip, attempt, Purpose::Reject).gen::<f64>() >= scenario.stages.clip.reject
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
}

impl SimStages {
    /// A backend drawing from `scenario`'s streams.
    pub fn new(scenario: Arc<Scenario>) -> Self {
        let gpu = Arc::new(Gpu::new(scenario.gpu.parallel_slowdown));
        SimStages { scenario, gpu }
    }

    /// The scenario it draws from.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    async fn attempt(&self, recipe: &Recipe, stage: Stage, attempt: u32) -> Result<(), StageError> {
        let plan = Plan::draw(&self.scenario, recipe.slot_id, stage, attempt);
        match stage {
            // Only the parallel pair shares the GPU at once; video and clip run alone.
            Stage::Audio | Stage::Image if self.gpu.shares() => self.gpu.run(plan.work()).await,
            _ if plan == Plan::Hang => std::future::pending().await,
            _ => vortex::rt::sleep(Duration::from_secs_f64(plan.work())).await,
        }
        match plan {
            Plan::Finish(_) => Ok(()),
            Plan::Fail(_) => Err(StageError::new("simulated transient failure")),
            Plan::Hang => unreachable!("a hung attempt never returns"),
        }
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
