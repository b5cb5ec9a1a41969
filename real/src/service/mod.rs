//! # `vortex serve`: the director service
//!
//! One long-running process: it loads the models once, takes recipes over HTTP ([`api`]), queues
//! them under a bound ([`queue`]), and generates one slot at a time (one GPU) with the same
//! [`crate::director::Director`] as `vortex run`, writing each slot's folder whole under
//! `service.out_dir` ([`store`]), where a restart finds it again. A slot's deadline is fixed
//! when it is posted, from its schedule; what is left of it when the slot reaches the GPU is
//! what the scheduler gets, so a slot that can no longer make it is aborted by the predictor
//! before it starts, and a model still busy with a cancelled predecessor's job is waited for
//! (the scheduler's backlog check). [`metrics`] and the status page ([`page`]) report it.
//!
//! On SIGTERM (or Ctrl-C) the service stops accepting connections and slots, gives the running
//! slot `service.shutdown_grace_s` to finish (its folder is then written whole), and cancels it
//! after that: a cancelled slot writes nothing, and slots still queued are dropped, both logged.

pub mod api;
pub mod metrics;
pub mod page;
pub mod queue;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use vortex::Recipe;

use crate::config::Config;
use crate::director::files::{self, OutDir};
use crate::director::Director;
use queue::{Status, Table};
use store::Summary;

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Taking slots.
    Serving,
    /// Stopping: no new slot; the running one may finish.
    Draining,
    /// Stopping now: the running slot is cancelled.
    Cancelling,
}

/// What the handlers and the worker share.
pub struct Shared {
    director: Director,
    table: Mutex<Table>,
    wake: Notify,
    out_dir: PathBuf,
    mp4: bool,
    metrics: metrics::Metrics,
    phase: watch::Sender<Phase>,
}

impl Shared {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("slot table poisoned")
    }

    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    fn update_queue_metrics(&self) {
        let view = self.table().view();
        self.metrics.queue(view.depth, view.running.is_some());
    }
}

/// A service ready to serve: models loaded, the output folder scanned.
pub struct Service {
    shared: Arc<Shared>,
    grace: Duration,
}

impl Service {
    /// Loads the models, scans `service.out_dir` (relative to `base_dir`, the config file's
    /// folder) for finished slots and removes partial ones left by a crash.
    pub async fn start(config: &Config, base_dir: &Path) -> anyhow::Result<Service> {
        if config.service.out_dir.as_os_str().is_empty() {
            anyhow::bail!("service.out_dir: empty; give the folder that holds finished slots (default: slots)");
        }
        let out_dir = base_dir.join(&config.service.out_dir);
        let found = store::scan(&out_dir).map_err(anyhow::Error::msg)?;
        for path in &found.removed {
            tracing::warn!(target: "vortex::service", path = %path.display(), "removed a partial slot folder left by an interrupted write");
        }
        let director = Director::load(config, base_dir).await?;
        let vram = director.scheduler().stages().models().budget.total();
        let mut table = Table::new(config.service.queue_max.get() as usize);
        for (id, status) in found.slots {
            if let Status::Unreadable(reason) = &status {
                tracing::warn!(target: "vortex::service", slot_id = id, reason = %reason, "a slot folder cannot be read; its id stays taken");
            }
            table.found(id, status);
        }
        let (phase, _) = watch::channel(Phase::Serving);
        let shared = Arc::new(Shared {
            director,
            table: Mutex::new(table),
            wake: Notify::new(),
            out_dir,
            mp4: crate::media::ffmpeg_on_path(),
            metrics: metrics::Metrics::new(vram),
            phase,
        });
        Ok(Service { shared, grace: Duration::from_secs_f64(config.service.shutdown_grace_s.get()) })
    }

    /// Serves on `listener` until SIGTERM or Ctrl-C, then stops as the module says. `ready` is
    /// called with the bound address once connections are accepted.
    pub async fn run(self, listener: tokio::net::TcpListener, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        let shared = self.shared;
        let worker = tokio::spawn(worker(shared.clone()));
        let mut phase = shared.phase.subscribe();
        let app = api::router(shared.clone());
        let mut server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = phase.wait_for(|p| *p != Phase::Serving).await;
                })
                .await
        });
        tracing::info!(target: "vortex::service", addr = %addr, "serving");
        ready(addr);
        tokio::select! {
            () = stop_signal() => {}
            // The server only ends on its own when it failed: stop the slots and say why.
            served = &mut server => {
                shared.phase.send_replace(Phase::Cancelling);
                let _ = worker.await;
                served??;
                anyhow::bail!("--listen {addr}: the server stopped accepting connections");
            }
        }
        tracing::warn!(target: "vortex::service", grace_s = self.grace.as_secs_f64(), "stopping: no new slots; the running slot may finish within the grace");
        shared.phase.send_replace(Phase::Draining);
        let mut worker = worker;
        if tokio::time::timeout(self.grace, &mut worker).await.is_err() {
            shared.phase.send_replace(Phase::Cancelling);
            worker.await?;
        }
        let dropped = shared.table().view().waiting;
        if !dropped.is_empty() {
            tracing::warn!(target: "vortex::service", slots = ?dropped, "queued slots dropped at shutdown (never run, nothing written)");
        }
        // Requests already in flight get a moment to finish; a slow download does not hold the exit.
        match tokio::time::timeout(SERVER_DRAIN, server).await {
            Ok(served) => served??,
            Err(_) => tracing::warn!(target: "vortex::service", "connections still open at exit were closed"),
        }
        tracing::info!(target: "vortex::service", "stopped");
        Ok(())
    }
}

/// How long open connections get to finish after the worker stopped.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs queued slots one at a time until the service stops.
async fn worker(shared: Arc<Shared>) {
    let mut phase = shared.phase.subscribe();
    loop {
        let next = loop {
            if shared.phase() != Phase::Serving {
                return;
            }
            if let Some(next) = shared.table().pop() {
                break next;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = phase.changed() => {}
            }
        };
        shared.update_queue_metrics();
        let (recipe, deadline) = next;
        let slot_id = recipe.slot_id;
        tokio::select! {
            status = run_one(&shared, &recipe, deadline) => {
                shared.table().finish(slot_id, status);
            }
            _ = phase.wait_for(|p| *p == Phase::Cancelling) => {
                // Dropping the slot's future cancels its model jobs; nothing of it was written.
                shared.table().forget(slot_id);
                tracing::warn!(target: "vortex::service", slot_id, "slot cancelled at shutdown: nothing written");
                shared.update_queue_metrics();
                return;
            }
        }
        shared.update_queue_metrics();
    }
}

/// Runs one slot under what is left of its deadline and writes its folder.
async fn run_one(shared: &Shared, recipe: &Recipe, deadline: SystemTime) -> Status {
    let slot_id = recipe.slot_id;
    // What is left of the schedule now, not from when it was posted: possibly nothing, and the
    // predictor then aborts the slot before it starts.
    let left = deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    let dir = store::slot_dir(&shared.out_dir, slot_id);
    let out = match OutDir::check("service.out_dir", &dir) {
        Ok(out) => out,
        Err(e) => return error(shared, slot_id, e.to_string()),
    };
    let run = match shared.director.run_slot(recipe, left).await {
        Ok(run) => run,
        Err(e) => return error(shared, slot_id, e.to_string()),
    };
    for (name, overrun) in cancel_overruns(shared.director.scheduler().stages().models()) {
        shared.metrics.cancel_overrun(name, overrun.as_secs_f64());
    }
    // Writing (and ffmpeg's muxing) blocks: off the async threads' hands.
    let written = tokio::task::block_in_place(|| files::write_run(&run, &out, shared.mp4));
    if let Err(e) = written {
        return error(shared, slot_id, e.to_string());
    }
    let result = match files::read_result(&dir) {
        Ok(result) => result,
        Err(e) => return error(shared, slot_id, e),
    };
    let summary = Summary::of(&result);
    shared.metrics.slot(summary.outcome, &result, &run.events);
    tracing::info!(target: "vortex::service", slot_id, outcome = summary.outcome, total_ms = result.timing_ms.total_ms, "slot finished");
    Status::Finished(Box::new(summary))
}

/// Each loaded model's last cancel overrun: the work a cancelled slot left behind.
fn cancel_overruns(models: &crate::models::Models) -> Vec<(&'static str, Duration)> {
    let mut overruns = Vec::new();
    if let Some(m) = &models.kokoro {
        overruns.push(("kokoro", m.last_cancel_overrun()));
    }
    if let Some(m) = &models.flux {
        overruns.push(("flux", m.last_cancel_overrun()));
    }
    if let Some(m) = &models.liveportrait {
        overruns.push(("liveportrait", m.last_cancel_overrun()));
    }
    if let Some(m) = &models.clip {
        overruns.push(("clip", m.last_cancel_overrun()));
    }
    overruns
}

fn error(shared: &Shared, slot_id: u64, message: String) -> Status {
    tracing::error!(target: "vortex::service", slot_id, error = %message, "slot not run or not written");
    shared.metrics.error();
    Status::Error(message)
}
