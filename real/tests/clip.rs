//! The verification stage on tiny random-weight CLIP models, loaded through the production code
//! and run through the real scheduler on CPU.

mod common;

use std::path::Path;
use std::time::Duration;

use candle_core::Device;
use common::{write_config_with_clips, write_tiny_clip};
use vortex::{Outcome, Recipe, SlotScheduler, Stage, StageError, Stages, StaticPredictor};
use vortex_real::clip::{self, ClipEncoder, ModelScore};
use vortex_real::config::{ClipScore, ClipScoreGap, Config, VerificationConfig};
use vortex_real::media::{Frame, Video};
use vortex_real::models::Models;
use vortex_real::stages::RealStages;
use vortex_real::verification::{clip_score, mean_clip_score, verdict, CLIP_SCORE_W};

fn video(frames: usize) -> Video {
    // Test input standing in for the video stage's output: a gradient that moves frame by frame.
    let frames = (0..frames)
        .map(|i| Frame::from_fn(48, 40, |x, y| image::Rgb([(x * 5 + i as u32) as u8, (y * 6) as u8, 128])))
        .collect();
    Video { frames, fps: 25.0 }
}

fn loaded(dir: &Path) -> (Config, Models) {
    let path = write_config_with_clips(dir, "");
    let config = Config::load(&path).unwrap();
    let models = Models::load(&config, dir).unwrap();
    (config, models)
}

#[test]
fn tiny_clip_loads_through_the_production_path_and_embeds() {
    let dir = tempfile::tempdir().unwrap();
    let entry = write_tiny_clip(dir.path(), "m", 16);
    let enc = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).unwrap();
    let text = enc.embed_text("w1 w2 w3").unwrap();
    assert_eq!(text.embedding.dims(), [1, 16]);
    assert!(!text.truncated);
    let v = video(3);
    let frames: Vec<&Frame> = v.frames.iter().collect();
    let images = enc.embed_frames(&frames).unwrap();
    assert_eq!(images.dims(), [3, 16]);
    let norms = images.sqr().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    // Loading twice gives the same model: nothing is drawn at random on load.
    let again = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).unwrap();
    let a = again.embed_text("w1 w2 w3").unwrap().embedding.to_vec2::<f32>().unwrap();
    assert_eq!(a, text.embedding.to_vec2::<f32>().unwrap());
}

#[test]
fn long_prompts_are_truncated_to_the_context_keeping_the_end_token() {
    let dir = tempfile::tempdir().unwrap();
    let entry = write_tiny_clip(dir.path(), "m", 8);
    let enc = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).unwrap();
    let (ids, truncated) = enc.tokenize("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10").unwrap();
    assert!(truncated);
    assert_eq!(ids.len(), 8);
    assert_eq!((ids[0], ids[7]), (98, 99));
    let (ids, truncated) = enc.tokenize("w1 w2").unwrap();
    assert_eq!((ids, truncated), (vec![98, 1, 2, 99], false));
    assert!(enc.embed_text("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10").unwrap().truncated);
}

#[test]
fn missing_class_embedding_is_a_load_error_not_a_random_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let entry = write_tiny_clip(dir.path(), "m", 16);
    let tensors = candle_core::safetensors::load(&entry.weights, &Device::Cpu).unwrap();
    let kept: std::collections::HashMap<_, _> =
        tensors.into_iter().filter(|(k, _)| k != "vision_model.embeddings.class_embedding").collect();
    candle_core::safetensors::save(&kept, &entry.weights).unwrap();
    let err =
        ClipEncoder::load("clip_l14", &entry, dir.path(), &Device::Cpu, clip::L14_PUBLISHED).err().unwrap().to_string();
    assert!(
        err.starts_with("clip_l14: ")
            && err.contains("lacks 1 tensor(s)")
            && err.contains("vision_model.embeddings.class_embedding"),
        "{err}"
    );
    assert!(err.contains("openai/clip-vit-large-patch14"), "{err}");
}

fn scored(cosines: &[f64], embedding: Vec<f32>) -> ModelScore {
    ModelScore { cosines: cosines.to_vec(), mean_embedding: embedding, truncated: false }
}

fn config(b32_min: f64, l14_min: f64, outlier_gap: f64) -> VerificationConfig {
    VerificationConfig {
        b32_min: ClipScore::new(b32_min).unwrap(),
        l14_min: ClipScore::new(l14_min).unwrap(),
        outlier_gap: ClipScoreGap::new(outlier_gap).unwrap(),
        ..Default::default()
    }
}

#[test]
fn verdict_combines_clip_scores_as_configured() {
    let cfg = VerificationConfig::default();
    let (b, l) = ([0.30, 0.32], [0.36]);
    let v = verdict(&scored(&b, vec![1.0, 0.0]), &scored(&l, vec![0.0, 1.0, 0.0]), &cfg);
    assert_eq!(v.score_b32, (clip_score(0.30) + clip_score(0.32)) / 2.0);
    assert_eq!(v.score_l14, clip_score(0.36));
    assert_eq!((v.cosine_b32, v.cosine_l14), ((0.30 + 0.32) / 2.0, 0.36), "the raw cosines are kept");
    assert!((v.ensemble - (0.4 * v.score_b32 + 0.6 * v.score_l14)).abs() < 1e-12);
    assert!(v.passed && !v.outlier);
    assert_eq!(v.embedding.len(), 5);
    let norm: f32 = v.embedding.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-6);
    assert!((v.embedding[0] / v.embedding[3] - 0.4 / 0.6).abs() < 1e-6);
}

#[test]
fn clip_score_is_two_and_a_half_cosines_with_negatives_clamped_per_keyframe() {
    assert_eq!(clip_score(0.4), 2.5 * 0.4);
    assert_eq!(clip_score(1.0), CLIP_SCORE_W);
    assert_eq!((clip_score(0.0), clip_score(-0.3), clip_score(-1.0)), (0.0, 0.0, 0.0));
    // Clamped per keyframe, then averaged: a negative frame adds 0, not a penalty.
    assert_eq!(mean_clip_score(&[0.4, -0.4]), clip_score(0.4) / 2.0);
    assert_eq!(mean_clip_score(&[]), 0.0, "no keyframes score nothing");
    let v = verdict(&scored(&[-0.2, -0.1], vec![1.0]), &scored(&[-0.5], vec![1.0]), &config(0.0, 0.0, 0.3));
    assert_eq!((v.score_b32, v.score_l14), (0.0, 0.0));
    assert!(v.cosine_b32 < 0.0 && v.cosine_l14 < 0.0, "the raw means keep their sign");
    assert!(v.passed, "thresholds of 0 pass anything, as configured");
}

#[test]
fn each_model_passes_at_its_threshold_and_fails_just_below() {
    let (b, l) = (0.29, 0.25);
    let at = config(clip_score(b), clip_score(l), 2.5);
    assert!(verdict(&scored(&[b], vec![1.0]), &scored(&[l], vec![1.0]), &at).passed);
    let above_b = config(clip_score(b) + 1e-9, clip_score(l), 2.5);
    assert!(!verdict(&scored(&[b], vec![1.0]), &scored(&[l], vec![1.0]), &above_b).passed, "B/32 short");
    let above_l = config(clip_score(b), clip_score(l) + 1e-9, 2.5);
    assert!(!verdict(&scored(&[b], vec![1.0]), &scored(&[l], vec![1.0]), &above_l).passed, "L/14 short");
}

#[test]
fn an_outlier_is_flagged_when_the_clip_scores_differ_by_more_than_the_gap() {
    let (b, l) = (0.36, 0.20);
    let gap = clip_score(b) - clip_score(l);
    let at = verdict(&scored(&[b], vec![1.0]), &scored(&[l], vec![1.0]), &config(0.0, 0.0, gap));
    assert!(!at.outlier, "a difference equal to the gap is not an outlier");
    let below = verdict(&scored(&[b], vec![1.0]), &scored(&[l], vec![1.0]), &config(0.0, 0.0, gap - 1e-9));
    assert!(below.outlier);
    let swapped = verdict(&scored(&[l], vec![1.0]), &scored(&[b], vec![1.0]), &config(0.0, 0.0, gap - 1e-9));
    assert!(swapped.outlier, "either model may be the high one");
}

#[test]
fn the_default_thresholds_pass_published_matching_pairs_and_refuse_a_mismatched_one() {
    let cfg = VerificationConfig::default();
    // Published raw cosines (docs/decisions.md D16): the CLIPScore reference's matching example
    // (ViT-B/32, CLIPScore 0.8584) and mmc4's example image matched to its sentence (ViT-L/14,
    // 0.2769); the reference's mismatched caption (ViT-B/32, CLIPScore 0.5474).
    let (b32_matching, l14_matching, b32_mismatched) = (0.8584 / 2.5, 0.27694, 0.5474 / 2.5);
    let v = verdict(&scored(&[b32_matching], vec![1.0]), &scored(&[l14_matching], vec![1.0]), &cfg);
    assert!(v.passed && !v.outlier, "{v:?}");
    let v = verdict(&scored(&[b32_mismatched], vec![1.0]), &scored(&[l14_matching], vec![1.0]), &cfg);
    assert!(!v.passed, "{v:?}");
    // The design's raw-cosine reading of the same thresholds refused every matching pair.
    assert!(b32_matching < cfg.b32_min.get() && l14_matching < cfg.l14_min.get());
}

/// Test doubles for the stages not built yet, and the real verification stage.
struct WithRealClip {
    real: RealStages,
    frames: usize,
}

impl Stages for WithRealClip {
    type Audio = ();
    type Image = ();
    type Video = Video;
    type Verdict = vortex_real::verification::ClipVerdict;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }

    async fn image(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        Ok(())
    }

    async fn video(&self, _: &Recipe, _: &(), _: &(), _: u32) -> Result<Video, StageError> {
        Ok(video(self.frames))
    }

    async fn clip(
        &self,
        recipe: &Recipe,
        video: &Video,
        attempt: u32,
    ) -> Result<vortex_real::verification::ClipVerdict, StageError> {
        self.real.clip(recipe, video, attempt).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clip_stage_runs_through_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let (config, models) = loaded(dir.path());
    assert_eq!(models.loaded.len(), 2);
    let stages = WithRealClip { real: RealStages::new(models, &config), frames: 12 };
    let mut orchestration = config.orchestration.clone();
    // Real time here (the models run on real threads): a generous verification timeout, since
    // this test checks the wiring, not speed.
    orchestration.timeouts.clip = vortex::units::Seconds::new(120.0).unwrap();
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(orchestration.target_durations()), &orchestration);
    let recipe = Recipe::new(1, "w1 w2", "w3 w4 w5");
    let result = scheduler.run_slot(&recipe, Duration::from_secs(600)).await;
    let completed = result.completed().unwrap_or_else(|| panic!("{:?}", result.outcome));
    let v = &completed.outputs.verdict;
    assert!((0.0..=CLIP_SCORE_W).contains(&v.score_b32) && (0.0..=CLIP_SCORE_W).contains(&v.score_l14));
    assert!((-1.0..=1.0).contains(&v.cosine_b32) && (-1.0..=1.0).contains(&v.cosine_l14));
    assert!(v.score_b32 >= clip_score(v.cosine_b32) - 1e-12, "clamping per keyframe never lowers it");
    assert_eq!(v.embedding.len(), 32);
    // Random weights score near zero: the self-check fails, and the slot still completes.
    let cfg = &config.verification;
    assert_eq!(completed.clip_passed, v.score_b32 >= cfg.b32_min.get() && v.score_l14 >= cfg.l14_min.get());
    assert_eq!(result.attempts.clip, 1);
}

#[tokio::test]
async fn real_stages_without_their_models_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (config, models) = loaded(dir.path());
    let stages = RealStages::new(models, &config);
    let o = &config.orchestration;
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(o.target_durations()), o);
    let result = scheduler.run_slot(&Recipe::new(1, "hello", "a studio"), Duration::from_secs(45)).await;
    // Audio (not built) fails and backs off for its retry; the image (no Flux configured, no
    // retries) fails meanwhile and ends the slot. Both say why, neither makes anything up.
    let Outcome::Failed(f) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(f.stage, Stage::Image);
    let vortex::FailReason::Error(e) = &f.reason else { panic!("{f:?}") };
    assert!(e.message().contains("the image stage needs models.flux in config.yaml"), "{}", e.message());
    assert_eq!(
        result.log.iter().find(|a| a.stage == Stage::Audio).unwrap().result,
        vortex::AttemptResult::Failed(vortex::FailureKind::ModelError)
    );
}
