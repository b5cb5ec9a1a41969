//! Runs a scenario's slots through the real `SlotScheduler` in madsim's virtual time.
//!
//! Slots are cut into fixed chunks; each chunk runs, one slot after another, in its own madsim
//! runtime seeded from (scenario seed, chunk index). The chunk size also bounds how many stale
//! timers a runtime accumulates (madsim keeps the timers of dropped sleeps).
//!
//! - Independent slots (no cadence, static predictor): workers take chunks from a shared counter,
//!   each keeps one tally, and tallies merge order-free, so a report does not depend on the number
//!   of workers.
//! - Sequential slots (a `cadence`, or the adaptive predictor, whose history carries from slot to
//!   slot as on a director): one worker runs the chunks in order, carrying the GPU backlog and the
//!   predictor from chunk to chunk.

use std::sync::Arc;
use std::time::Duration;

use vortex::events::{RecordedEvent, Recorder};
use vortex::{ConfiguredPredictor, Outcome, Recipe, SlotReport, SlotScheduler};

use crate::pool;
use crate::rng::splitmix64;
use crate::scenario::Scenario;
use crate::simulator::Shard;
use crate::stages::SimStages;
use crate::tally::Tally;

/// Slots per chunk (and per madsim runtime).
pub const CHUNK_SLOTS: u64 = 1024;

/// The result of one replayed slot.
#[derive(Debug)]
pub struct Replay {
    /// The slot's full result.
    pub result: SlotReport<SimStages>,
    /// The scheduler's events, with virtual timestamps in `elapsed_ms`.
    pub events: Vec<RecordedEvent>,
    /// For an aborted slot: the result had it continued with aborts off.
    pub counterfactual: Option<SlotReport<SimStages>>,
    /// The counterfactual run's own events (empty without one), kept apart from the slot's.
    pub counterfactual_events: Vec<RecordedEvent>,
    /// With a cadence: how long the slot waited for the GPU after its scheduled start.
    pub queue_delay: Duration,
}

/// Runs the chunks of `scenario` whose index is `shard.index` modulo `shard.count` (every chunk
/// for the whole run) and tallies their slots, calling `done(n)` as slots finish.
pub fn run_chunks(scenario: &Arc<Scenario>, shard: Shard, workers: usize, done: &(dyn Fn(u64) + Sync)) -> Tally {
    let chunks = scenario.slots.div_ceil(CHUNK_SLOTS);
    let mine: Vec<u64> = (0..chunks).filter(|c| shard.owns(*c)).collect();
    if scenario.sequential() {
        assert!(shard.is_whole(), "slots that depend on each other cannot be sharded");
        let mut sim = Sim::new(scenario.clone());
        let mut tally = Tally::default();
        for chunk in mine {
            let before = tally.slots;
            run_chunk(&mut sim, chunk, &mut tally);
            done(tally.slots - before);
        }
        return tally;
    }
    // Each worker keeps one tally across its chunks (a tally's histograms are large to allocate);
    // every part of a tally merges commutatively, so the result does not depend on which worker
    // ran which chunk.
    let tallies = pool::for_each_job(mine.len() as u64, workers, Tally::default, |tally, i| {
        let before = tally.slots;
        run_chunk(&mut Sim::new(scenario.clone()), mine[i as usize], tally);
        done(tally.slots - before);
    });
    let mut total = Tally::default();
    for tally in &tallies {
        total.merge(tally);
    }
    assert_eq!(total.slots, shard.slots_of(scenario.slots, CHUNK_SLOTS), "every slot of the shard is counted once");
    total
}

/// The madsim seed of a chunk: its scheduling jitter is then fixed by the scenario seed alone.
fn chunk_seed(scenario_seed: u64, chunk: u64) -> u64 {
    splitmix64(scenario_seed ^ splitmix64(chunk))
}

fn runtime(seed: u64) -> madsim::runtime::Runtime {
    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default())
}

/// One simulated director: the scheduler and its stages, and what carries from slot to slot.
struct Sim {
    scenario: Arc<Scenario>,
    scheduler: SlotScheduler<SimStages, ConfiguredPredictor>,
    /// With a cadence: how long past the next slot's scheduled start the GPU is still busy.
    backlog: Duration,
    recipe: Recipe,
}

/// One slot's result with what the report needs beside it.
struct SimSlot {
    result: SlotReport<SimStages>,
    counterfactual: Option<SlotReport<SimStages>>,
    queue_delay: Duration,
    cancelled_tails: Duration,
    /// With `capture`: the slot's events, then the counterfactual's.
    events: [Vec<RecordedEvent>; 2],
}

impl Sim {
    fn new(scenario: Arc<Scenario>) -> Self {
        let orchestration = &scenario.orchestration;
        let predictor = ConfiguredPredictor::from_config(orchestration);
        let scheduler = SlotScheduler::new(SimStages::new(scenario.clone()), predictor, orchestration);
        let recipe = Recipe::new(0, "simulated script", "simulated prompt");
        Sim { scenario, scheduler, backlog: Duration::ZERO, recipe }
    }

    /// Runs slot `slot`: the recipe is reused, since the simulated stages read only its slot id.
    /// With `capture`, the events of the slot and of its counterfactual are recorded apart.
    async fn slot(&mut self, slot: u64, capture: bool) -> SimSlot {
        (self.recipe.slot_id, self.recipe.seed) = (slot, slot);
        let queue_delay = self.backlog;
        // A slot that waited for the GPU has that much less of its deadline left.
        let deadline = self.scenario.deadline.saturating_sub(queue_delay);
        // Recorders only when capturing: each is an allocation, and a run has millions of slots.
        let recorders = capture.then(|| [Recorder::default(), Recorder::default()]);
        let guard = recorders.as_ref().map(|r| r[0].set_default());
        let result = self.scheduler.run_slot(&self.recipe, deadline).await;
        drop(guard);
        let mut cancelled_tails = Duration::ZERO;
        if let Some(cadence) = self.scenario.cadence {
            let (busy_after_start, tails) = self.scheduler.stages().take_tails(result.meta.start);
            cancelled_tails = tails;
            let busy = result.meta.end.max(busy_after_start);
            // Whole microseconds, so the simulator's nanosecond scheduling jitter cannot pile up
            // from slot to slot.
            let backlog = (queue_delay + busy).saturating_sub(cadence.interval);
            self.backlog = Duration::from_micros(crate::tally::micros(backlog));
        }
        let counterfactual = match result.outcome {
            Outcome::Aborted(_) => {
                // Same draws, same predictor state, fresh GPU state; nothing of it carries over.
                let no_abort = SlotScheduler::new(
                    self.scheduler.stages().fork(),
                    self.scheduler.predictor().clone(),
                    &self.scenario.orchestration,
                )
                .with_predictive_abort(false);
                let _guard = recorders.as_ref().map(|r| r[1].set_default());
                Some(no_abort.run_slot(&self.recipe, deadline).await)
            }
            _ => None,
        };
        let events = recorders.map_or_else(Default::default, |r| r.map(|r| r.events()));
        SimSlot { result, counterfactual, queue_delay, cancelled_tails, events }
    }
}

/// Runs one chunk of slots in its own runtime, counting them into `tally`.
fn run_chunk(sim: &mut Sim, chunk: u64, tally: &mut Tally) {
    let first = chunk * CHUNK_SLOTS;
    let end = (first + CHUNK_SLOTS).min(sim.scenario.slots);
    let cadence = sim.scenario.cadence.is_some();
    runtime(chunk_seed(sim.scenario.seed, chunk)).block_on(async {
        for slot in first..end {
            let run = sim.slot(slot, false).await;
            let would_have_met = run.counterfactual.map(|c| c.completed().is_some_and(|c| c.deadline_met));
            tally.record(slot, &run.result, would_have_met, run.cancelled_tails);
            if cadence {
                tally.record_queue(run.queue_delay);
            }
        }
    })
}

/// Re-runs slot `slot` and captures its event timeline. Its draws are the same as in a full run,
/// so its outcome is too. Sequential scenarios re-run the slots before it first, since its GPU
/// backlog and predictor depend on them; `done` counts them, for a progress bar.
pub fn replay(scenario: &Arc<Scenario>, slot: u64, done: impl Fn(u64)) -> Replay {
    let mut sim = Sim::new(scenario.clone());
    let first = if scenario.sequential() { 0 } else { slot };
    let mut chunk = first / CHUNK_SLOTS;
    let mut next = first;
    loop {
        let chunk_end = ((chunk + 1) * CHUNK_SLOTS).min(slot + 1);
        let found = runtime(chunk_seed(scenario.seed, chunk)).block_on(async {
            while next < chunk_end {
                let capture = next == slot;
                let run = sim.slot(next, capture).await;
                next += 1;
                if capture {
                    let [events, counterfactual_events] = run.events;
                    return Some(Replay {
                        result: run.result,
                        events,
                        counterfactual: run.counterfactual,
                        counterfactual_events,
                        queue_delay: run.queue_delay,
                    });
                }
            }
            None
        });
        if let Some(replay) = found {
            return replay;
        }
        done(chunk_end - chunk * CHUNK_SLOTS);
        chunk += 1;
    }
}

/// The replay as text: the event timeline, then the attempt log and the outcome.
pub fn render_replay(scenario: &Scenario, slot: u64, replay: &Replay) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "scenario {}  seed {}  slot {slot}  deadline {} s",
        scenario.name,
        scenario.seed,
        scenario.deadline.as_secs_f64()
    );
    if scenario.cadence.is_some() {
        let _ = writeln!(
            t,
            "waited {:.3} ms for the GPU after its scheduled start",
            replay.queue_delay.as_secs_f64() * 1e3
        );
    }
    let _ = writeln!(t, "\nevents (virtual time since slot start):");
    render_events(&mut t, &replay.events);
    let _ = writeln!(t, "\nattempts:");
    for a in &replay.result.log {
        let _ = writeln!(
            t,
            "  {:<6} #{}  start {:>10.3} ms  ran {:>10.3} ms  {}",
            a.stage.name(),
            a.attempt,
            a.start.as_secs_f64() * 1e3,
            a.duration.as_secs_f64() * 1e3,
            a.result
        );
    }
    let _ = writeln!(t, "\noutcome: {}", crate::tally::SlotKind::of(&replay.result).name());
    if let Some(c) = &replay.counterfactual {
        let _ = writeln!(
            t,
            "\ncounterfactual: the same slot re-run with the predictive abort off (not part of its timeline):"
        );
        render_events(&mut t, &replay.counterfactual_events);
        let verdict = match c.completed() {
            Some(done) if done.deadline_met => "would have met the deadline (a false abort)",
            Some(_) => "would have completed late (a correct abort)",
            None => "would have failed (a correct abort)",
        };
        let _ = writeln!(
            t,
            "had it continued: {} at {:.3} ms: {verdict}",
            crate::tally::SlotKind::of(c).name(),
            c.timing.total_ms
        );
    }
    t
}

/// One line per event: time, name, and the fields a reader needs.
fn render_events(t: &mut String, events: &[RecordedEvent]) {
    use std::fmt::Write as _;
    for e in events {
        let at = e.field("elapsed_ms").unwrap_or("?");
        let rest: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "message" | "elapsed_ms" | "slot_id"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(t, "  {at:>12} ms  {:<15} {}", e.name, rest.join(" "));
    }
}
