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
    ///
    /// With `joint_latency`, a first attempt takes its latency from the slot's row (the same row
    /// for all four stages); a retry draws from its own stage's list as without it.
    pub fn draw(scenario: &Scenario, slot: u64, stage: Stage, attempt: u32) -> Plan {
        let model = scenario.stages.get(stage);
        let joint =
            scenario.joint_rows.filter(|_| attempt == 0).and_then(|n| model.latency.row(row(scenario, slot, n)));
        let mut latency = joint.unwrap_or_else(|| {
            model.latency.sample(&mut stream(scenario.seed, slot, stage, attempt, Purpose::Latency))
        });
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

/// The row of `n` that slot `slot` takes under `joint_latency`: uniform, from a stream of its own
/// (keyed by the slot alone, so every stage finds the same row).
pub fn row(scenario: &Scenario, slot: u64, n: usize) -> usize {
    stream(scenario.seed, slot, Stage::Audio, 0, Purpose::Row).gen_range(0..n)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio and video lists equal row by row; image and clip of the same length.
    fn scenario(joint: bool) -> Scenario {
        let text = format!(
            "name: joint\nseed: 5\njoint_latency: {joint}\nstages:\n\
             \x20 audio: {{latency: {{empirical: [1, 2, 3, 4, 5, 6, 7, 8]}}}}\n\
             \x20 image: {{latency: {{empirical: [9, 9, 9, 9, 9, 9, 9, 10]}}}}\n\
             \x20 video: {{latency: {{empirical: [1, 2, 3, 4, 5, 6, 7, 8], max: 7.5}}}}\n\
             \x20 clip: {{latency: {{empirical: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}}, transient_failure: 0.5}}\n"
        );
        Scenario::from_yaml_str("joint.yaml", &text, std::path::Path::new("."), &[]).unwrap()
    }

    #[test]
    fn joint_rows_give_a_slots_first_attempts_one_row_and_retries_their_own_draws() {
        let (joint, apart) = (scenario(true), scenario(false));
        assert_eq!((joint.joint_rows, apart.joint_rows), (Some(8), None));
        let work = |s: &Scenario, slot, stage, attempt| Plan::draw(s, slot, stage, attempt).work();
        let (mut rows_seen, mut equal_apart, mut equal_retries) = ([0u32; 8], 0, 0);
        for slot in 0..2_000 {
            let audio = work(&joint, slot, Stage::Audio, 0);
            let row = audio as usize - 1;
            rows_seen[row] += 1;
            // The video list's `max` clamps its row as it clamps a draw.
            assert_eq!(work(&joint, slot, Stage::Video, 0), audio.min(7.5), "slot {slot}");
            assert_eq!(work(&joint, slot, Stage::Image, 0), if row == 7 { 10.0 } else { 9.0 }, "slot {slot}");
            // A failing clip attempt fails after a fraction of its row's latency: the fault stream is as before.
            let clip = Plan::draw(&joint, slot, Stage::Clip, 0);
            assert!(clip.work() <= (row + 1) as f64 / 10.0 + 1e-9, "slot {slot}: {clip:?}");
            equal_apart += u32::from(work(&apart, slot, Stage::Audio, 0) == work(&apart, slot, Stage::Video, 0));
            equal_retries += u32::from(work(&joint, slot, Stage::Audio, 1) == work(&joint, slot, Stage::Video, 1));
        }
        // Rows are uniform: 250 expected each, and 4 standard deviations is about 60.
        assert!(rows_seen.iter().all(|&n| (190..=310).contains(&n)), "{rows_seen:?}");
        // Independent draws agree by chance only, about one slot in eight.
        assert!((150..=350).contains(&equal_apart), "{equal_apart} of 2000 equal without joint_latency");
        assert!((150..=350).contains(&equal_retries), "{equal_retries} of 2000 retries equal");
        // Without joint_latency every draw is today's: the latency stream alone decides it.
        let today = |slot| apart.stages.audio.latency.sample(&mut stream(5, slot, Stage::Audio, 0, Purpose::Latency));
        assert!((0..100).all(|slot| work(&apart, slot, Stage::Audio, 0) == today(slot)));
    }
}
