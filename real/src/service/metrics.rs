//! `GET /metrics`: Prometheus text format through `prometheus-client`.
//!
//! Counters and histograms count slots finished since the process started (Prometheus's
//! convention: a restart resets them, and `rate()` handles that). There is no false-abort
//! estimate: real mode stops an aborted slot, so whether it would have made its deadline is never
//! observed; the simulator measures false aborts, where the counterfactual can be run.

use std::sync::atomic::AtomicU64;

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
        if let Some(abort) = &result.abort {
            self.aborts.get_or_create(&CheckpointLabel { checkpoint: abort.checkpoint.clone() }).inc();
        }
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
