//! # vortex-sim: the slot scheduler in virtual time
//!
//! The real [`vortex::SlotScheduler`] runs in madsim's deterministic virtual time against
//! simulated stages whose latencies and failures are drawn from a [`Scenario`] file. It answers
//! "what P99 and abort rate will this config give under these conditions?" for hundreds of
//! thousands of slots per second.
//!
//! ## The front door
//! - [`Scenario::load`] reads a scenario file (with `--set` [`Override`]s).
//! - [`Simulator`] runs it ([`Simulator::run`], or one [`Shard`] of it with
//!   [`Simulator::run_shard`]), replays single slots ([`Simulator::replay`]) and sweeps a grid of
//!   overrides ([`Simulator::sweep`]); a [`Run`] gives its [`Report`] (table, JSON), its plot, or
//!   a shard file.
//! - [`sweep`] holds the grammars and the sweep's report, which recommends the best point under
//!   an objective.
//! - [`merge`] joins shard files into the unsharded run's or sweep's result, byte for byte.
//!
//! ```text
//! Scenario (YAML) ─► Simulator ─► runner: chunks of slots, one madsim runtime each, worker pool
//!                                   └─► SlotScheduler + simulated stages (keyed ChaCha draws, GPU)
//!                 ─► Tally (integer µs, hdrhistogram) ─► Report: table / JSON / SVG, or a shard file
//! ```
//!
//! Build it with `--cfg madsim` through the cargo aliases: `cargo sim -- run SCENARIO`,
//! `cargo sim-test`. Scenario parsing, reports and merging compile in either mode; running needs
//! the simulator build.
//!
//! Determinism: every latency, failure and rejection comes from a ChaCha stream keyed by
//! (seed, slot, stage, attempt, purpose); madsim's own seed only moves scheduling by
//! nanoseconds, and it is fixed per chunk of slots. The same scenario and seed give byte-identical
//! JSON on any machine, with any number of workers, whole or merged from shards.
//!
//! Environment: `MADSIM_TEST_SEED` pins the seed of simulated tests (`.cargo/config.toml`);
//! nothing else changes behaviour.

#![deny(missing_docs)]

pub mod calibrate;
mod dist;
// The simulated stages run only in the simulator build; the normal build compiles them so that
// `cargo clippy --workspace` checks them.
#[doc(hidden)]
pub mod fuzzing;
#[cfg_attr(not(madsim), allow(dead_code))]
mod gpu;
pub mod montecarlo;
mod plot;
#[cfg_attr(not(madsim), allow(dead_code))]
mod pool;
pub mod report;
mod rng;
#[cfg(madsim)]
mod runner;
pub mod scenario;
mod simulator;
#[cfg_attr(not(madsim), allow(dead_code))]
mod stages;
pub mod sweep;
mod tally;

pub use dist::Latency;
pub use plot::sweep_svg;
pub use report::{Report, RunInfo};
#[cfg(madsim)]
pub use runner::Replay;
pub use scenario::{Override, Scenario};
pub use simulator::{merge, Merged, Run, Shard, Simulator, MAX_SHARDS, MAX_SHARD_FILE_BYTES, SHARD_FORMAT};
pub use tally::SlotKind;
