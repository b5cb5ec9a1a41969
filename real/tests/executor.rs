//! Model workers: jobs run off the runtime, and a dropped job is cancelled between units of work.

use std::sync::mpsc;
use std::time::Duration;

use vortex_real::executor::{Cancelled, ModelWorker};

#[tokio::test]
async fn dropping_the_future_cancels_the_job_at_its_next_unit_of_work() {
    let worker = ModelWorker::spawn("units", 0u32);
    let (step_tx, step_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<u32>();
    let job = worker.run(move |count, cancel| {
        loop {
            cancel.check()?;
            // One unit of work: wait for the test to allow it.
            step_rx.recv().map_err(|_| Cancelled)?;
            *count += 1;
            seen_tx.send(*count).unwrap();
        }
        #[allow(unreachable_code)]
        Ok::<(), Cancelled>(())
    });
    let mut job = Box::pin(job);
    // Let two units run while the job is awaited, then drop it (a timeout or abort would).
    let waker = futures_noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(job.as_mut().poll(&mut cx).is_pending());
    step_tx.send(()).unwrap();
    step_tx.send(()).unwrap();
    assert_eq!((seen_rx.recv().unwrap(), seen_rx.recv().unwrap()), (1, 2));
    drop(job);
    // The unit in progress finishes; the job stops at its next check.
    step_tx.send(()).unwrap();
    assert_eq!(seen_rx.recv().unwrap(), 3);
    assert!(seen_rx.recv_timeout(Duration::from_secs(30)).is_err(), "the job ran on past its cancellation");
    // The overrun was measured (and logged).
    let started = std::time::Instant::now();
    while worker.last_cancel_overrun().is_zero() && started.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    assert!(!worker.last_cancel_overrun().is_zero());
    // The worker still serves the next job.
    assert_eq!(worker.run(|count, _| Ok::<u32, Cancelled>(*count)).await.unwrap(), 3);
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

use std::future::Future;
