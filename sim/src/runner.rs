//! Runs a scenario's slots through the real `SlotScheduler` in madsim's virtual time.
//!
//! Slots are cut into fixed chunks; each chunk runs, one slot after another, in its own madsim
//! runtime seeded from (scenario seed, chunk index). Workers take chunks from a shared counter and
//! the tallies merge in chunk order, so a report does not depend on the number of workers. The
//! chunk size also bounds how many stale timers a runtime accumulates (madsim keeps the timers of
//! dropped sleeps).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vortex::events::{RecordedEvent, Recorder};
use vortex::{Outcome, Recipe, SlotReport, SlotScheduler, StaticPredictor};

use crate::rng::splitmix64;
use crate::scenario::Scenario;
use crate::stages::SimStages;
use crate::tally::Tally;

/// Slots per chunk (and per madsim runtime).
pub const CHUNK_SLOTS: u64 = 1024;

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Show a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
}

/// The result of one replayed slot.
#[derive(Debug)]
pub struct Replay {
    /// The slot's full result.
    pub result: SlotReport<SimStages>,
    /// The scheduler's events, with virtual timestamps in `elapsed_ms`.
    pub events: Vec<RecordedEvent>,
    /// For an aborted slot: the result had it continued with aborts off.
    pub counterfactual: Option<SlotReport<SimStages>>,
}

/// Runs every slot of `scenario` and tallies the results.
pub fn run(scenario: &Arc<Scenario>, options: RunOptions) -> Tally {
    let chunks = scenario.slots.div_ceil(CHUNK_SLOTS) as usize;
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(chunks);
    let progress = progress_bar(options.progress, scenario.slots);
    let next = AtomicUsize::new(0);
    // Each worker keeps one tally across its chunks (a tally's histograms are large to allocate);
    // every part of a tally merges commutatively, so the result does not depend on which worker
    // ran which chunk.
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut tally = Tally::default();
                    loop {
                        let chunk = next.fetch_add(1, Ordering::Relaxed);
                        if chunk >= chunks {
                            return tally;
                        }
                        let before = tally.slots;
                        tally = run_chunk(scenario, chunk as u64, tally);
                        progress.inc(tally.slots - before);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation worker panicked")).collect()
    });
    progress.finish_and_clear();
    let mut total = Tally::default();
    for tally in &tallies {
        total.merge(tally);
    }
    assert_eq!(total.slots, scenario.slots, "every slot is counted once");
    total
}

fn progress_bar(enabled: bool, slots: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(slots);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} slots [{bar:30}] {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The madsim seed of a chunk: its scheduling jitter is then fixed by the scenario seed alone.
fn chunk_seed(scenario_seed: u64, chunk: u64) -> u64 {
    splitmix64(scenario_seed ^ splitmix64(chunk))
}

fn runtime(seed: u64) -> madsim::runtime::Runtime {
    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default())
}

/// Schedulers for one runtime: the normal one and one with aborts off for the counterfactual.
fn schedulers(scenario: &Arc<Scenario>) -> (SlotScheduler<SimStages>, SlotScheduler<SimStages>) {
    let stages = SimStages::new(scenario.clone());
    let orchestration = &scenario.config.orchestration;
    let predictor = || StaticPredictor::new(orchestration.targets.durations());
    let normal = SlotScheduler::new(stages.clone(), predictor(), orchestration);
    let no_abort = SlotScheduler::new(stages, predictor(), orchestration).with_predictive_abort(false);
    (normal, no_abort)
}

fn recipe(slot: u64) -> Recipe {
    Recipe::new(slot, "simulated script", "simulated prompt")
}

/// Runs one slot, and for an aborted slot the counterfactual with the same draws.
async fn run_slot(
    normal: &SlotScheduler<SimStages>,
    no_abort: &SlotScheduler<SimStages>,
    scenario: &Scenario,
    recipe: &Recipe,
) -> (SlotReport<SimStages>, Option<SlotReport<SimStages>>) {
    let result = normal.run_slot(recipe, scenario.deadline).await;
    let counterfactual = match result.outcome {
        Outcome::Aborted(_) => Some(no_abort.run_slot(recipe, scenario.deadline).await),
        _ => None,
    };
    (result, counterfactual)
}

/// Runs one chunk of slots, counting them into `tally`.
fn run_chunk(scenario: &Arc<Scenario>, chunk: u64, mut tally: Tally) -> Tally {
    let first = chunk * CHUNK_SLOTS;
    let end = (first + CHUNK_SLOTS).min(scenario.slots);
    runtime(chunk_seed(scenario.seed, chunk)).block_on({
        let scenario = scenario.clone();
        async move {
            let (normal, no_abort) = schedulers(&scenario);
            let mut recipe = recipe(first);
            for slot in first..end {
                // One recipe reused: the simulated stages read only its slot id.
                (recipe.slot_id, recipe.seed) = (slot, slot);
                let (result, counterfactual) = run_slot(&normal, &no_abort, &scenario, &recipe).await;
                let would_have_met = counterfactual.map(|c| c.completed().is_some_and(|c| c.deadline_met));
                tally.record(slot, &result, would_have_met);
            }
            tally
        }
    })
}

/// Re-runs slot `slot` alone, capturing its event timeline. Its draws are the same as in a full
/// run, so its outcome is too.
pub fn replay(scenario: &Arc<Scenario>, slot: u64) -> Replay {
    let chunk = slot / CHUNK_SLOTS;
    let scenario = scenario.clone();
    runtime(chunk_seed(scenario.seed, chunk)).block_on(async move {
        let (normal, no_abort) = schedulers(&scenario);
        let recorder = Recorder::default();
        let guard = recorder.set_default();
        let result = normal.run_slot(&recipe(slot), scenario.deadline).await;
        drop(guard);
        let counterfactual = match result.outcome {
            Outcome::Aborted(_) => Some(no_abort.run_slot(&recipe(slot), scenario.deadline).await),
            _ => None,
        };
        Replay { result, events: recorder.events(), counterfactual }
    })
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
    let _ = writeln!(t, "\nevents (virtual time since slot start):");
    for e in &replay.events {
        let at = e.field("elapsed_ms").unwrap_or("?");
        let rest: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "message" | "elapsed_ms" | "slot_id"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(t, "  {at:>12} ms  {:<15} {}", e.name, rest.join(" "));
    }
    let _ = writeln!(t, "\nattempts:");
    for a in &replay.result.log {
        let _ = writeln!(
            t,
            "  {:<6} #{}  start {:>10.3} ms  ran {:>10.3} ms  {:?}",
            a.stage.name(),
            a.attempt,
            a.start.as_secs_f64() * 1e3,
            a.duration.as_secs_f64() * 1e3,
            a.result
        );
    }
    let _ = writeln!(t, "\noutcome: {}", crate::tally::Kind::of(&replay.result).name());
    if let Some(c) = &replay.counterfactual {
        let verdict = match c.completed() {
            Some(done) if done.deadline_met => "would have met the deadline (a false abort)",
            Some(_) => "would have completed late (a correct abort)",
            None => "would have failed (a correct abort)",
        };
        let _ = writeln!(
            t,
            "had it continued: {} at {:.3} ms: {verdict}",
            crate::tally::Kind::of(c).name(),
            c.timing.total_ms
        );
    }
    t
}
