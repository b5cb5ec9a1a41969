//! # The director: one slot end to end
//!
//! A [`Director`] holds the loaded models (each on its worker thread) and the scheduler the
//! simulator tests, and generates slots: [`Director::check`] refuses a recipe that cannot be
//! generated before any model runs, [`Director::run_slot`] runs one through audio ∥ image →
//! video → clip under its deadline and returns a [`SlotRun`] (outcome, timings, outputs, the
//! slot's own events), and [`files::write_run`] writes a run into a folder, whole or not at all.
//! `vortex run` is these three calls; the service runs the same for every queued slot.
//!
//! Slot events are captured per slot by [`capture`]: call [`capture::init_logs`] once at
//! start-up.

pub mod capture;
pub mod files;

use std::path::Path;
use std::time::{Duration, SystemTime};

use vortex::events::RecordedEvent;
use vortex::recipe::RecipeError;
use vortex::{ConfiguredPredictor, Recipe, SlotReport, SlotScheduler};

use crate::config::Config;
use crate::models::Models;
use crate::stages::RealStages;
use crate::LoadError;

/// A slot's deadline when its schedule gives none: the slot's length.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(45);

/// The most voice names an unknown-voice error lists.
const VOICES_SHOWN: usize = 12;

/// The loaded models and the scheduler: generates one slot at a time, or several if the caller
/// runs them concurrently (each model still does one job at a time).
pub struct Director {
    scheduler: SlotScheduler<RealStages, ConfiguredPredictor>,
    /// The loaded Kokoro voices, sorted; `None` without Kokoro (the audio stage then fails).
    voices: Option<Vec<String>>,
    /// CLIP's tokenizers and contexts, to refuse prompts CLIP would cut.
    prompt_limits: Vec<PromptLimit>,
}

/// Why a director could not start or a slot could not run.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// A model could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The recipe cannot be generated.
    #[error("recipe: {0}")]
    Recipe(#[from] RecipeError),
    /// The slot's events cannot be captured.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
}

/// One CLIP model's tokenizer and text context.
struct PromptLimit {
    model: &'static str,
    tokenizer: tokenizers::Tokenizer,
    end_of_text: u32,
    context: usize,
}

impl Director {
    /// Loads every configured model ([`Models::load`]; `base_dir` is the config file's folder)
    /// and starts the director. Loading blocks the calling thread for the models' load time
    /// (seconds for the published models): call it at start-up, before serving.
    pub async fn load(config: &Config, base_dir: &Path) -> Result<Director, LoadError> {
        let models = Models::load(config, base_dir)?;
        Director::new(config, base_dir, models).await
    }

    /// A director over models already loaded (or built, in tests). Asks Kokoro's worker for its
    /// voices and reads the CLIP tokenizers named in `config`, for [`Director::check`].
    pub async fn new(config: &Config, base_dir: &Path, models: Models) -> Result<Director, LoadError> {
        let voices = match &models.kokoro {
            Some(kokoro) => Some(
                kokoro
                    .run(|pipeline, _| Ok(pipeline.voices().names().map(str::to_string).collect::<Vec<_>>()))
                    .await
                    .map_err(|e| {
                    let path = config.models.kokoro.as_ref().map(|k| base_dir.join(&k.voices)).unwrap_or_default();
                    let reason = format!("listing the loaded voices failed: {e}");
                    LoadError::file("kokoro", &path, reason, crate::kokoro::pipeline::PUBLISHED)
                })?,
            ),
            None => None,
        };
        let mut prompt_limits = Vec::new();
        for (model, entry, published) in crate::budget::clip_entries(config) {
            let arch = crate::clip::HfClipConfig::load(model, &base_dir.join(&entry.config), published)?;
            let path = base_dir.join(&entry.tokenizer);
            let tokenizer = crate::loading::tokenizer(model, &path, published)?;
            let end = crate::clip::END_OF_TEXT;
            let end_of_text = tokenizer
                .token_to_id(end)
                .ok_or_else(|| LoadError::file(model, &path, format!("has no {end} token"), published))?;
            let context = arch.to_model_config().max_positions;
            prompt_limits.push(PromptLimit { model, tokenizer, end_of_text, context });
        }
        let predictor = ConfiguredPredictor::from_config(&config.orchestration);
        let scheduler = SlotScheduler::new(RealStages::new(models, config), predictor, &config.orchestration);
        Ok(Director { scheduler, voices, prompt_limits })
    }

    /// The scheduler (its stages expose the models' backlogs).
    pub fn scheduler(&self) -> &SlotScheduler<RealStages, ConfiguredPredictor> {
        &self.scheduler
    }

    /// Checks a recipe before any model runs: [`Recipe::validate`], then what only the loaded
    /// models know: the voice is one of Kokoro's, and the prompt fits every CLIP model's
    /// context (77 tokens for the published models, their start and end markers included).
    pub fn check(&self, recipe: &Recipe) -> Result<(), RecipeError> {
        recipe.validate()?;
        if let Some(voices) = &self.voices {
            let name = &recipe.voice.name;
            if !voices.contains(name) {
                let mut shown: Vec<&str> = voices.iter().take(VOICES_SHOWN).map(String::as_str).collect();
                if voices.len() > VOICES_SHOWN {
                    shown.push("...");
                }
                return Err(RecipeError {
                    key: "voice.name",
                    message: format!(
                        "{}: not a loaded voice; the {} loaded are {}",
                        vortex::yaml::quoted(name),
                        voices.len(),
                        shown.join(", ")
                    ),
                });
            }
        }
        for limit in &self.prompt_limits {
            let tokens = crate::clip::tokenize(&limit.tokenizer, limit.end_of_text, usize::MAX, &recipe.prompt)
                .map_err(|e| RecipeError {
                    key: "prompt",
                    message: format!("{}'s tokenizer failed: {e}", limit.model),
                })?
                .0
                .len();
            if tokens > limit.context {
                return Err(RecipeError {
                    key: "prompt",
                    message: format!(
                        "{tokens} tokens for {} (start and end markers included); its context holds {}: shorten the prompt",
                        limit.model, limit.context
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks the recipe ([`Director::check`]) and runs its slot; `deadline` counts from now
    /// (the service passes what is left of the slot's schedule, which may be nothing: the
    /// predictor then aborts the slot before it starts). Refused, with nothing run, when the
    /// recipe is bad or a slot of the same id is running.
    pub async fn run_slot(&self, recipe: &Recipe, deadline: Duration) -> Result<SlotRun, DirectorError> {
        self.check(recipe)?;
        let capture = capture::SlotCapture::start(recipe.slot_id)?;
        let started_at = SystemTime::now();
        let report = self.scheduler.run_slot(recipe, deadline).await;
        let ended_at = SystemTime::now();
        Ok(SlotRun { recipe: recipe.clone(), report, events: capture.finish(), started_at, ended_at })
    }
}

/// One slot's run: its recipe, the scheduler's report (outcome, timings, attempts, and the stage
/// outputs when it completed), its events, and when it ran by the wall clock.
pub struct SlotRun {
    /// The recipe.
    pub recipe: Recipe,
    /// What the scheduler reported; the outputs are in it when the slot completed.
    pub report: SlotReport<RealStages>,
    /// The slot's events, in order (the lines of `events.jsonl`).
    pub events: Vec<RecordedEvent>,
    /// When the slot started, by the wall clock.
    pub started_at: SystemTime,
    /// When it ended, by the wall clock.
    pub ended_at: SystemTime,
}

/// How a slot ended, in the words of `result.json` and the exit code of `vortex run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Completed by its deadline with the self-check passed.
    Delivered,
    /// Completed, but late or rejected by the self-check.
    Flawed,
    /// Stopped at a checkpoint by the predictor.
    Aborted,
    /// A stage ran out of attempts.
    Failed,
}

impl Verdict {
    /// The exit code `vortex run` ends with: 0 delivered, 3 late or rejected, 4 aborted,
    /// 5 failed (1 is an error before the slot ran, 2 a usage error).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Delivered => 0,
            Verdict::Flawed => 3,
            Verdict::Aborted => 4,
            Verdict::Failed => 5,
        }
    }
}

impl SlotRun {
    /// How the slot ended.
    pub fn verdict(&self) -> Verdict {
        match &self.report.outcome {
            vortex::Outcome::Completed(c) if c.deadline_met && c.clip_passed => Verdict::Delivered,
            vortex::Outcome::Completed(_) => Verdict::Flawed,
            vortex::Outcome::Aborted(_) => Verdict::Aborted,
            vortex::Outcome::Failed(_) => Verdict::Failed,
        }
    }
}
