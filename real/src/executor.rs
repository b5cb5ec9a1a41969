//! Model work off the async runtime: each model owns one worker thread, the scheduler awaits its
//! jobs, and a dropped (timed-out, aborted, cancelled) job is told to stop through a
//! [`CancelToken`] that the model checks between units of work (a diffusion step, a frame batch).
//!
//! ```
//! use vortex_real::executor::{Cancelled, ModelWorker};
//! let worker = ModelWorker::spawn("doubler", 21u32);
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let answer = rt.block_on(worker.run(|model, cancel| {
//!     cancel.check()?; // between units of work
//!     Ok::<_, Cancelled>(*model * 2)
//! }));
//! assert_eq!(answer.unwrap(), 42);
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The error a model returns when it stopped because its job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Why a model job stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The job was cancelled.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Tells a running job to stop; the job checks it between units of work.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<TokenInner>,
}

#[derive(Debug, Default)]
struct TokenInner {
    cancelled: AtomicBool,
    at: Mutex<Option<Instant>>,
}

impl CancelToken {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        let mut at = self.inner.at.lock().expect("token poisoned");
        if at.is_none() {
            // Wall clock on purpose: this measures how long real model work runs on.
            *at = Some(Instant::now());
        }
        self.inner.cancelled.store(true, Ordering::Release);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// `Err(Cancelled)` once cancelled: call it between units of work and return the error.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    fn cancelled_at(&self) -> Option<Instant> {
        *self.inner.at.lock().expect("token poisoned")
    }
}

type Job<M> = Box<dyn FnOnce(&mut M) + Send>;

/// A model resident on its own thread.
pub struct ModelWorker<M> {
    name: &'static str,
    jobs: mpsc::Sender<Job<M>>,
    /// How long the last cancelled job ran on after its cancellation, in microseconds.
    last_overrun_us: Arc<AtomicU64>,
}

impl<M: Send + 'static> ModelWorker<M> {
    /// Moves `model` onto a new thread named after it.
    pub fn spawn(name: &'static str, mut model: M) -> Self {
        let (jobs, queue) = mpsc::channel::<Job<M>>();
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || {
                for job in queue {
                    job(&mut model);
                }
            })
            .expect("spawning a model thread");
        ModelWorker { name, jobs, last_overrun_us: Arc::default() }
    }

    /// Runs `f` on the model's thread and waits for it without blocking the runtime. Dropping the
    /// returned future cancels the job's token; the worker logs how long the job ran on.
    pub async fn run<T, E>(&self, f: impl FnOnce(&mut M, &CancelToken) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Cancelled> + Send + 'static,
    {
        let token = CancelToken::default();
        let (done, result) = tokio::sync::oneshot::channel();
        let (name, overrun, job_token) = (self.name, self.last_overrun_us.clone(), token.clone());
        let job: Job<M> = Box::new(move |model| {
            let out = f(model, &job_token);
            if let Some(at) = job_token.cancelled_at() {
                let ran_on = at.elapsed();
                overrun.store(ran_on.as_micros() as u64, Ordering::Relaxed);
                tracing::info!(target: "vortex::model", event = "model_cancelled", model = name,
                               ran_on_ms = ran_on.as_secs_f64() * 1e3, "cancelled stage kept running");
            }
            let _ = done.send(out);
        });
        let _cancel_on_drop = CancelOnDrop(token);
        if self.jobs.send(job).is_err() {
            panic!("model thread {} has stopped", self.name);
        }
        match result.await {
            Ok(out) => out,
            Err(_) => panic!("model thread {} dropped a job (it panicked)", self.name),
        }
    }

    /// How long the last cancelled job kept running after its cancellation.
    pub fn last_cancel_overrun(&self) -> Duration {
        Duration::from_micros(self.last_overrun_us.load(Ordering::Relaxed))
    }
}

/// Cancels the token when the awaiting future is dropped before the job finished.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
