//! # Vortex slot orchestrator
//!
//! Every 45-second slot, a director turns a [`Recipe`] into a talking-head clip: **audio** and the
//! actor **image** in parallel, then **video**, then CLIP **verification**. The [`SlotScheduler`]
//! enforces per-stage timeouts, retries with exponential backoff and a predictive deadline abort,
//! and reports a timing breakdown for every slot.
//!
//! ## Two modes, one scheduler
//! All time and task calls go through [`rt`]: tokio in a normal build, the madsim simulator's
//! virtual time under `--cfg madsim` (use the `cargo sim` / `cargo sim-test` aliases). The stages
//! sit behind the [`Stages`] trait: the simulator draws latencies from scenario files, real mode
//! runs candle models.
//!
//! ## Map
//! - [`config`]: the `orchestration` section of `config.yaml` (real mode's sections live in
//!   `vortex-real`).
//! - [`units`]: validated numbers (seconds, probabilities, counts), checked while parsed.
//! - [`yaml`]: strict YAML reading with errors that name file, key, value, line and column.
//! - [`stage`]: the four stages and the [`Stages`] backend trait.
//! - [`scheduler`]: the slot state machine.
//! - [`predictor`]: remaining-work estimates for the predictive abort.
//! - [`outcome`]: what a slot produced.
//! - [`events`]: the progress checkpoints as `tracing` events.
//! - [`input`] and [`output`]: input files opened only when regular; output files checked
//!   before work starts and written atomically.
//!
//! ## Environment
//! - `MADSIM_TEST_SEED`: seed of simulated tests (pinned to 1 in `.cargo/config.toml`).
//! - `VORTEX_EXPECT_MADSIM`: set by the `sim*` cargo aliases; `tests/build_mode.rs` fails when
//!   the build mode does not match it (an exported `RUSTFLAGS` drops the simulator's cfg).
//! - `RUST_LOG`: log filter of the `vortex` binary.

#![deny(missing_docs)]

pub mod config;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod outcome;
pub mod output;
pub mod predictor;
pub mod recipe;
pub mod rt;
pub mod scheduler;
pub mod stage;
pub mod units;
pub mod yaml;

pub use config::Orchestration;
pub use outcome::{
    Abort, AttemptRecord, AttemptResult, Checkpoint, Completed, FailReason, Failure, Outcome, SlotResult, Timing,
};
pub use predictor::{AdaptivePredictor, ConfiguredPredictor, Predictor, Remaining, StaticPredictor};
pub use recipe::Recipe;
pub use scheduler::{SlotOutputs, SlotReport, SlotScheduler};
pub use stage::{FailureKind, PerStage, Stage, StageError, Stages, Verdict};
pub use yaml::ConfigError;

/// serde, for the validated-number macros used by other crates.
#[doc(hidden)]
pub use serde as __serde;
