//! Faults in real mode, through the real scheduler: a model job that returns non-finite output,
//! one that ignores its cancellation past its stage's timeout (and the model still busy with it
//! when the next slot starts), a model that fails to load. (A job that panics:
//! `executor.rs`.)

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use candle_core::{Device, Tensor};
use vortex::events::Recorder;
use vortex::stage::Backlog;
use vortex::{FailReason, FailureKind, Outcome, Recipe, SlotScheduler, Stage, StageError, Stages, StaticPredictor};
use vortex_real::clip::{self, ClipEncoder};
use vortex_real::config::VerificationConfig;
use vortex_real::executor::{ModelError, ModelWorker};
use vortex_real::media::{Frame, Video};
use vortex_real::stages::ClipPair;
use vortex_real::verification::ClipVerdict;

#[derive(Debug)]
struct Pass;

impl vortex::Verdict for Pass {
    fn passed(&self) -> bool {
        true
    }
}

fn video() -> Video {
    let frames =
        (0..3).map(|i| Frame::from_fn(48, 40, |x, y| image::Rgb([(x * 5 + i) as u8, (y * 6) as u8, 9]))).collect();
    Video { frames, fps: 25.0 }
}

/// Audio, image and video succeed at once; verification is the real CLIP pair.
struct RealClip {
    pair: ClipPair,
    video: Video,
}

impl Stages for RealClip {
    type Audio = ();
    type Image = ();
    type Video = ();
    type Verdict = ClipVerdict;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn image(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn video(&self, _: &Recipe, _: &(), _: &(), _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn clip(&self, recipe: &Recipe, _: &(), _: u32) -> Result<ClipVerdict, StageError> {
        self.pair.verify(recipe.slot_id, &recipe.prompt, &self.video, &VerificationConfig::default()).await
    }
}

/// Rewrites a tiny CLIP's weights so that its features overflow f32 (every weight stays
/// finite, so the load-time scan passes): the final norms' biases are large and the
/// projections huge, so each feature sums to more than f32 can hold.
fn make_it_overflow(weights: &std::path::Path) {
    let mut tensors = candle_core::safetensors::load(weights, &Device::Cpu).unwrap();
    for (name, value) in [
        ("text_model.final_layer_norm.bias", 1e3f64),
        ("vision_model.post_layernorm.bias", 1e3),
        ("text_projection.weight", 1e36),
        ("visual_projection.weight", 1e36),
    ] {
        let t = &tensors[name];
        tensors.insert(name.into(), (t.ones_like().unwrap() * value).unwrap());
    }
    candle_core::safetensors::save(&tensors, weights).unwrap();
}

#[tokio::test]
async fn a_model_whose_output_is_not_finite_fails_its_stage_as_invalid_output() {
    let dir = tempfile::tempdir().unwrap();
    let b32 = common::write_tiny_clip(dir.path(), "b32", 16);
    let l14 = common::write_tiny_clip(dir.path(), "l14", 16);
    make_it_overflow(&l14.weights);
    let load = |name, entry| ClipEncoder::load(name, entry, dir.path(), &Device::Cpu, clip::L14_PUBLISHED).unwrap();
    let pair = ClipPair::new(
        ModelWorker::spawn("clip_b32", load("clip_b32", &b32)),
        ModelWorker::spawn("clip_l14", load("clip_l14", &l14)),
    );
    let policy = vortex::Orchestration::default();
    let scheduler =
        SlotScheduler::new(RealClip { pair, video: video() }, StaticPredictor::new(policy.target_durations()), &policy);
    let result = scheduler.run_slot(&Recipe::new(1, "hello", "w1 w2"), Duration::from_secs(45)).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!((failure.stage, failure.reason.kind()), (Stage::Clip, FailureKind::InvalidOutput));
    let FailReason::Error(e) = &failure.reason else { panic!("{failure:?}") };
    assert!(
        e.message().starts_with("clip: invalid output: clip_l14: the prompt's embedding holds NaN or infinite values"),
        "{}",
        e.message()
    );
    // The same check on a direct tensor: an infinity and a NaN after the first element.
    let bad = Tensor::new(&[1f32, 2.0, f32::NAN], &Device::Cpu).unwrap();
    let err = vortex_real::executor::ensure_finite(&bad, "x").unwrap_err();
    assert_eq!(err.kind(), FailureKind::InvalidOutput);
    let inf = Tensor::new(&[1f32, f32::INFINITY, 3.0], &Device::Cpu).unwrap();
    assert!(vortex_real::executor::ensure_finite(&inf, "x").is_err());
    vortex_real::executor::ensure_finite(&Tensor::new(&[1f32, -2.0], &Device::Cpu).unwrap(), "x").unwrap();
}

/// The image stage runs on a model worker whose job for slot 1 ignores its cancellation until the
/// test releases it; the other stages succeed at once.
struct Stubborn {
    image: ModelWorker<u32>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Stages for Stubborn {
    type Audio = ();
    type Image = u32;
    type Video = ();
    type Verdict = Pass;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn image(&self, recipe: &Recipe, _: u32) -> Result<u32, StageError> {
        let (slot, release) = (recipe.slot_id, self.release.clone());
        self.image
            .run_for_slot(slot, move |images, _cancel| {
                if slot == 1 {
                    // One long unit of work that never checks its token.
                    release.lock().unwrap().recv().unwrap();
                }
                *images += 1;
                Ok::<u32, ModelError>(*images)
            })
            .await
            .map_err(|e| e.into_stage_error("image"))
    }
    async fn video(&self, _: &Recipe, _: &(), _: &u32, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn clip(&self, _: &Recipe, _: &(), _: u32) -> Result<Pass, StageError> {
        Ok(Pass)
    }
    fn backlog(&self, stage: Stage) -> Option<Backlog> {
        (stage == Stage::Image).then(|| self.image.backlog()).flatten()
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_that_ignores_cancellation_ends_its_slot_by_the_timeout_and_the_next_slot_sees_the_wait() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let stages = Stubborn { image: ModelWorker::spawn("flux", 0), release: Arc::new(Mutex::new(release_rx)) };
    let policy = vortex::Orchestration::default();
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(policy.target_durations()), &policy);
    let deadline = Duration::from_secs(45);

    // Slot 1: the paused clock jumps to the image stage's 15 s timeout while the job blocks.
    let first = scheduler.run_slot(&Recipe::new(1, "hello", "a studio"), deadline).await;
    let Outcome::Failed(failure) = &first.outcome else { panic!("{:?}", first.outcome) };
    assert_eq!((failure.stage, failure.reason.kind()), (Stage::Image, FailureKind::TimedOut));
    assert!(first.meta.end <= deadline, "the slot ended by its deadline");
    // The worker thread may pick the job up only after the paused clock jumped: wait for it.
    let started = std::time::Instant::now();
    while scheduler.stages().image.backlog().is_none() && started.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    let backlog = scheduler.stages().image.backlog().expect("the model is still busy with slot 1's job");
    assert_eq!((backlog.model.as_ref(), backlog.slot_id), ("flux", Some(1)));

    // Slot 2 runs on the real clock: its job waits behind the stubborn one, which the test
    // releases once slot 2's job is queued.
    tokio::time::resume();
    assert_eq!(scheduler.stages().image.queued(), 1);
    let second = {
        let recipe = Recipe::new(2, "hello", "a studio");
        let slot = scheduler.run_slot(&recipe, deadline);
        tokio::pin!(slot);
        // Drive slot 2 until its job is queued behind the stubborn one, then release that one.
        loop {
            tokio::select! {
                result = &mut slot => break result,
                _ = tokio::task::yield_now() => {
                    if scheduler.stages().image.queued() == 2 {
                        release_tx.send(()).unwrap();
                    }
                }
            }
        }
    };
    assert!(second.completed().is_some_and(|c| c.deadline_met), "{:?}", second.outcome);
    assert_eq!(second.completed().unwrap().outputs.image, 2, "slot 2 ran after slot 1's job on the same model");
    let events = recorder.events();
    let waiting: Vec<_> = events.iter().filter(|e| e.name == "stage_waiting").collect();
    assert_eq!(waiting.len(), 1, "{events:?}");
    let w = waiting[0];
    assert_eq!(w.field("slot_id"), Some("2"));
    assert_eq!(w.field("stage"), Some("image"));
    assert_eq!(w.field("model"), Some("flux"));
    assert_eq!(w.field("reason"), Some("busy with a cancelled job of slot 1"));
    assert!(w.field("wait_ms").is_some() && w.field("busy_ms").is_some(), "{w:?}");
    assert!(scheduler.stages().image.backlog().is_none(), "idle again");
}

/// A backend whose image model reports a fixed backlog (a cancelled job expected to need 30 s
/// more) and whose stages otherwise succeed at once.
struct Backlogged;

impl Stages for Backlogged {
    type Audio = ();
    type Image = ();
    type Video = ();
    type Verdict = Pass;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn image(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn video(&self, _: &Recipe, _: &(), _: &(), _: u32) -> Result<(), StageError> {
        Ok(())
    }
    async fn clip(&self, _: &Recipe, _: &(), _: u32) -> Result<Pass, StageError> {
        Ok(Pass)
    }
    fn backlog(&self, stage: Stage) -> Option<Backlog> {
        (stage == Stage::Image).then(|| Backlog {
            model: "flux".into(),
            slot_id: Some(6),
            busy_for: Duration::from_secs(2),
            expected_wait: Duration::from_secs(30),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_slot_that_cannot_wait_for_a_busy_model_aborts_with_the_wait_in_its_prediction() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    let policy = vortex::Orchestration::default();
    let scheduler = SlotScheduler::new(Backlogged, StaticPredictor::new(policy.target_durations()), &policy);
    // 21 s of work plus the 5 s buffer fit in 45 s; with 30 s of wait they do not.
    let result = scheduler.run_slot(&Recipe::new(7, "hello", "a studio"), Duration::from_secs(45)).await;
    let Outcome::Aborted(abort) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(abort.predicted_finish, Duration::from_secs(51));
    assert_eq!(recorder.names(), ["slot_started", "stage_waiting", "slot_aborted"]);
    let w = &recorder.events()[1];
    assert_eq!(w.field("reason"), Some("busy with a cancelled job of slot 6"));
    assert_eq!(w.field("wait_ms"), Some("30000.000"));
    // Without predictive aborts the wait is still logged.
    let scheduler = scheduler.with_predictive_abort(false);
    let result = scheduler.run_slot(&Recipe::new(8, "hello", "a studio"), Duration::from_secs(45)).await;
    assert!(result.completed().is_some());
    assert!(recorder.names().iter().filter(|n| *n == "stage_waiting").count() == 2);
}

#[test]
fn a_model_that_fails_to_load_is_a_start_up_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config_with_clips(dir.path(), "");
    let config = vortex_real::config::Config::load(&path).unwrap();
    let weights = dir.path().join("clip_l14/model.safetensors");
    // Damaged: cut in half.
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = vortex_real::models::Models::load(&config, dir.path()).err().expect("refused").to_string();
    assert!(err.starts_with("clip_l14: ") && err.contains("clip_l14/model.safetensors"), "{err}");
    assert!(err.contains("is not a safetensors file"), "{err}");
}

#[tokio::test]
async fn a_stage_whose_model_is_not_configured_fails_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config_with_clips(dir.path(), "");
    let config = vortex_real::config::Config::load(&path).unwrap();
    let models = vortex_real::models::Models::load(&config, dir.path()).unwrap();
    let stages = vortex_real::stages::RealStages::new(models, &config);
    let err = stages.image(&Recipe::new(1, "hello", "a studio"), 0).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::ModelError);
    assert!(err.message().contains("needs models.flux in config.yaml"), "{}", err.message());
    assert!(stages.backlog(Stage::Image).is_none() && stages.backlog(Stage::Clip).is_none());
}
