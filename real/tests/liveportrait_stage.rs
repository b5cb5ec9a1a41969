//! The video stage on a small LivePortrait (every network at reduced widths, on counter weights):
//! the audio-driven pipeline (louder audio opens the mouth more, measured on the driving
//! keypoints; the frame count is the audio's duration × 24; a seed repeats the clip), a
//! cancellation between batches, and a real-mode slot with all four stages through the real
//! scheduler (audio ∥ image → video → clip). Each network's parity at full size is checked in
//! its own test file.

use std::collections::HashMap;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vortex::recipe::Expression;
use vortex::{AttemptResult, FailureKind, Outcome, Recipe, SlotScheduler, Stage, Stages, StaticPredictor};
use vortex_real::config::Config;
use vortex_real::executor::{CancelToken, ModelError, ModelWorker};
use vortex_real::liveportrait::driver::{drive, FrameMotion};
use vortex_real::liveportrait::pipeline::{self, LivePortraitPipeline, Source};
use vortex_real::liveportrait::stitching::{self, EYE_PART, LIP_PART, STITCHING_PART};
use vortex_real::liveportrait::{appearance, motion, spade, warping};
use vortex_real::media::Frame;
use vortex_real::models::Models;
use vortex_real::stages::{Audio, RealStages};

mod common;

use common::counter::CounterWeights;

const SR: u32 = 24_000;

/// LivePortrait's shape at small widths: 64 × 64 crops, a 4 × 8 × 16 × 16 volume, 128 × 128
/// frames; 21 keypoints and the full-size stitching MLPs, as published.
fn small() -> pipeline::Config {
    pipeline::Config {
        appearance: appearance::Config {
            image_channel: 3,
            block_expansion: 8,
            num_down_blocks: 2,
            max_features: 32,
            reshape_channel: 4,
            reshape_depth: 8,
            num_resblocks: 1,
        },
        motion: motion::Config { depths: vec![1, 1, 1, 1], dims: vec![8, 8, 8, 16], ..motion::Config::liveportrait() },
        warping: warping::Config {
            block_expansion: 8,
            max_features: 32,
            reshape_channel: 4,
            dense_motion_params: warping::DenseMotionParams {
                block_expansion: 8,
                max_features: 16,
                num_blocks: 2,
                reshape_depth: 8,
                compress: 2,
            },
            ..warping::Config::liveportrait()
        },
        spade: spade::Config {
            upscale: 2,
            block_expansion: 8,
            max_features: 32,
            num_down_blocks: 2,
            hidden: 8,
            out_channels: 8,
        },
        stitching: stitching::Config::liveportrait(),
        input_size: 64,
    }
}

fn counter(seed: u64) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(CounterWeights { seed }), DType::F32, Device::Cpu)
}

/// The small pipeline on counter weights, `batch` frames per batch.
fn small_pipeline(batch: usize) -> LivePortraitPipeline {
    LivePortraitPipeline::new(small(), [counter(1), counter(2), counter(3), counter(4), counter(5)], batch).unwrap()
}

/// Keypoints whose vertical distance the constructed lip network opens.
const LOWER_LIP: usize = 19;
const UPPER_LIP: usize = 20;

/// The stitching file with networks whose effect is known: stitching and eyes output zero, and
/// the lip network moves keypoint 19 down and 20 up by the target lip ratio (its input 64), as
/// the published network opens the mouth for a larger ratio.
fn known_stitching() -> VarBuilder<'static> {
    let cfg = stitching::Config::liveportrait();
    let mut tensors = HashMap::new();
    for (part, mlp) in [(STITCHING_PART, &cfg.stitching), (LIP_PART, &cfg.lip), (EYE_PART, &cfg.eye)] {
        let sizes: Vec<usize> =
            std::iter::once(mlp.input_size).chain(mlp.hidden_sizes.iter().copied()).chain([mlp.output_size]).collect();
        for (layer, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let mut w = vec![0f32; fan_out * fan_in];
            if part == LIP_PART {
                if layer == 0 {
                    w[64] = 1.0; // hidden 0 = relu(target ratio)
                } else if layer + 2 < sizes.len() {
                    w[0] = 1.0; // carried through
                } else {
                    w[(3 * LOWER_LIP + 1) * fan_in] = 0.5;
                    w[(3 * UPPER_LIP + 1) * fan_in] = -0.5;
                }
            }
            let name = format!("{part}.mlp.{}", 2 * layer);
            tensors.insert(format!("{name}.weight"), Tensor::from_vec(w, (fan_out, fan_in), &Device::Cpu).unwrap());
            tensors.insert(format!("{name}.bias"), Tensor::zeros(fan_out, DType::F32, &Device::Cpu).unwrap());
        }
    }
    VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
}

/// A portrait-shaped test image: smooth colour ramps (the weights are random; any image does).
fn actor() -> Frame {
    Frame::from_fn(96, 128, |x, y| image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8]))
}

/// A vowel-like tone at `amplitude` for `seconds`.
fn tone(amplitude: f32, seconds: f32) -> Vec<f32> {
    (0..(seconds * SR as f32) as usize).map(|i| amplitude * (i as f32 * 0.047).sin()).collect()
}

fn neutral() -> Expression {
    Expression::default()
}

/// The mean vertical gap between the two lip keypoints over the frames, minus the same with
/// the mouth shut, so that only the lips' share of the motion counts.
fn mouth_opening(p: &LivePortraitPipeline, source: &Source, motion: &[FrameMotion]) -> f32 {
    let shut: Vec<FrameMotion> = motion.iter().map(|m| FrameMotion { lip_open: 0.0, ..*m }).collect();
    let gap = |frames: &[FrameMotion]| -> Vec<f32> {
        let kp = p.driving_keypoints(source, frames).unwrap();
        let y = kp.narrow(2, 1, 1).unwrap().squeeze(2).unwrap().to_vec2::<f32>().unwrap();
        y.iter().map(|row| row[LOWER_LIP] - row[UPPER_LIP]).collect()
    };
    let (open, closed) = (gap(motion), gap(&shut));
    open.iter().zip(&closed).map(|(o, c)| o - c).sum::<f32>() / motion.len() as f32
}

#[test]
fn louder_audio_opens_the_mouth_more_on_the_keypoints_and_silence_keeps_it_closed() {
    let p = LivePortraitPipeline::new(small(), [counter(1), counter(2), counter(3), counter(4), known_stitching()], 4)
        .unwrap();
    let source = p.source(&p.crop(&actor()).unwrap()).unwrap();
    let mut previous = -1.0;
    for amplitude in [0.0, 0.01, 0.03, 0.3] {
        let motion = drive(&tone(amplitude, 1.0), SR, &[], &neutral(), 5).unwrap();
        let opening = mouth_opening(&p, &source, &motion[4..]);
        eprintln!("amplitude {amplitude}: the lips' keypoints {opening:.4} further apart");
        if amplitude == 0.0 {
            assert_eq!(opening, 0.0, "silence moved the lips");
        }
        assert!(opening > previous || amplitude == 0.0, "amplitude {amplitude}: {opening} not above {previous}");
        previous = opening;
    }
    // Each lip keypoint moves by 0.5 × the target ratio (0.8 when fully open), in opposite
    // directions, through the stitching network's zero delta.
    assert!((previous - 2.0 * 0.5 * 0.8).abs() < 1e-4, "a loud tone opens the lips by {previous}");
}

#[test]
fn frames_follow_the_audio_and_a_seed_repeats_the_clip() {
    let p = small_pipeline(4);
    let cancel = CancelToken::default();
    let audio = tone(0.2, 0.5);
    let video = p.video(&actor(), &audio, SR, &[], &neutral(), 9, &cancel).unwrap();
    assert_eq!(video.frames.len(), 12, "0.5 s at 24 fps");
    assert_eq!(video.fps, 24.0);
    assert!(video.frames.iter().all(|f| f.dimensions() == (128, 128)));
    let again = p.video(&actor(), &audio, SR, &[], &neutral(), 9, &cancel).unwrap();
    assert!(video.frames == again.frames, "the same seed gave other frames");
    // Another seed sways and blinks differently: the driving keypoints differ.
    let source = p.source(&p.crop(&actor()).unwrap()).unwrap();
    let kp = |seed| {
        let motion = drive(&audio, SR, &[], &neutral(), seed).unwrap();
        p.driving_keypoints(&source, &motion).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(kp(9), kp(9));
    assert_ne!(kp(9), kp(10));
    // Refusals before any network runs.
    let err = p.video(&actor(), &[], SR, &[], &neutral(), 0, &cancel).unwrap_err();
    assert!(err.to_string().contains("the audio is empty"), "{err}");
    let calm = Expression { preset: "sleepy".into(), intensity: 0.5 };
    let err = p.video(&actor(), &audio, SR, &[], &calm, 0, &cancel).unwrap_err();
    assert!(err.to_string().contains("expression.preset \"sleepy\""), "{err}");
    let err = p.video(&Frame::new(8, 8), &audio, SR, &[], &neutral(), 0, &cancel).unwrap_err();
    assert!(err.to_string().contains("8×8 pixels"), "{err}");
}

#[test]
fn a_cancellation_stops_between_batches() {
    let p = small_pipeline(3);
    let source = p.source(&p.crop(&actor()).unwrap()).unwrap();
    let motion = drive(&tone(0.2, 1.0), SR, &[], &neutral(), 1).unwrap();
    let cancel = CancelToken::default();
    let mut batches = Vec::new();
    let result = p.animate(&source, &motion, &cancel, |done| {
        batches.push(done);
        cancel.cancel();
    });
    assert!(matches!(result, Err(ModelError::Cancelled(_))), "{result:?}");
    assert_eq!(batches, [3], "one batch of 3 frames ran, then the token stopped it");
}

/// Real time: the models run on real threads. Generous limits for audio, image and clip;
/// `video_s` for the video stage.
fn limits(config: &Config, video_s: f64) -> vortex::Orchestration {
    let mut o = config.orchestration.clone();
    let s = |v| vortex::units::Seconds::new(v).unwrap();
    (o.timeouts.audio, o.timeouts.image, o.timeouts.video, o.timeouts.clip) =
        (s(600.0), s(600.0), s(video_s), s(600.0));
    o
}

fn all_four(dir: &std::path::Path) -> (Config, RealStages) {
    let path = common::write_config(dir, "", true);
    let config = Config::load(&path).unwrap();
    let mut models = Models::load(&config, dir).unwrap();
    models.kokoro = Some(ModelWorker::spawn("kokoro", common::tiny_kokoro()));
    models.liveportrait = Some(ModelWorker::spawn("liveportrait", small_pipeline(4)));
    let stages = RealStages::new(models, &config);
    (config, stages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_mode_slot_runs_all_four_stages() {
    let dir = tempfile::tempdir().unwrap();
    let (config, stages) = all_four(dir.path());
    let o = limits(&config, 600.0);
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(o.target_durations()), &o);
    let recipe = Recipe::new(7, "Hi.", "w1 w2");
    let result = scheduler.run_slot(&recipe, Duration::from_secs(3600)).await;
    let completed = result.completed().unwrap_or_else(|| panic!("{:?}", result.outcome));
    let (audio, video) = (&completed.outputs.audio, &completed.outputs.video);
    let seconds = audio.samples.len() as f64 / f64::from(audio.sample_rate);
    assert_eq!(video.frames.len(), (seconds * 24.0).ceil() as usize, "{seconds} s of audio");
    assert_eq!(video.frames[0].dimensions(), (128, 128));
    for stage in [Stage::Audio, Stage::Image, Stage::Video, Stage::Clip] {
        let attempt = result.log.iter().find(|a| a.stage == stage).unwrap();
        assert_eq!(attempt.result, AttemptResult::Ok, "{stage:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_stage_that_overruns_is_cancelled_and_the_worker_serves_the_next_job() {
    let dir = tempfile::tempdir().unwrap();
    let (config, stages) = all_four(dir.path());
    // 10 ms: every video attempt times out, its job cancelled between batches.
    let o = limits(&config, 0.01);
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(o.target_durations()), &o);
    let result = scheduler.run_slot(&Recipe::new(8, "Hi.", "w1"), Duration::from_secs(3600)).await;
    let Outcome::Failed(f) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(f.stage, Stage::Video);
    let video: Vec<_> = result.log.iter().filter(|a| a.stage == Stage::Video).collect();
    assert!(!video.is_empty());
    assert!(video.iter().all(|a| a.result == AttemptResult::Failed(FailureKind::TimedOut)), "{video:?}");
    assert!(result.log.iter().all(|a| a.stage == Stage::Video || a.result == AttemptResult::Ok));
    // The cancelled jobs stopped between batches: the worker takes the next job and finishes it.
    let audio = Audio { samples: tone(0.2, 0.25), sample_rate: SR, phonemes: Vec::new() };
    let video = scheduler.stages().video(&Recipe::new(9, "Hi.", "w1"), &audio, &actor(), 1).await.unwrap();
    assert_eq!(video.frames.len(), 6);
}
