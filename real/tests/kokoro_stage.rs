//! The audio stage on a small random-weight Kokoro, through the production pipeline and the real scheduler: real words in, samples and
//! phoneme timings out, repeatable by seed, cancelled between chunks and when the slot gives up.

use std::time::Duration;

use vortex::{AttemptResult, Outcome, Recipe, SlotScheduler, Stage, StageError, Stages, StaticPredictor};
use vortex_real::config::Config;
use vortex_real::executor::{CancelToken, ModelError, ModelWorker};
use vortex_real::kokoro::g2p::G2p;
use vortex_real::kokoro::pipeline::KokoroPipeline;
use vortex_real::models::Models;
use vortex_real::stages::{Audio, RealStages};

mod common;

fn pipeline() -> KokoroPipeline {
    common::tiny_kokoro()
}

#[test]
fn words_become_samples_with_phoneme_timings_repeatable_by_seed() {
    let kokoro = pipeline();
    let cancel = CancelToken::default();
    let a = kokoro.synthesize("Hello there, world.", "af_heart", 1.0, 7, &cancel).unwrap();
    let per_frame = kokoro.model().samples_per_frame();
    assert_eq!(per_frame, 600, "25 ms frames at 24 kHz");
    assert!(!a.phonemes.is_empty());
    assert!(a.samples.len() % per_frame == 0 && a.samples.iter().all(|s| s.is_finite()));
    let mut end = a.phonemes[0].start;
    assert!(end >= per_frame, "the leading padding token lasts at least a frame");
    for p in &a.phonemes {
        assert_eq!(p.start, end, "phonemes follow one another");
        assert!(p.len >= per_frame && p.len % per_frame == 0);
        end = p.start + p.len;
    }
    assert!(end + per_frame <= a.samples.len(), "the trailing padding token closes the audio");
    let spoken: String = a.phonemes.iter().map(|p| p.symbol).collect();
    assert_eq!(spoken, G2p::new().chunks("Hello there, world.").unwrap()[0].phonemes);

    let again = kokoro.synthesize("Hello there, world.", "af_heart", 1.0, 7, &cancel).unwrap();
    assert_eq!(a.samples, again.samples, "same text, voice, speed and seed: same samples");
    let other = kokoro.synthesize("Hello there, world.", "af_heart", 1.0, 8, &cancel).unwrap();
    assert_eq!(a.samples.len(), other.samples.len(), "the seed moves only the source's noise");
    assert_ne!(a.samples, other.samples);
    let fast = kokoro.synthesize("Hello there, world.", "af_heart", 2.0, 7, &cancel).unwrap();
    assert!(fast.samples.len() < a.samples.len(), "speed 2 speaks faster");
}

#[test]
fn a_long_script_is_spoken_in_chunks_and_cancelled_between_them() {
    let kokoro = pipeline();
    // About 700 phonemes: two chunks at least.
    let script = "The quick brown fox jumps over the lazy dog. ".repeat(16);
    let chunks = G2p::new().chunks(&script).unwrap().len();
    assert!(chunks >= 2, "{chunks} chunk(s)");
    let cancel = CancelToken::default();
    let mut done = Vec::new();
    let out = kokoro.synthesize_with(&script, "af_heart", 2.0, 1, &cancel, |i| {
        done.push(i);
        cancel.cancel(); // as a timeout would, once the first chunk is spoken
    });
    assert!(matches!(out, Err(ModelError::Cancelled(_))), "{out:?}");
    assert_eq!(done, [0], "stopped before the second chunk");
    let whole = kokoro.synthesize(&script, "af_heart", 2.0, 1, &CancelToken::default()).unwrap();
    let symbols: String = whole.phonemes.iter().map(|p| p.symbol).collect();
    let expected: String = G2p::new().chunks(&script).unwrap().iter().map(|c| c.phonemes.as_str()).collect();
    assert_eq!(symbols, expected, "every chunk's phonemes are spoken, in order");
    let last = whole.phonemes.last().unwrap();
    assert!(last.start + last.len < whole.samples.len(), "timings stay inside the joined audio");
}

#[test]
fn bad_voices_speeds_and_texts_are_refused_before_any_work() {
    let kokoro = pipeline();
    let cancel = CancelToken::default();
    let unknown = kokoro.synthesize("Hi.", "zz_nobody", 1.0, 0, &cancel).unwrap_err().to_string();
    assert!(unknown.contains("unknown voice \"zz_nobody\"; available: af_heart"), "{unknown}");
    let slow = kokoro.synthesize("Hi.", "af_heart", 0.1, 0, &cancel).unwrap_err().to_string();
    assert!(slow.contains("speed 0.1; Kokoro takes 0.5 to 2"), "{slow}");
    assert!(kokoro.synthesize("   ", "af_heart", 1.0, 0, &cancel).is_err());
}

/// The real audio stage; doubles for the rest (image and video pass, verification passes).
struct RealAudio {
    real: RealStages,
    image_fails: bool,
}

impl Stages for RealAudio {
    type Audio = Audio;
    type Image = ();
    type Video = ();
    type Verdict = Pass;

    async fn audio(&self, recipe: &Recipe, attempt: u32) -> Result<Audio, StageError> {
        self.real.audio(recipe, attempt).await
    }

    async fn image(&self, _: &Recipe, _: u32) -> Result<(), StageError> {
        if self.image_fails {
            Err(StageError::new("the image double fails at once"))
        } else {
            Ok(())
        }
    }

    async fn video(&self, _: &Recipe, _: &Audio, _: &(), _: u32) -> Result<(), StageError> {
        Ok(())
    }

    async fn clip(&self, _: &Recipe, _: &(), _: u32) -> Result<Pass, StageError> {
        Ok(Pass)
    }
}

/// A verdict that always passes.
#[derive(Debug)]
struct Pass;

impl vortex::Verdict for Pass {
    fn passed(&self) -> bool {
        true
    }
}

fn stages(image_fails: bool) -> RealAudio {
    let config = Config::default();
    let models = Models {
        clip: None,
        flux: None,
        kokoro: Some(ModelWorker::spawn("kokoro", pipeline())),
        liveportrait: None,
        loaded: Vec::new(),
        budget: vortex_real::budget::Budget::estimate(&config, std::path::Path::new(".")).unwrap(),
        over_soft_limit: false,
    };
    RealAudio { real: RealStages::new(models, &config), image_fails }
}

fn generous() -> vortex::Orchestration {
    // Real time: the model runs on a real thread. Generous limits: these tests check wiring.
    let mut o = Config::default().orchestration;
    o.timeouts.audio = vortex::units::Seconds::new(600.0).unwrap();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_gets_real_audio_through_the_scheduler() {
    let o = generous();
    let scheduler = SlotScheduler::new(stages(false), StaticPredictor::new(o.target_durations()), &o);
    let recipe = Recipe::new(5, "Good evening.", "a studio");
    let result = scheduler.run_slot(&recipe, Duration::from_secs(3600)).await;
    let completed = result.completed().unwrap_or_else(|| panic!("{:?}", result.outcome));
    let audio = &completed.outputs.audio;
    assert_eq!(audio.sample_rate, 24_000);
    assert!(audio.samples.len() >= 3 * 600 && !audio.phonemes.is_empty());
    assert!(result.timing.stage_ms.audio.unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_audio_is_cancelled_when_the_image_fails() {
    let o = generous();
    let scheduler = SlotScheduler::new(stages(true), StaticPredictor::new(o.target_durations()), &o);
    let result = scheduler.run_slot(&Recipe::new(6, "Good evening.", "a studio"), Duration::from_secs(3600)).await;
    let Outcome::Failed(f) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(f.stage, Stage::Image);
    let audio = result.log.iter().find(|a| a.stage == Stage::Audio).unwrap();
    assert_eq!(audio.result, AttemptResult::Cancelled);
}
