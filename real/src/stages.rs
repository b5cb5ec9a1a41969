//! The real [`Stages`]: each stage sends one job per attempt to its model's worker, and a model
//! job's error becomes a typed [`StageError`]. Audio (Kokoro), image (Flux), video (LivePortrait)
//! and verification (CLIP) are real models; a stage whose model is not configured fails loudly,
//! so a slot never completes on made-up output.

use std::sync::Arc;
use std::time::Duration;

use vortex::stage::Backlog;
use vortex::{FailureKind, Recipe, Stage, StageError, Stages};

use crate::clip::ClipEncoder;
use crate::config::{Config, VerificationConfig};
use crate::executor::ModelWorker;
use crate::flux::FluxPipeline;
use crate::kokoro::model::SAMPLE_RATE;
use crate::kokoro::pipeline::{KokoroPipeline, PhonemeTiming, Speech};
use crate::liveportrait::pipeline::LivePortraitPipeline;
use crate::media::{Frame, Video};
use crate::models::Models;
use crate::verification::{self, ClipVerdict};

/// The two CLIP models of the ensemble.
pub struct ClipPair {
    b32: ModelWorker<ClipEncoder>,
    l14: ModelWorker<ClipEncoder>,
}

impl ClipPair {
    /// The pair, each model on its own worker.
    pub fn new(b32: ModelWorker<ClipEncoder>, l14: ModelWorker<ClipEncoder>) -> Self {
        ClipPair { b32, l14 }
    }

    /// Scores a video's keyframes against the prompt with both models (in parallel, each on its
    /// thread) and forms the verdict. Dropping the future cancels both.
    pub async fn verify(
        &self,
        slot_id: u64,
        prompt: &str,
        video: &Video,
        cfg: &VerificationConfig,
    ) -> Result<ClipVerdict, StageError> {
        let frames: Arc<Vec<Frame>> = Arc::new(verification::keyframes(video, cfg));
        if frames.is_empty() {
            return Err(StageError::of_kind(FailureKind::InvalidOutput, "clip: the video has no frames"));
        }
        if let Some(f) = frames.iter().find(|f| f.width() == 0 || f.height() == 0) {
            let message = format!("clip: the video's frames are {}×{} pixels", f.width(), f.height());
            return Err(StageError::of_kind(FailureKind::InvalidOutput, message));
        }
        let job = |prompt: String, frames: Arc<Vec<Frame>>| {
            move |enc: &mut ClipEncoder, cancel: &crate::executor::CancelToken| {
                let refs: Vec<&Frame> = frames.iter().collect();
                crate::clip::score(enc, &prompt, &refs, cancel)
            }
        };
        let (b32, l14) = tokio::join!(
            self.b32.run_for_slot(slot_id, job(prompt.to_string(), frames.clone())),
            self.l14.run_for_slot(slot_id, job(prompt.to_string(), frames)),
        );
        let (b32, l14) = (b32.map_err(|e| e.into_stage_error("clip"))?, l14.map_err(|e| e.into_stage_error("clip"))?);
        if b32.truncated || l14.truncated {
            tracing::warn!(target: "vortex::model", event = "prompt_truncated", "the prompt is longer than CLIP's context and was truncated");
        }
        Ok(verification::verdict(&b32, &l14, cfg))
    }

    /// How long the last cancelled CLIP job ran on after cancellation (the longer of the two).
    pub fn last_cancel_overrun(&self) -> Duration {
        self.b32.last_cancel_overrun().max(self.l14.last_cancel_overrun())
    }

    /// The busier of the two models' backlogs (the stage needs both).
    pub fn backlog(&self) -> Option<Backlog> {
        [self.b32.backlog(), self.l14.backlog()].into_iter().flatten().max_by_key(|b| b.expected_wait)
    }
}

/// The real `Stages`: each stage runs its model's worker; a stage whose model is not configured
/// fails loudly, so a slot never completes on made-up output.
pub struct RealStages {
    models: Models,
    verification: VerificationConfig,
}

impl RealStages {
    /// Stages over loaded models.
    pub fn new(models: Models, config: &Config) -> Self {
        RealStages { models, verification: config.verification }
    }

    /// The loaded models (the service reads their budget and cancel overruns).
    pub fn models(&self) -> &Models {
        &self.models
    }
}

/// The audio stage's output: Kokoro's speech.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Every phoneme with its samples (the video stage times lips by them).
    pub phonemes: Vec<PhonemeTiming>,
}

impl From<Speech> for Audio {
    fn from(speech: Speech) -> Self {
        Audio { samples: speech.samples, sample_rate: SAMPLE_RATE, phonemes: speech.phonemes }
    }
}

impl Stages for RealStages {
    type Audio = Audio;
    type Image = Frame;
    type Video = Video;
    type Verdict = ClipVerdict;

    async fn audio(&self, recipe: &Recipe, _: u32) -> Result<Audio, StageError> {
        let Some(kokoro) = &self.models.kokoro else {
            return Err(StageError::new("the audio stage needs models.kokoro in config.yaml"));
        };
        let (script, voice, seed) = (recipe.script.clone(), recipe.voice.clone(), recipe.seed);
        kokoro
            .run_for_slot(recipe.slot_id, move |pipeline: &mut KokoroPipeline, cancel| {
                pipeline.synthesize(&script, &voice.name, voice.speed, seed, cancel).map(Audio::from)
            })
            .await
            .map_err(|e| e.into_stage_error("audio"))
    }

    async fn image(&self, recipe: &Recipe, _: u32) -> Result<Frame, StageError> {
        let Some(flux) = &self.models.flux else {
            return Err(StageError::new("the image stage needs models.flux in config.yaml"));
        };
        let (prompt, seed) = (recipe.prompt.clone(), recipe.seed);
        flux.run_for_slot(recipe.slot_id, move |pipeline: &mut FluxPipeline, cancel| {
            pipeline.generate(&prompt, seed, cancel, |_| {})
        })
        .await
        .map_err(|e| e.into_stage_error("image"))
    }

    async fn video(&self, recipe: &Recipe, audio: &Audio, image: &Frame, _: u32) -> Result<Video, StageError> {
        let Some(liveportrait) = &self.models.liveportrait else {
            return Err(StageError::new("the video stage needs models.liveportrait in config.yaml"));
        };
        let (image, audio, expression, seed) = (image.clone(), audio.clone(), recipe.expression.clone(), recipe.seed);
        liveportrait
            .run_for_slot(recipe.slot_id, move |pipeline: &mut LivePortraitPipeline, cancel| {
                pipeline.video(&image, &audio.samples, audio.sample_rate, &audio.phonemes, &expression, seed, cancel)
            })
            .await
            .map_err(|e| e.into_stage_error("video"))
    }

    async fn clip(&self, recipe: &Recipe, video: &Video, _: u32) -> Result<ClipVerdict, StageError> {
        match &self.models.clip {
            Some(pair) => pair.verify(recipe.slot_id, &recipe.prompt, video, &self.verification).await,
            None => {
                Err(StageError::new("the clip stage needs both models.clip_b32 and models.clip_l14 in config.yaml"))
            }
        }
    }

    /// Audio: Kokoro's worker; image: Flux's; video: LivePortrait's; clip: the busier CLIP model.
    fn backlog(&self, stage: Stage) -> Option<Backlog> {
        match stage {
            Stage::Audio => self.models.kokoro.as_ref()?.backlog(),
            Stage::Image => self.models.flux.as_ref()?.backlog(),
            Stage::Clip => self.models.clip.as_ref()?.backlog(),
            Stage::Video => self.models.liveportrait.as_ref()?.backlog(),
        }
    }
}
