//! The one place that knows which clock and executor run the scheduler.
//!
//! In a normal build these are tokio's (real time, or tokio's paused clock in tests); built with
//! `--cfg madsim` they are the madsim simulator's virtual time. Scheduler code calls only this
//! module for time and tasks, so the very same code runs in both modes.
//!
//! ```
//! # #[cfg(not(madsim))] {
//! use std::time::Duration;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
//! rt.block_on(async {
//!     let start = vortex::rt::now();
//!     vortex::rt::sleep(Duration::from_secs(3)).await; // virtual: returns at once
//!     assert_eq!(vortex::rt::now() - start, Duration::from_secs(3));
//!     let slow = vortex::rt::timeout(Duration::from_secs(1), std::future::pending::<()>());
//!     assert!(slow.await.is_err());
//! });
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

/// A point in the mode's time: tokio's `Instant` in a normal build, the simulator's under madsim.
pub use madsim::time::Instant;

/// The error of [`timeout`]: the future did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// The current time of the mode's clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Waits for `duration` of the mode's clock.
pub async fn sleep(duration: Duration) {
    madsim::time::sleep(duration).await
}

/// Runs `future` for at most `limit`; the future is dropped (cancelled) when the limit passes.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, TimedOut> {
    madsim::time::timeout(limit, future).await.map_err(|_| TimedOut)
}

/// True when this build runs under the madsim simulator.
pub const SIMULATED: bool = cfg!(madsim);
