//! The one worker pool and the one progress bar of the simulator: runs and sweeps both hand it
//! numbered jobs (chunks of slots, or grid points).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// The number of worker threads `workers` asks for (0: one per core).
pub fn worker_count(workers: usize) -> usize {
    match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Runs `job(&mut state, i)` for every `i` in `0..jobs` on up to `workers` threads (0: one per
/// core), each thread with its own `state` from `init`, and returns the states. Threads take the
/// next job from a shared counter, so which thread ran which job varies: callers merge the states
/// order-free, or record the job index beside each result.
pub fn for_each_job<S: Send>(
    jobs: u64,
    workers: usize,
    init: impl Fn() -> S + Sync,
    job: impl Fn(&mut S, u64) + Sync,
) -> Vec<S> {
    let threads = (worker_count(workers) as u64).min(jobs).max(1) as usize;
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = init();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= jobs {
                            return state;
                        }
                        job(&mut state, i);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("simulation worker panicked")).collect()
    })
}

/// A progress bar on standard error for `total` slots, hidden when standard error is not a
/// terminal (CI logs, pipes) or when `enabled` is false.
pub fn progress_bar(enabled: bool, total: u64, what: &str) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} slots{msg} [{bar:30}] {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if !what.is_empty() {
        bar.set_message(format!(" over {what}"));
    }
    bar
}
