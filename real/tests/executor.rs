//! Model workers: jobs run off the runtime, and a dropped job is cancelled between units of work.

use std::sync::mpsc;
use std::time::Duration;

use vortex_real::executor::{Cancelled, ModelError, ModelWorker, QUEUE_CAPACITY};

#[tokio::test]
async fn dropping_the_future_cancels_the_job_at_its_next_unit_of_work() {
    let worker = ModelWorker::spawn("units", 0u32);
    let (step_tx, step_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<u32>();
    let job = worker.run(move |count, cancel| {
        loop {
            cancel.check()?;
            // One unit of work: announce it, then wait for the test to let it finish.
            started_tx.send(()).map_err(|_| Cancelled)?;
            step_rx.recv().map_err(|_| Cancelled)?;
            *count += 1;
            seen_tx.send(*count).unwrap();
        }
        #[allow(unreachable_code)]
        Ok::<(), ModelError>(())
    });
    let mut job = Box::pin(job);
    // Let two units run while the job is awaited, then drop it (a timeout or abort would)
    // while the third unit is in progress: it has passed its check and waits for its step.
    let waker = futures_noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(job.as_mut().poll(&mut cx).is_pending());
    for unit in 1..=2 {
        started_rx.recv().unwrap();
        step_tx.send(()).unwrap();
        assert_eq!(seen_rx.recv().unwrap(), unit);
    }
    started_rx.recv().unwrap();
    drop(job);
    // The unit in progress finishes; the job stops at its next check.
    step_tx.send(()).unwrap();
    assert_eq!(seen_rx.recv().unwrap(), 3);
    assert!(seen_rx.recv_timeout(Duration::from_secs(30)).is_err(), "the job ran on past its cancellation");
    assert!(started_rx.try_recv().is_err(), "a fourth unit started after the cancellation");
    // The overrun was measured (and logged).
    let started = std::time::Instant::now();
    while worker.last_cancel_overrun().is_zero() && started.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    assert!(!worker.last_cancel_overrun().is_zero());
    // The worker still serves the next job.
    assert_eq!(worker.run(|count, _| Ok::<u32, ModelError>(*count)).await.unwrap(), 3);
}

#[tokio::test]
async fn a_job_that_panics_fails_alone_and_the_worker_serves_the_next_one() {
    let worker = ModelWorker::spawn("fragile", 1u32);
    let err = worker.run(|_, _| -> Result<u32, ModelError> { panic!("index out of bounds in layer 3") }).await;
    let Err(ModelError::Panicked(message)) = err else { panic!("expected a contained panic, got {err:?}") };
    assert!(message.contains("index out of bounds in layer 3"), "{message}");
    let stage_error = ModelError::Panicked(message).into_stage_error("video");
    assert_eq!(stage_error.kind(), vortex::FailureKind::ModelError);
    assert!(stage_error.message().starts_with("video: the model panicked: index out of bounds"));
    assert_eq!(worker.run(|n, _| Ok(*n + 1)).await.unwrap(), 2, "the worker survived");
    assert_eq!(worker.queued(), 0);
}

#[tokio::test]
async fn the_job_queue_is_bounded() {
    let worker = ModelWorker::spawn("busy", ());
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let waker = futures_noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    // Fill the queue with jobs that wait until released.
    let mut held = Vec::new();
    for _ in 0..QUEUE_CAPACITY {
        let rx = release_rx.clone();
        let mut job = Box::pin(worker.run(move |_, _| {
            rx.lock().unwrap().recv().unwrap();
            Ok(())
        }));
        assert!(job.as_mut().poll(&mut cx).is_pending());
        held.push(job);
    }
    assert_eq!(worker.queued(), QUEUE_CAPACITY);
    let refused = worker.run(|_, _| Ok(())).await;
    assert!(matches!(refused, Err(ModelError::Busy(n)) if n == QUEUE_CAPACITY), "{refused:?}");
    for _ in 0..QUEUE_CAPACITY {
        release_tx.send(()).unwrap();
    }
    for job in held {
        job.await.unwrap();
    }
    assert_eq!(worker.queued(), 0);
    worker.run(|_, _| Ok(())).await.expect("room again once the queue drained");
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

use std::future::Future;

/// A backend whose image stage runs on a model worker and panics on slot 1.
struct PanicsOnSlotOne {
    image: ModelWorker<u64>,
}

#[derive(Debug)]
struct Pass;

impl vortex::Verdict for Pass {
    fn passed(&self) -> bool {
        true
    }
}

impl vortex::Stages for PanicsOnSlotOne {
    type Audio = ();
    type Image = u64;
    type Video = ();
    type Verdict = Pass;

    async fn audio(&self, _: &vortex::Recipe, _: u32) -> Result<(), vortex::StageError> {
        Ok(())
    }

    async fn image(&self, recipe: &vortex::Recipe, _: u32) -> Result<u64, vortex::StageError> {
        let slot = recipe.slot_id;
        self.image
            .run(move |images_made, _| {
                assert_ne!(slot, 1, "a bug that only slot 1 hits");
                *images_made += 1;
                Ok(*images_made)
            })
            .await
            .map_err(|e| e.into_stage_error("image"))
    }

    async fn video(&self, _: &vortex::Recipe, _: &(), _: &u64, _: u32) -> Result<(), vortex::StageError> {
        Ok(())
    }

    async fn clip(&self, _: &vortex::Recipe, _: &(), _: u32) -> Result<Pass, vortex::StageError> {
        Ok(Pass)
    }
}

#[tokio::test]
async fn a_panicking_model_job_fails_its_stage_and_the_next_slot_runs() {
    let policy = vortex::Orchestration::default();
    let stages = PanicsOnSlotOne { image: ModelWorker::spawn("image", 0) };
    let predictor = vortex::StaticPredictor::new(policy.target_durations());
    let scheduler = vortex::SlotScheduler::new(stages, predictor, &policy);
    let deadline = Duration::from_secs(45);
    let first = scheduler.run_slot(&vortex::Recipe::new(1, "hello", "a studio"), deadline).await;
    let vortex::Outcome::Failed(failure) = &first.outcome else { panic!("{:?}", first.outcome) };
    assert_eq!((failure.stage, failure.reason.kind()), (vortex::Stage::Image, vortex::FailureKind::ModelError));
    let vortex::FailReason::Error(e) = &failure.reason else { panic!("{failure:?}") };
    assert!(e.message().contains("image: the model panicked: assertion `left != right` failed"), "{}", e.message());
    let second = scheduler.run_slot(&vortex::Recipe::new(2, "hello", "a studio"), deadline).await;
    assert!(second.completed().is_some_and(|c| c.deadline_met), "{:?}", second.outcome);
    assert_eq!(second.completed().unwrap().outputs.image, 1, "the same model served slot 2");
}
