//! `GET /metrics`: Prometheus text format through `prometheus-client`.
//!
//! Counters and histograms count slots finished since the process started (Prometheus's
//! convention: a restart resets them, and `rate()` handles that).
//!
//! Real mode stops an aborted slot, so whether it would have made its deadline is never observed
//! (the simulator measures false aborts, where the counterfactual can be run). The service
//! estimates it instead ([`false_abort_chance`]): for each abort, the share of the last
//! [`HISTORY`] completed slots whose work from that checkpoint on would have fitted the time the
//! aborted slot had left. `vortex_false_aborts_estimated` sums those chances.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use vortex::events::RecordedEvent;

use crate::director::files::ResultFile;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabel {
    checkpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

/// Latency buckets, seconds: 0.05 s doubling to about 7 minutes (a slot lasts 45 s; tiny
/// models on a CPU take a fraction of a second).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// Completed slots remembered for the false-abort estimate.
pub const HISTORY: usize = 200;

/// The checkpoints, in a completed slot's order of work left: before the start (the whole slot),
/// before the video (video and clip), before the clip.
const CHECKPOINTS: [&str; 3] = ["before_start", "before_video", "before_clip"];

/// The chance that an abort at `checkpoint` with `time_left_ms` to its deadline was false: the
/// share of `history` (each completed slot's work left at the three [`CHECKPOINTS`], ms) that
/// would have fitted. `None` without history or for an unknown checkpoint.
pub fn false_abort_chance(history: &VecDeque<[f64; 3]>, checkpoint: &str, time_left_ms: f64) -> Option<f64> {
    let i = CHECKPOINTS.iter().position(|c| *c == checkpoint)?;
    if history.is_empty() {
        return None;
    }
    let fitted = history.iter().filter(|work| work[i] <= time_left_ms).count();
    Some(fitted as f64 / history.len() as f64)
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    slots: Family<OutcomeLabel, Counter>,
    stage_latency: Family<StageLabel, Histogram, fn() -> Histogram>,
    slot_latency: Histogram,
    retries: Family<StageLabel, Counter>,
    aborts: Family<CheckpointLabel, Counter>,
    backlog_waits: Family<StageLabel, Counter>,
    backlog_wait: Histogram,
    cancel_overrun: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    queue_depth: Gauge,
    running: Gauge,
    vram: Gauge,
    false_aborts: Gauge<f64, AtomicU64>,
    /// The last [`HISTORY`] completed slots' work left at each checkpoint, ms.
    history: Mutex<VecDeque<[f64; 3]>>,
}

impl Metrics {
    /// Registers every metric; `vram_bytes` is the models' resident size from the VRAM budget.
    pub fn new(vram_bytes: u64) -> Metrics {
        let mut registry = Registry::with_prefix("vortex");
        let slots = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "slots",
            "Slots finished, by outcome: delivered, flawed (late or rejected by the self-check), aborted, failed, error (not run or not written)",
            slots.clone(),
        );
        let stage_latency = Family::<StageLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register_with_unit(
            "stage_latency",
            "Time of each finished stage, first attempt to success, retries included",
            Unit::Seconds,
            stage_latency.clone(),
        );
        let slot_latency = latency();
        registry.register_with_unit(
            "slot_latency",
            "Time of each slot, start to end, whatever its outcome",
            Unit::Seconds,
            slot_latency.clone(),
        );
        let retries = Family::<StageLabel, Counter>::default();
        registry.register("retries", "Retries started, by stage", retries.clone());
        let aborts = Family::<CheckpointLabel, Counter>::default();
        registry.register("aborts", "Slots aborted by the predictor, by checkpoint", aborts.clone());
        let backlog_waits = Family::<StageLabel, Counter>::default();
        registry.register(
            "backlog_waits",
            "Stages that found their model still busy with a cancelled predecessor's job",
            backlog_waits.clone(),
        );
        let backlog_wait = latency();
        registry.register_with_unit(
            "backlog_wait",
            "Expected wait for a model still busy with a cancelled job, as the deadline check counted it",
            Unit::Seconds,
            backlog_wait.clone(),
        );
        let cancel_overrun = Family::<ModelLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "cancel_overrun",
            "How long each model's last cancelled job ran on after its cancellation",
            Unit::Seconds,
            cancel_overrun.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Slots waiting for the GPU", queue_depth.clone());
        let running = Gauge::default();
        registry.register("slots_running", "Slots generating now (0 or 1)", running.clone());
        let vram = Gauge::default();
        registry.register_with_unit(
            "vram_resident",
            "The loaded models' resident size, from the VRAM budget",
            Unit::Bytes,
            vram.clone(),
        );
        vram.set(i64::try_from(vram_bytes).unwrap_or(i64::MAX));
        let false_aborts = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "false_aborts_estimated",
            "Aborts that would probably have made their deadline: the sum over aborts of the share of recent completed slots whose remaining work fitted the aborted slot's time left",
            false_aborts.clone(),
        );
        Metrics {
            registry,
            slots,
            stage_latency,
            slot_latency,
            retries,
            aborts,
            backlog_waits,
            backlog_wait,
            cancel_overrun,
            queue_depth,
            running,
            vram,
            false_aborts,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    /// Counts a finished slot from its result and events.
    pub fn slot(&self, outcome: &str, result: &ResultFile, events: &[RecordedEvent]) {
        self.slots.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
        let t = &result.timing_ms;
        for (stage, ms) in [("audio", t.audio_ms), ("image", t.image_ms), ("video", t.video_ms), ("clip", t.clip_ms)] {
            if let Some(ms) = ms {
                self.stage_latency.get_or_create(&StageLabel { stage: stage.into() }).observe(ms / 1e3);
            }
        }
        self.slot_latency.observe(t.total_ms / 1e3);
        let a = &result.attempts;
        for (stage, n) in [("audio", a.audio), ("image", a.image), ("video", a.video), ("clip", a.clip)] {
            if n > 1 {
                self.retries.get_or_create(&StageLabel { stage: stage.into() }).inc_by(u64::from(n - 1));
            }
        }
        let mut history = self.history.lock().expect("metrics history poisoned");
        if let Some(abort) = &result.abort {
            self.aborts.get_or_create(&CheckpointLabel { checkpoint: abort.checkpoint.clone() }).inc();
            let time_left_ms = result.deadline_ms - abort.elapsed_ms;
            if let Some(chance) = false_abort_chance(&history, &abort.checkpoint, time_left_ms) {
                self.false_aborts.inc_by(chance);
            }
        }
        if let (Some(video), Some(clip), true) = (t.video_ms, t.clip_ms, result.outcome == "completed") {
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back([t.total_ms, video + clip, clip]);
        }
        drop(history);
        for event in events.iter().filter(|e| e.name == "stage_waiting") {
            let stage = event.field("stage").unwrap_or("unknown").to_string();
            self.backlog_waits.get_or_create(&StageLabel { stage }).inc();
            if let Some(ms) = event.number("wait_ms") {
                self.backlog_wait.observe(ms / 1e3);
            }
        }
    }

    /// Counts a slot that could not run or whose folder could not be written.
    pub fn error(&self) {
        self.slots.get_or_create(&OutcomeLabel { outcome: "error".into() }).inc();
    }

    /// Sets the queue's depth and whether a slot is running.
    pub fn queue(&self, depth: usize, running: bool) {
        self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.running.set(i64::from(running));
    }

    /// Sets a model's last cancel overrun.
    pub fn cancel_overrun(&self, model: &str, seconds: f64) {
        self.cancel_overrun.get_or_create(&ModelLabel { model: model.into() }).set(seconds);
    }

    /// The resident VRAM figure, bytes.
    pub fn vram_bytes(&self) -> i64 {
        self.vram.get()
    }

    /// The metrics as Prometheus text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_false_abort_chance_is_the_share_of_recent_slots_that_would_have_fitted() {
        let mut history = VecDeque::new();
        assert_eq!(false_abort_chance(&history, "before_video", 5_000.0), None, "no history, no estimate");
        // Four completed slots: total, video + clip, clip (ms).
        for work in [
            [20_000.0, 9_000.0, 1_000.0],
            [25_000.0, 10_000.0, 1_500.0],
            [30_000.0, 12_000.0, 800.0],
            [40_000.0, 20_000.0, 2_000.0],
        ] {
            history.push_back(work);
        }
        assert_eq!(false_abort_chance(&history, "before_start", 26_000.0), Some(0.5));
        assert_eq!(false_abort_chance(&history, "before_video", 10_000.0), Some(0.5), "at the boundary it fits");
        assert_eq!(false_abort_chance(&history, "before_clip", 900.0), Some(0.25));
        assert_eq!(false_abort_chance(&history, "before_clip", -5.0), Some(0.0), "past its deadline: never false");
        assert_eq!(false_abort_chance(&history, "after_lunch", 1e9), None);
    }
}
