//! # vortex-sim: the slot scheduler in virtual time
//!
//! The real [`vortex::SlotScheduler`] runs in madsim's deterministic virtual time against
//! [`SimStages`], whose latencies and failures are drawn from a [`Scenario`] file. It answers
//! "what P99 and abort rate will this config give under these conditions?" for tens of thousands
//! of slots in seconds.
//!
//! ```text
//! Scenario (YAML) ─► runner: chunks of slots, one madsim runtime each, all cores
//!                      └─► SlotScheduler + SimStages (keyed ChaCha draws, simulated GPU)
//!                  ─► Tally (integer µs, hdrhistogram) ─► Report: table / JSON / SVG
//! ```
//!
//! Build it with `--cfg madsim` through the cargo aliases: `cargo sim -- run SCENARIO`,
//! `cargo sim-test`. Scenario parsing and reports compile in either mode; the [`runner`] exists only
//! in the simulator build.
//!
//! Determinism: every latency, failure and rejection comes from a ChaCha stream keyed by
//! (seed, slot, stage, attempt, purpose) ([`rng`]); madsim's own seed only moves scheduling by
//! nanoseconds, and it is fixed per chunk of slots. The same scenario and seed give byte-identical
//! JSON on any machine and with any number of workers.

#![deny(missing_docs)]

pub mod dist;
pub mod gpu;
pub mod montecarlo;
pub mod plot;
pub mod report;
pub mod rng;
#[cfg(madsim)]
pub mod runner;
pub mod scenario;
pub mod stages;
pub mod sweep;
pub mod tally;

pub use report::Report;
#[cfg(madsim)]
pub use runner::{replay, run, RunOptions};
pub use scenario::{Override, Scenario};
pub use stages::SimStages;
