//! Model work off the async runtime: each model owns one worker thread, the scheduler awaits its
//! jobs, and a dropped (timed-out, aborted, cancelled) job is told to stop through a
//! [`CancelToken`] that the model checks between units of work (a diffusion step, a frame batch).
//!
//! Faults stay inside the job: a job that panics fails with [`ModelError::Panicked`] and the
//! worker goes on with the next job; a worker whose queue already holds [`QUEUE_CAPACITY`] jobs
//! refuses a new one with [`ModelError::Busy`] instead of queueing without bound.
//!
//! ```
//! use vortex_real::executor::{ModelError, ModelWorker};
//! let worker = ModelWorker::spawn("doubler", 21u32);
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let answer = rt.block_on(worker.run(|model, cancel| {
//!     cancel.check()?; // between units of work
//!     Ok::<_, ModelError>(*model * 2)
//! }));
//! assert_eq!(answer.unwrap(), 42);
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vortex::stage::Backlog;
use vortex::{FailureKind, StageError};

/// Jobs a model worker holds at most (running and waiting). One slot runs at a time per GPU, and
/// a slot sends each model at most one job per attempt; a cancelled job that is still running
/// plus the next slot's job fit with room to spare.
pub const QUEUE_CAPACITY: usize = 4;

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
    /// The job panicked; the worker caught it and serves the next job.
    #[error("the model panicked: {0}")]
    Panicked(String),
    /// The model produced output that cannot be used (non-finite values, a wrong shape).
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The worker's queue was full.
    #[error("the model is busy: {0} jobs already queued")]
    Busy(usize),
}

/// A refusal of the caller's input (a voice, a text, an image, an expression), as the model
/// error the stage reports.
pub(crate) fn input_error(message: impl std::fmt::Display) -> ModelError {
    ModelError::Candle(candle_core::Error::Msg(message.to_string()))
}

impl ModelError {
    /// The failure kind the scheduler reports for it.
    pub fn kind(&self) -> FailureKind {
        match self {
            ModelError::Cancelled(_) => FailureKind::Cancelled,
            ModelError::InvalidOutput(_) => FailureKind::InvalidOutput,
            // candle's CUDA backend reports CUDA_ERROR_OUT_OF_MEMORY; its CPU backend an
            // allocation failure would abort instead, so only the message can tell.
            ModelError::Candle(e) if e.to_string().to_ascii_lowercase().contains("out of memory") => {
                FailureKind::OutOfMemory
            }
            ModelError::Candle(_) | ModelError::Panicked(_) | ModelError::Busy(_) => FailureKind::ModelError,
        }
    }

    /// The error as the scheduler sees it, its message prefixed with the stage (or model).
    pub fn into_stage_error(self, prefix: &str) -> StageError {
        StageError::of_kind(self.kind(), format!("{prefix}: {self}"))
    }
}

/// `Err(InvalidOutput)` naming `what` when `t` holds NaN or an infinity. Two passes on the
/// device: `0 · t` is zero where `t` is finite and NaN elsewhere, and a sum keeps a NaN (a max
/// would not: candle's CPU `max` skips NaN).
pub fn ensure_finite(t: &candle_core::Tensor, what: &str) -> Result<(), ModelError> {
    let probe = t.to_dtype(candle_core::DType::F32)?;
    let sum = (probe.zeros_like()? * &probe)?.sum_all()?.to_scalar::<f32>()?;
    if sum.is_finite() {
        Ok(())
    } else {
        Err(ModelError::InvalidOutput(format!("{what} holds NaN or infinite values")))
    }
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

/// The job a worker is running: its token, and the slot it was sent for.
struct Running {
    token: CancelToken,
    slot_id: Option<u64>,
}

/// A model resident on its own thread.
pub struct ModelWorker<M> {
    name: &'static str,
    jobs: mpsc::SyncSender<Job<M>>,
    /// Jobs sent and not yet finished (running or waiting).
    queued: Arc<AtomicUsize>,
    /// How long the last cancelled job ran on after its cancellation, in microseconds.
    last_overrun_us: Arc<AtomicU64>,
    /// The job running now, if any.
    running: Arc<Mutex<Option<Running>>>,
}

impl<M: Send + 'static> ModelWorker<M> {
    /// Moves `model` onto a new thread named after it.
    pub fn spawn(name: &'static str, mut model: M) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job<M>>(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name(format!("model-{name}"))
            .spawn(move || {
                for job in queue {
                    job(&mut model);
                }
            })
            .expect("spawning a model thread");
        ModelWorker { name, jobs, queued: Arc::default(), last_overrun_us: Arc::default(), running: Arc::default() }
    }

    /// Runs `f` on the model's thread and waits for it without blocking the runtime. Dropping the
    /// returned future cancels the job's token; the worker logs how long the job ran on. A job
    /// that panics returns [`ModelError::Panicked`]; the model is kept (candle models hold their
    /// weights immutably, so a panic mid-forward leaves nothing half-written).
    pub async fn run<T>(
        &self,
        f: impl FnOnce(&mut M, &CancelToken) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError>
    where
        T: Send + 'static,
    {
        self.submit(None, f).await
    }

    /// [`ModelWorker::run`] for one slot's attempt: while the job runs on after a cancellation,
    /// [`ModelWorker::backlog`] names the slot.
    pub async fn run_for_slot<T>(
        &self,
        slot_id: u64,
        f: impl FnOnce(&mut M, &CancelToken) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError>
    where
        T: Send + 'static,
    {
        self.submit(Some(slot_id), f).await
    }

    async fn submit<T>(
        &self,
        slot_id: Option<u64>,
        f: impl FnOnce(&mut M, &CancelToken) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError>
    where
        T: Send + 'static,
    {
        let token = CancelToken::default();
        let (done, result) = tokio::sync::oneshot::channel();
        let (name, overrun, job_token, queued, running) =
            (self.name, self.last_overrun_us.clone(), token.clone(), self.queued.clone(), self.running.clone());
        let job: Job<M> = Box::new(move |model| {
            *running.lock().expect("worker state poisoned") = Some(Running { token: job_token.clone(), slot_id });
            let out = catch_unwind(AssertUnwindSafe(|| f(model, &job_token)))
                .unwrap_or_else(|panic| Err(ModelError::Panicked(panic_message(panic.as_ref()))));
            if let Err(ModelError::Panicked(message)) = &out {
                tracing::error!(target: "vortex::model", event = "model_panicked", model = name,
                                message = message.as_str(), "model job panicked; the worker goes on");
            }
            if let Some(at) = job_token.cancelled_at() {
                let ran_on = at.elapsed();
                overrun.store(ran_on.as_micros() as u64, Ordering::Relaxed);
                tracing::warn!(target: "vortex::model", event = "model_cancelled", model = name,
                               ran_on_ms = ran_on.as_secs_f64() * 1e3, "cancelled stage kept running");
            }
            *running.lock().expect("worker state poisoned") = None;
            queued.fetch_sub(1, Ordering::AcqRel);
            let _ = done.send(out);
        });
        let _cancel_on_drop = CancelOnDrop(token);
        let before = self.queued.fetch_add(1, Ordering::AcqRel);
        if before >= QUEUE_CAPACITY {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(ModelError::Busy(before));
        }
        if self.jobs.try_send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(ModelError::Busy(QUEUE_CAPACITY));
        }
        match result.await {
            Ok(out) => out,
            // Only reachable if the worker thread itself died, which catch_unwind prevents.
            Err(_) => Err(ModelError::Panicked(format!("the {} worker stopped", self.name))),
        }
    }

    /// Jobs sent to this model and not yet finished (a cancelled job still running counts).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// How long the last cancelled job kept running after its cancellation.
    pub fn last_cancel_overrun(&self) -> Duration {
        Duration::from_micros(self.last_overrun_us.load(Ordering::Relaxed))
    }

    /// The model's backlog when it is running a job that was already cancelled: the job's
    /// slot, how long it has run on, and how much longer it is expected to (the last cancelled
    /// job's overrun less the time already spent; once past that, or with no history, as long
    /// again as it has already run on). `None` when idle or running live work.
    pub fn backlog(&self) -> Option<Backlog> {
        let running = self.running.lock().expect("worker state poisoned");
        let job = running.as_ref()?;
        let busy_for = job.token.cancelled_at()?.elapsed();
        let last = self.last_cancel_overrun();
        let expected_wait = if last > busy_for { last - busy_for } else { busy_for };
        Some(Backlog { model: self.name.into(), slot_id: job.slot_id, busy_for, expected_wait })
    }
}

/// Cancels the token when the awaiting future is dropped before the job finished.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
