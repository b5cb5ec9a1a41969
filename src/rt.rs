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

/// Time since it was started, on the mode's clock. In the simulator this reads madsim's clock
/// directly instead of through `Instant::now()` (an intercepted `clock_gettime` plus `Instant`
/// arithmetic, several times the cost), and a scheduler reads it a dozen times per slot.
#[derive(Clone)]
pub struct Stopwatch {
    started_at: Instant,
    #[cfg(madsim)]
    handle: madsim::time::TimeHandle,
    #[cfg(madsim)]
    start: Duration,
}

impl Stopwatch {
    /// Starts measuring now.
    #[cfg(madsim)]
    pub fn start() -> Stopwatch {
        let handle = madsim::time::TimeHandle::current();
        let start = handle.elapsed();
        Stopwatch { started_at: Instant::now(), handle, start }
    }

    /// Starts measuring now.
    #[cfg(not(madsim))]
    pub fn start() -> Stopwatch {
        Stopwatch { started_at: Instant::now() }
    }

    /// When it was started.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Time since it was started.
    #[cfg(madsim)]
    pub fn elapsed(&self) -> Duration {
        self.handle.elapsed() - self.start
    }

    /// Time since it was started.
    #[cfg(not(madsim))]
    pub fn elapsed(&self) -> Duration {
        Instant::now() - self.started_at
    }
}

/// Waits for `duration` of the mode's clock.
pub async fn sleep(duration: Duration) {
    #[cfg(not(madsim))]
    madsim::time::sleep(duration).await;
    #[cfg(madsim)]
    sim::Timer::after(duration, false).await;
}

/// Runs `future` for at most `limit`; the future is dropped (cancelled) when the limit passes.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, TimedOut> {
    #[cfg(not(madsim))]
    return madsim::time::timeout(limit, future).await.map_err(|_| TimedOut);
    #[cfg(madsim)]
    {
        let mut future = std::pin::pin!(future);
        let mut timer = sim::Timer::after(limit, true);
        std::future::poll_fn(|cx| sim::poll_timeout(future.as_mut(), &mut timer, cx)).await
    }
}

/// The simulator's timers, made cheap for a scheduler that runs thousands of slots in one task.
///
/// madsim's `Sleep` adds a timer to its heap on *every* poll while pending, and a dropped `Sleep`
/// leaves its timers behind; when they fire they wake the task, which polls every pending future
/// again, and each pending `Sleep` adds yet another timer. With every slot's stages in one task
/// that is most of the simulator's work. [`Timer`] registers once per waker and, once dropped,
/// turns its timers into no-ops; a timeout whose future already waits on an earlier timer
/// registers none at all ([`poll_timeout`]). Deadlines, and so every simulated time, are
/// unchanged: the task is woken at exactly the moments it was before, minus wake-ups that found
/// nothing to do.
#[cfg(madsim)]
mod sim {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    thread_local! {
        /// The earliest deadline of the timers found pending during the current poll: a timeout
        /// polls its future, and if this is at or before its own deadline, the task will be woken
        /// in time without a timer of its own.
        static EARLIEST: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    fn note_pending(deadline: Instant) {
        EARLIEST.set(Some(EARLIEST.get().map_or(deadline, |t| t.min(deadline))));
    }

    /// One poll of `rt::timeout`: the future first (it wins a tie with its own timeout, as in
    /// madsim's `timeout`), then the deadline; a timer only when nothing earlier will wake the task.
    pub fn poll_timeout<F: Future>(
        future: Pin<&mut F>,
        timer: &mut Timer,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F::Output, super::TimedOut>> {
        let outer = EARLIEST.take();
        let polled = future.poll(cx);
        let inner = EARLIEST.get();
        let deadline = timer.sleep.deadline();
        let result = match polled {
            Poll::Ready(out) => Poll::Ready(Ok(out)),
            Poll::Pending if timer.sleep.is_elapsed() => Poll::Ready(Err(super::TimedOut)),
            Poll::Pending if inner.is_some_and(|t| t <= deadline) => Poll::Pending,
            Poll::Pending => Pin::new(&mut *timer).poll(cx).map(|()| Err(super::TimedOut)),
        };
        EARLIEST.set(outer);
        if result.is_pending() {
            note_pending(inner.map_or(deadline, |t| t.min(deadline)));
        }
        result
    }

    /// A sleep that registers with madsim once per waker and, if `silent_after_drop`, is silent
    /// after it is dropped.
    pub struct Timer {
        sleep: madsim::time::Sleep,
        silent_after_drop: bool,
        registered: Option<Registration>,
    }

    enum Registration {
        /// Registered with the task's own waker: a later wake after a drop is harmless but costs a
        /// poll (a sleep is rarely dropped early; a timeout almost always is).
        Direct(Waker),
        /// Registered through a relay that the drop silences.
        Relayed(Arc<Relay>),
    }

    /// What madsim's timer wakes: it passes the wake on unless its `Timer` is gone.
    struct Relay {
        dropped: AtomicBool,
        waker: Mutex<Waker>,
    }

    impl Wake for Relay {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            if !self.dropped.load(Ordering::Acquire) {
                self.waker.lock().expect("relay poisoned").wake_by_ref();
            }
        }
    }

    impl Timer {
        pub fn after(duration: Duration, silent_after_drop: bool) -> Timer {
            Timer { sleep: madsim::time::sleep(duration), silent_after_drop, registered: None }
        }
    }

    impl Future for Timer {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.sleep.is_elapsed() {
                return Poll::Ready(());
            }
            note_pending(self.sleep.deadline());
            match &self.registered {
                // Same task: the registered timer will wake it.
                Some(Registration::Direct(waker)) if waker.will_wake(cx.waker()) => Poll::Pending,
                Some(Registration::Relayed(relay)) => {
                    // Another task polls it now: the relay follows.
                    let mut waker = relay.waker.lock().expect("relay poisoned");
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                Some(Registration::Direct(_)) | None if !self.silent_after_drop => {
                    self.registered = Some(Registration::Direct(cx.waker().clone()));
                    Pin::new(&mut self.sleep).poll(cx)
                }
                _ => {
                    let relay =
                        Arc::new(Relay { dropped: AtomicBool::new(false), waker: Mutex::new(cx.waker().clone()) });
                    let relay_waker = Waker::from(relay.clone());
                    let mut relay_cx = Context::from_waker(&relay_waker);
                    let poll = Pin::new(&mut self.sleep).poll(&mut relay_cx);
                    self.registered = Some(Registration::Relayed(relay));
                    poll
                }
            }
        }
    }

    impl Drop for Timer {
        fn drop(&mut self) {
            if let Some(Registration::Relayed(relay)) = &self.registered {
                relay.dropped.store(true, Ordering::Release);
            }
        }
    }
}

/// True when this build runs under the madsim simulator.
pub const SIMULATED: bool = cfg!(madsim);
