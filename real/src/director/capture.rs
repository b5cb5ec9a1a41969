//! Structured logs, and each slot's own event log.
//!
//! The `vortex` binary installs one global subscriber ([`init_logs`]): JSON lines on standard
//! error filtered by `RUST_LOG`, and a router that hands every slot event (target
//! [`vortex::events::TARGET`]) to the [`SlotCapture`] open for its `slot_id`, whatever thread
//! emitted it. A slot's stages run on a multi-threaded runtime and its events come from any of
//! its threads, so a thread-local recorder would miss some; routing by `slot_id` also keeps
//! concurrent slots' logs apart. Each capture is a [`vortex::events::Recorder`], so a real slot's
//! events read exactly as the simulator's replay records them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use vortex::events::{RecordedEvent, Recorder, TARGET};

/// The open captures, by slot id.
fn routes() -> &'static Mutex<HashMap<u64, Recorder>> {
    static ROUTES: OnceLock<Mutex<HashMap<u64, Recorder>>> = OnceLock::new();
    ROUTES.get_or_init(Mutex::default)
}

/// True once the router is part of the global subscriber.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber once (later calls do nothing): JSON lines on standard error,
/// filtered by `RUST_LOG` (default `warn`, so commands' own output stays readable; `RUST_LOG=info`
/// shows every slot event), and the slot-event router, which sees slot events at every level
/// whatever `RUST_LOG` says. Returns false when another global subscriber was installed first
/// (then no slot can be captured, and [`SlotCapture::start`] says so).
pub fn init_logs() -> bool {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let logs = tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter);
        let router = SlotEventRouter.with_filter(tracing_subscriber::filter::filter_fn(|m| m.target() == TARGET));
        if tracing_subscriber::registry().with(logs).with(router).try_init().is_ok() {
            INSTALLED.store(true, Ordering::Release);
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

/// Why a slot's events cannot be captured.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// [`init_logs`] has not installed the router.
    #[error("slot events cannot be captured: the slot-event router is not installed (call director::capture::init_logs at start-up, before any other subscriber)")]
    NotInstalled,
    /// Another capture is open for the same slot id.
    #[error("slot {0} is already running: its events are being captured")]
    Busy(u64),
}

/// The events of one running slot, captured until [`SlotCapture::finish`] (or drop).
#[derive(Debug)]
pub struct SlotCapture {
    slot_id: u64,
    recorder: Recorder,
}

impl SlotCapture {
    /// Starts capturing the events of `slot_id`. Refused when the router is not installed or a
    /// capture of the same slot is open.
    pub fn start(slot_id: u64) -> Result<SlotCapture, CaptureError> {
        if !INSTALLED.load(Ordering::Acquire) {
            return Err(CaptureError::NotInstalled);
        }
        let mut routes = routes().lock().expect("slot routes poisoned");
        if routes.contains_key(&slot_id) {
            return Err(CaptureError::Busy(slot_id));
        }
        let recorder = Recorder::default();
        routes.insert(slot_id, recorder.clone());
        Ok(SlotCapture { slot_id, recorder })
    }

    /// The events captured so far, in the order they were emitted.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.recorder.events()
    }

    /// Stops capturing and returns the slot's events.
    pub fn finish(self) -> Vec<RecordedEvent> {
        self.recorder.events()
    }
}

impl Drop for SlotCapture {
    fn drop(&mut self) {
        routes().lock().expect("slot routes poisoned").remove(&self.slot_id);
    }
}

/// The layer that routes slot events to their slot's capture.
struct SlotEventRouter;

impl<S: tracing::Subscriber> Layer<S> for SlotEventRouter {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut id = SlotId(None);
        event.record(&mut id);
        let Some(slot_id) = id.0 else { return };
        // Cloned out so that the recorder's own lock is not taken under the routes' lock.
        let recorder = routes().lock().expect("slot routes poisoned").get(&slot_id).cloned();
        if let Some(recorder) = recorder {
            recorder.on_event(event, ctx);
        }
    }
}

/// Reads an event's `slot_id` field.
struct SlotId(Option<u64>);

impl Visit for SlotId {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "slot_id" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "slot_id" {
            self.0 = format!("{value:?}").parse().ok();
        }
    }
}
