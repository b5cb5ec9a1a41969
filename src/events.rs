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
//! An event log file (`events.jsonl`, written by real mode for each slot and by `vortex-sim
//! replay --events`) holds one event per line as a JSON object: `event` first, then the fields
//! in the order they were written; a value that reads as a number is a JSON number, anything else
//! a string ([`RecordedEvent::to_json_line`], [`RecordedEvent::from_json_line`]).
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

/// The longest line of an event log that [`RecordedEvent::from_json_line`] reads.
pub const MAX_JSON_LINE_BYTES: usize = 64 * 1024;

impl RecordedEvent {
    /// The value of a field, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of a field as a number, if present and numeric.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.field(name)?.parse().ok().filter(|v: &f64| v.is_finite())
    }

    /// The event as one line of an event log (no newline).
    ///
    /// ```
    /// use vortex::events::RecordedEvent;
    /// let e = RecordedEvent {
    ///     name: "audio_complete".into(),
    ///     fields: vec![("slot_id".into(), "7".into()), ("elapsed_ms".into(), "1250.000".into()), ("stage".into(), "audio".into())],
    /// };
    /// let line = e.to_json_line();
    /// assert_eq!(line, r#"{"event":"audio_complete","slot_id":7,"elapsed_ms":1250.000,"stage":"audio"}"#);
    /// let back = RecordedEvent::from_json_line(&line).unwrap();
    /// assert_eq!(back.number("elapsed_ms"), Some(1250.0));
    /// assert_eq!(back.field("stage"), Some("audio"));
    /// ```
    pub fn to_json_line(&self) -> String {
        let mut line = String::from("{\"event\":");
        line.push_str(&serde_json::Value::from(self.name.as_str()).to_string());
        for (key, value) in &self.fields {
            line.push(',');
            line.push_str(&serde_json::Value::from(key.as_str()).to_string());
            line.push(':');
            // The recorded text as written when it is a JSON number, so "1250.000" keeps its digits.
            if serde_json::from_str::<serde_json::Number>(value).is_ok() {
                line.push_str(value);
            } else {
                line.push_str(&serde_json::Value::from(value.as_str()).to_string());
            }
        }
        line.push('}');
        line
    }

    /// Reads one line of an event log: a JSON object with a string `event` and scalar fields
    /// (numbers come back as their shortest text, `1250.000` as `1250`).
    pub fn from_json_line(line: &str) -> Result<RecordedEvent, String> {
        if line.len() > MAX_JSON_LINE_BYTES {
            return Err(format!("a line of {} bytes; event lines are at most {MAX_JSON_LINE_BYTES}", line.len()));
        }
        let object: Fields = serde_json::from_str(line).map_err(|e| format!("not a JSON event object: {e}"))?;
        let mut name = None;
        let mut fields = Vec::with_capacity(object.0.len());
        for (key, value) in object.0 {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!("field {key:?} is {other}; event fields are strings, numbers or booleans"))
                }
            };
            if key == "event" {
                name = Some(text);
            } else {
                fields.push((key, text));
            }
        }
        let name = name.ok_or("no \"event\" field")?;
        Ok(RecordedEvent { name, fields })
    }
}

/// A JSON object's entries in the order written (serde_json's map would sort them).
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Fields(entries))
            }
        }
        d.deserialize_map(Entries)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_round_trip_in_order() {
        let e = RecordedEvent {
            name: "slot_failed".into(),
            fields: vec![
                ("slot_id".into(), "3".into()),
                ("error".into(), "a \"quoted\" message\nover two lines".into()),
                ("retry_skipped".into(), "true".into()),
                ("attempts".into(), "2".into()),
            ],
        };
        let back = RecordedEvent::from_json_line(&e.to_json_line()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn bad_event_lines_are_refused_with_the_reason() {
        for (line, want) in [
            ("not json", "not a JSON event object"),
            ("[1, 2]", "not a JSON event object"),
            (r#"{"slot_id": 1}"#, "no \"event\" field"),
            (r#"{"event": "x", "nested": {"a": 1}}"#, "field \"nested\""),
        ] {
            let err = RecordedEvent::from_json_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
        let long = format!(r#"{{"event": "{}"}}"#, "x".repeat(MAX_JSON_LINE_BYTES));
        assert!(RecordedEvent::from_json_line(&long).unwrap_err().contains("at most"));
    }
}
