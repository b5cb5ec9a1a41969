//! The slot's progress checkpoints as `tracing` events, and a recorder that captures them.
//!
//! The scheduler emits, under target [`TARGET`], one event each and in order: `slot_started`,
//! `audio_complete`, `image_complete` (these two in whichever order they finish),
//! `video_complete`, `clip_complete`, then exactly one of `slot_complete`, `slot_aborted` or
//! `slot_failed`; plus one `stage_retry` per retry that really started, one `stage_waiting` per
//! stage whose model is still busy with a cancelled attempt when the stage (or its retry) is
//! about to start (fields `stage`, `model`, `reason` such as `busy with a cancelled job of slot
//! 7`, `busy_ms` since the cancellation and `wait_ms` still expected, which the deadline check
//! counts), and `slot_cancelled` instead of a final event when the slot's future was dropped
//! from outside. Every event carries `event`, `slot_id` and `elapsed_ms` (time since the slot
//! started, virtual under the simulator).
//!
//! Levels carry meaning: progress is INFO; retries, waits, aborts and cancellations are WARN;
//! failures are ERROR. A failure's `reason` is a [`crate::FailureKind`] name (`timed_out`,
//! `deadline_capped`, `model_error`, `out_of_memory`, `cancelled`, `invalid_output`).
//!
//! Nothing in this crate installs a subscriber: the binary that runs slots chooses one (the
//! `vortex` binary logs to standard error); tests and the simulator's replay capture the events
//! with [`Recorder`].

use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The `tracing` target of every slot event.
pub const TARGET: &str = "vortex::slot";

/// One captured event: its `event` name and its other fields, in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// The `event` field, for example `audio_complete`.
    pub name: String,
    /// The other fields as `(name, value)`, values formatted as text.
    pub fields: Vec<(String, String)>,
}

impl RecordedEvent {
    /// The value of a field, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A `tracing` layer that keeps every slot event in memory.
///
/// ```
/// let recorder = vortex::events::Recorder::default();
/// let _guard = recorder.set_default();
/// tracing::info!(target: vortex::events::TARGET, event = "slot_started", slot_id = 7u64, "slot started");
/// assert_eq!(recorder.names(), ["slot_started"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<RecordedEvent>>>,
}

impl Recorder {
    /// Installs the recorder as this thread's subscriber until the guard is dropped.
    pub fn set_default(&self) -> tracing::subscriber::DefaultGuard {
        // tracing-core skips its dispatcher list while only one dispatcher is registered, and
        // then asks the *calling thread's* default instead: a callsite first hit on another
        // thread (a parallel test, a worker) would cache "never" for everyone, and this recorder
        // would miss its events. A second, permanent no-op dispatcher keeps the list in use.
        static KEEP_DISPATCHER_LIST: OnceLock<tracing::Dispatch> = OnceLock::new();
        KEEP_DISPATCHER_LIST.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    /// A copy of the events captured so far.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.events.lock().expect("recorder poisoned").clone()
    }

    /// The names of the events captured so far.
    pub fn names(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.name).collect()
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let recorded = RecordedEvent { name: visitor.name, fields: visitor.fields };
        self.events.lock().expect("recorder poisoned").push(recorded);
    }
}

#[derive(Default)]
struct FieldVisitor {
    name: String,
    fields: Vec<(String, String)>,
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.name = value.to_string();
        } else {
            self.fields.push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // Times are milliseconds: three decimals (microseconds) is all a timeline needs, and it
        // hides the simulator's nanosecond scheduling jitter.
        self.fields.push((field.name().to_string(), format!("{value:.3}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.push((field.name().to_string(), format!("{value:?}")));
    }
}
