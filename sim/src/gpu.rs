//! One simulated GPU shared by the parallel stages, as processor sharing: while `n >= 2` jobs run,
//! each progresses at `1 / parallel_slowdown` of its solo speed; when one ends, the others go on at
//! full speed for their remaining work.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::{select, Either};
use tokio::sync::Notify;
use vortex::rt::{self, Instant};

/// The most jobs that can share the GPU at once (audio and image, plus slack).
const MAX_JOBS: usize = 8;

/// Remaining work below this many seconds counts as done (float rounding of the rate changes).
const EPSILON_S: f64 = 1e-9;

/// The shared GPU.
#[derive(Debug)]
pub struct Gpu {
    slowdown: f64,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    jobs: Vec<Job>,
    updated: Option<Instant>,
}

#[derive(Debug)]
struct Job {
    id: u64,
    remaining_s: f64,
}

impl Gpu {
    /// A GPU on which two parallel jobs each run `slowdown` times slower.
    pub fn new(slowdown: f64) -> Self {
        assert!(slowdown >= 1.0, "parallel_slowdown below 1 is refused when the scenario loads");
        let state = State { next_id: 0, jobs: Vec::with_capacity(MAX_JOBS), updated: None };
        Gpu { slowdown, state: Mutex::new(state), changed: Notify::new() }
    }

    /// True when sharing changes anything (slowdown above 1).
    pub fn shares(&self) -> bool {
        self.slowdown > 1.0
    }

    /// Runs `work_s` seconds of solo work to completion (never, for infinite work). Dropping the
    /// future removes the job, and the others speed up.
    pub async fn run(&self, work_s: f64) {
        let id = self.with_state(|s| {
            assert!(s.jobs.len() < MAX_JOBS, "more than {MAX_JOBS} jobs on the simulated GPU");
            s.next_id += 1;
            s.jobs.push(Job { id: s.next_id, remaining_s: work_s });
            s.next_id
        });
        let _job = JobGuard { gpu: self, id };
        self.changed.notify_waiters();
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let (remaining_s, rate) = self.with_state(|s| (s.job(id).remaining_s, s.rate(self.slowdown)));
            if remaining_s <= EPSILON_S {
                return;
            }
            let eta = remaining_s / rate;
            if eta.is_infinite() {
                changed.await; // a hang: only a change of company (or a drop) wakes it
                continue;
            }
            // Work is at most a day and the slowdown at most MAX_PARALLEL_SLOWDOWN, so this fits
            // a Duration; the clamp keeps it so should either bound ever grow.
            let eta = eta.min(crate::scenario::MAX_PARALLEL_SLOWDOWN * vortex::units::MAX_SECONDS);
            let sleep = std::pin::pin!(rt::sleep(Duration::from_secs_f64(eta)));
            if let Either::Left(_) = select(sleep, changed).await {
                // Woke on its own timer: the work is done, up to rounding.
                self.with_state(|s| s.job_mut(id).remaining_s = 0.0);
                return;
            }
        }
    }

    /// Brings every job's remaining work up to now, then runs `f` on the state.
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().expect("gpu state poisoned");
        let now = rt::now();
        if let Some(then) = s.updated {
            let progress = (now - then).as_secs_f64() * s.rate(self.slowdown);
            for job in &mut s.jobs {
                job.remaining_s = (job.remaining_s - progress).max(0.0);
            }
        }
        s.updated = Some(now);
        f(&mut s)
    }
}

impl State {
    fn rate(&self, slowdown: f64) -> f64 {
        if self.jobs.len() >= 2 {
            1.0 / slowdown
        } else {
            1.0
        }
    }

    fn job(&self, id: u64) -> &Job {
        self.jobs.iter().find(|j| j.id == id).expect("job is on the GPU while its future lives")
    }

    fn job_mut(&mut self, id: u64) -> &mut Job {
        self.jobs.iter_mut().find(|j| j.id == id).expect("job is on the GPU while its future lives")
    }
}

/// Takes the job off the GPU when its future ends or is dropped, and tells the others.
struct JobGuard<'a> {
    gpu: &'a Gpu,
    id: u64,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        self.gpu.with_state(|s| {
            s.jobs.retain(|j| j.id != self.id);
            if s.jobs.is_empty() {
                // Idle: forget the clock, which may belong to another slot's runtime next time.
                s.updated = None;
            }
        });
        self.gpu.changed.notify_waiters();
    }
}
