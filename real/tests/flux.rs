//! The image stage on a tiny random-weight Flux, loaded through the production code, and a whole
//! slot through the real scheduler with the real image and verification stages.

mod common;

use std::time::Duration;

use candle_core::Device;
use vortex::{AttemptResult, Outcome, Recipe, SlotScheduler, Stage, StageError, Stages, StaticPredictor};
use vortex_real::config::Config;
use vortex_real::executor::ModelError;
use vortex_real::executor::{CancelToken, Cancelled};
use vortex_real::flux::FluxPipeline;
use vortex_real::media::{Frame, Video};
use vortex_real::models::Models;
use vortex_real::stages::RealStages;
use vortex_real::verification::ClipVerdict;

#[test]
fn flux_generates_the_same_image_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_flux(dir.path());
    let mut flux = FluxPipeline::load(&entry, dir.path(), &Device::Cpu).unwrap();
    let mut steps = Vec::new();
    let a = flux.generate("w1 w2 w3", 7, &CancelToken::default(), |k| steps.push(k)).unwrap();
    assert_eq!(steps, [0, 1, 2, 3], "the Schnell schedule has 4 steps");
    assert_eq!(a.dimensions(), (64, 64));
    let b = flux.generate("w1 w2 w3", 7, &CancelToken::default(), |_| {}).unwrap();
    assert_eq!(a.as_raw(), b.as_raw(), "same seed, same device: same image");
    let c = flux.generate("w1 w2 w3", 8, &CancelToken::default(), |_| {}).unwrap();
    assert_ne!(a.as_raw(), c.as_raw(), "another seed draws other noise");
    let spread =
        a.as_raw().iter().map(|&v| v as i32).max().unwrap() - a.as_raw().iter().map(|&v| v as i32).min().unwrap();
    assert!(spread > 0, "a decoded image is not one flat colour");
}

#[test]
fn a_quantized_gguf_transformer_generates_through_the_same_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut entry = common::write_tiny_flux(dir.path());
    let gguf = dir.path().join("flux/transformer-q4_0.gguf");
    common::quantize_to_gguf(&entry.transformer, &gguf, candle_core::quantized::GgmlDType::Q4_0);
    let full = FluxPipeline::load(&entry, dir.path(), &Device::Cpu)
        .unwrap()
        .generate("w1 w2", 3, &CancelToken::default(), |_| {})
        .unwrap();
    entry.transformer = gguf;
    let mut flux = FluxPipeline::load(&entry, dir.path(), &Device::Cpu).unwrap();
    let a = flux.generate("w1 w2", 3, &CancelToken::default(), |_| {}).unwrap();
    let b = flux.generate("w1 w2", 3, &CancelToken::default(), |_| {}).unwrap();
    assert_eq!(a.dimensions(), (64, 64));
    assert_eq!(a.as_raw(), b.as_raw());
    assert_ne!(a.as_raw(), full.as_raw(), "Q4_0 weights change the image a little");
    let budget = vortex_real::budget::Budget::estimate(&config_with(&entry), dir.path()).unwrap();
    let flux_bytes = budget.models.iter().find(|m| m.name == "flux").unwrap().resident_bytes;
    let f32_budget = vortex_real::budget::Budget::estimate(
        &config_with(&common::write_tiny_flux(&dir.path().join("f32"))),
        dir.path(),
    )
    .unwrap();
    assert!(flux_bytes < f32_budget.models[0].resident_bytes, "the GGUF transformer is counted at its quantized size");
}

fn config_with(flux: &vortex_real::config::FluxModelConfig) -> Config {
    let mut config = Config::default();
    config.models.flux = Some(flux.clone());
    config
}

#[test]
fn cancellation_is_checked_between_diffusion_steps() {
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_flux(dir.path());
    let mut flux = FluxPipeline::load(&entry, dir.path(), &Device::Cpu).unwrap();
    let cancel = CancelToken::default();
    let mut steps = 0;
    let out = flux.generate("w1", 1, &cancel, |_| {
        steps += 1;
        cancel.cancel(); // as a timeout would, during the first step
    });
    assert!(matches!(out, Err(ModelError::Cancelled(Cancelled))), "{out:?}");
    assert_eq!(steps, 1, "the step in progress finishes, no further one starts");
}

#[test]
fn a_flux_whose_parts_do_not_fit_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_flux(dir.path());
    let path = entry.transformer_config.clone().unwrap();
    std::fs::write(&path, std::fs::read_to_string(&path).unwrap().replace("\"vec_in_dim\": 32", "\"vec_in_dim\": 48"))
        .unwrap();
    let err = FluxPipeline::load(&entry, dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.starts_with("flux: ") && err.contains("FLUX.1-schnell is published"), "{err}");
}

/// Real image and verification stages; doubles for audio (not configured here) and video. The
/// video double animates nothing: it repeats the real image, which is all verification needs.
struct RealImageAndClip {
    real: RealStages,
}

impl Stages for RealImageAndClip {
    type Audio = ();
    type Image = Frame;
    type Video = Video;
    type Verdict = ClipVerdict;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }

    async fn image(&self, recipe: &Recipe, attempt: u32) -> Result<Frame, StageError> {
        self.real.image(recipe, attempt).await
    }

    async fn video(&self, _: &Recipe, _: &(), image: &Frame, _: u32) -> Result<Video, StageError> {
        Ok(Video { frames: vec![image.clone(); 10], fps: 25.0 })
    }

    async fn clip(&self, recipe: &Recipe, video: &Video, attempt: u32) -> Result<ClipVerdict, StageError> {
        self.real.clip(recipe, video, attempt).await
    }
}

fn generous(config: &Config) -> vortex::Orchestration {
    // Real time: the models run on real threads. Generous limits, since these tests check the
    // wiring, not speed.
    let mut o = config.orchestration.clone();
    o.timeouts.image = vortex::units::Seconds::new(600.0).unwrap();
    o.timeouts.clip = vortex::units::Seconds::new(600.0).unwrap();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_runs_real_flux_and_real_clip_through_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(dir.path(), "", true);
    let config = Config::load(&path).unwrap();
    let models = Models::load(&config, dir.path()).unwrap();
    assert_eq!(models.loaded.iter().map(|m| m.name).collect::<Vec<_>>(), ["clip_b32", "clip_l14", "flux"]);
    let o = generous(&config);
    let stages = RealImageAndClip { real: RealStages::new(models, &config) };
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(o.target_durations()), &o);
    let result = scheduler.run_slot(&Recipe::new(3, "w1 w2", "w3 w4"), Duration::from_secs(3600)).await;
    let completed = result.completed().unwrap_or_else(|| panic!("{:?}", result.outcome));
    assert_eq!(completed.outputs.image.dimensions(), (64, 64));
    assert_eq!(completed.outputs.verdict.embedding.len(), 32);
    assert!(result.timing.stage_ms.image.unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_image_is_cancelled_when_audio_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_config(dir.path(), "", true);
    // Audio fails after its retry's 0.5 s backoff (no Kokoro); the image must still be running
    // then, so it is given work for several seconds (50 steps at 512 px), whatever the machine.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("image_px: 64") && text.contains("steps: 4"));
    std::fs::write(&path, text.replace("image_px: 64", "image_px: 512").replace("steps: 4", "steps: 50")).unwrap();
    let config = Config::load(&path).unwrap();
    let models = Models::load(&config, dir.path()).unwrap();
    let o = generous(&config);
    let scheduler =
        SlotScheduler::new(RealStages::new(models, &config), StaticPredictor::new(o.target_durations()), &o);
    let result = scheduler.run_slot(&Recipe::new(4, "w1", "w2"), Duration::from_secs(3600)).await;
    let Outcome::Failed(f) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(f.stage, Stage::Audio, "no Kokoro is configured, so audio fails first");
    let image = result.log.iter().find(|a| a.stage == Stage::Image).unwrap();
    assert_eq!(image.result, AttemptResult::Cancelled);
}
