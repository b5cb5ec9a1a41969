//! Loading the configured models once at start-up, the VRAM budget, and the real `Stages`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use vortex::{Recipe, StageError, Stages};

use crate::config::{ClipModelConfig, Config, DeviceName, ModelDtype, VerificationConfig};

use crate::clip::{self, ClipEncoder, ClipVerdict};
use crate::executor::{ModelError, ModelWorker};
use crate::flux::FluxPipeline;
use crate::media::{Frame, Video};
use crate::weights::WeightsFile;
use crate::LoadError;

/// The candle device a config names. CUDA needs the `cuda` feature.
pub fn device(name: DeviceName) -> Result<Device, LoadError> {
    match name {
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda(n) => Device::new_cuda(n as usize).map_err(|e| LoadError::Device {
            device: name.to_string(),
            reason: if cfg!(feature = "cuda") {
                e.to_string()
            } else {
                "this binary was built without CUDA; rebuild with `--features cuda` (docs/real-mode.md)".into()
            },
        }),
    }
}

/// One configured model as `models check` reports it.
#[derive(Debug, Clone)]
pub struct ModelReport {
    /// Config key (`clip_b32`, ...).
    pub name: &'static str,
    /// Resident dtype.
    pub dtype: ModelDtype,
    /// Bytes once resident.
    pub resident_bytes: u64,
    /// Tensors in the weights file.
    pub tensors: usize,
    /// Wall time to load (zero before loading).
    pub load_time: Duration,
}

/// The VRAM budget of the configured models, checked before anything is loaded.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Each model's size.
    pub models: Vec<ModelReport>,
    /// Warn above this many bytes.
    pub soft_limit: u64,
    /// Refuse above this many bytes.
    pub hard_limit: u64,
}

const GB: f64 = 1e9;

impl Budget {
    /// Reads every configured model's weights header (no data) and sums the resident sizes.
    pub fn estimate(config: &Config, base_dir: &Path) -> Result<Budget, LoadError> {
        let mut models = Vec::new();
        for (name, entry, published) in clip_entries(config) {
            let weights = WeightsFile::inspect(name, &base_dir.join(&entry.weights), published)?;
            models.push(ModelReport {
                name,
                dtype: entry.dtype,
                resident_bytes: weights.resident_bytes(entry.dtype),
                tensors: weights.tensors.len(),
                load_time: Duration::ZERO,
            });
        }
        if let Some(f) = &config.models.flux {
            let transformer = base_dir.join(&f.transformer);
            let (mut bytes, mut tensors) = if crate::flux::is_gguf(&transformer) {
                crate::flux::gguf_resident_bytes("flux", &transformer)?
            } else {
                let w = WeightsFile::inspect("flux", &transformer, crate::flux::PUBLISHED)?;
                (w.resident_bytes(f.dtype), w.tensors.len())
            };
            if let [t5] = f.t5.weights.0.as_slice() {
                if crate::flux::is_gguf(&base_dir.join(t5)) {
                    let (b, t) = crate::flux::gguf_resident_bytes("flux", &base_dir.join(t5))?;
                    bytes += b;
                    tensors += t;
                }
            }
            let t5_safetensors = f.t5.weights.0.iter().filter(|p| !crate::flux::is_gguf(p));
            let parts = std::iter::once(&f.vae).chain(t5_safetensors).chain(&f.clip.weights.0);
            for path in parts {
                let w = WeightsFile::inspect("flux", &base_dir.join(path), crate::flux::PUBLISHED)?;
                bytes += w.resident_bytes(f.dtype);
                tensors += w.tensors.len();
            }
            models.push(ModelReport {
                name: "flux",
                dtype: f.dtype,
                resident_bytes: bytes,
                tensors,
                load_time: Duration::ZERO,
            });
        }
        Ok(Budget {
            models,
            soft_limit: (config.vram.soft_limit_gb.get() * GB) as u64,
            hard_limit: (config.vram.hard_limit_gb.get() * GB) as u64,
        })
    }

    /// Bytes of all models together.
    pub fn total(&self) -> u64 {
        self.models.iter().map(|m| m.resident_bytes).sum()
    }

    /// `Err` naming every model and its size when the total exceeds the hard limit; `Ok(true)`
    /// when it exceeds the soft limit (warn), `Ok(false)` otherwise.
    pub fn check(&self) -> Result<bool, LoadError> {
        let total = self.total();
        if total > self.hard_limit {
            return Err(LoadError::Budget(format!(
                "the models need {}, above vram.hard_limit_gb = {}: {}",
                size(total),
                self.hard_limit as f64 / GB,
                self.lines().join("; ")
            )));
        }
        Ok(total > self.soft_limit)
    }

    /// One line per model: name, dtype, size.
    pub fn lines(&self) -> Vec<String> {
        self.models.iter().map(|m| format!("{} {} {}", m.name, m.dtype.name(), size(m.resident_bytes))).collect()
    }
}

/// A byte count in GB, or in MB below 1 GB.
pub fn size(bytes: u64) -> String {
    if bytes as f64 >= GB {
        format!("{:.2} GB", bytes as f64 / GB)
    } else {
        format!("{:.2} MB", bytes as f64 / 1e6)
    }
}

fn clip_entries(config: &Config) -> Vec<(&'static str, &ClipModelConfig, &'static str)> {
    let m = &config.models;
    let mut out = Vec::new();
    if let Some(c) = &m.clip_b32 {
        out.push(("clip_b32", c, clip::B32_PUBLISHED));
    }
    if let Some(c) = &m.clip_l14 {
        out.push(("clip_l14", c, clip::L14_PUBLISHED));
    }
    out
}

/// The loaded models, each on its worker thread.
pub struct Models {
    /// The dual CLIP ensemble, if both models are configured.
    pub clip: Option<Arc<ClipPair>>,
    /// Flux.1-Schnell, if configured.
    pub flux: Option<ModelWorker<FluxPipeline>>,
    /// What was loaded, with load times.
    pub loaded: Vec<ModelReport>,
    /// The budget that was checked.
    pub budget: Budget,
    /// True when the budget exceeded the soft limit.
    pub over_soft_limit: bool,
}

/// The two CLIP models of the ensemble.
pub struct ClipPair {
    b32: ModelWorker<ClipEncoder>,
    l14: ModelWorker<ClipEncoder>,
}

impl Models {
    /// Checks the budget, then loads every configured model once. `base_dir` is the config
    /// file's folder.
    pub fn load(config: &Config, base_dir: &Path) -> Result<Models, LoadError> {
        let budget = Budget::estimate(config, base_dir)?;
        let over_soft_limit = budget.check()?;
        let device = device(config.device.name)?;
        let mut loaded = Vec::new();
        let mut encoders = Vec::new();
        for ((name, entry, published), report) in clip_entries(config).into_iter().zip(&budget.models) {
            // Wall clock on purpose: load time is a real cost reported to the operator.
            let started = Instant::now();
            encoders.push(ClipEncoder::load(name, entry, base_dir, &device, published)?);
            loaded.push(ModelReport { load_time: started.elapsed(), ..report.clone() });
        }
        let flux = match &config.models.flux {
            Some(entry) => {
                let started = Instant::now();
                let pipeline = FluxPipeline::load(entry, base_dir, &device)?;
                let report = budget.models.iter().find(|m| m.name == "flux").expect("flux is in the budget");
                loaded.push(ModelReport { load_time: started.elapsed(), ..report.clone() });
                Some(ModelWorker::spawn("flux", pipeline))
            }
            None => None,
        };
        let clip = match (config.models.clip_b32.is_some(), config.models.clip_l14.is_some()) {
            (true, true) => {
                let l14 = encoders.pop().expect("two encoders");
                let b32 = encoders.pop().expect("two encoders");
                Some(Arc::new(ClipPair {
                    b32: ModelWorker::spawn("clip_b32", b32),
                    l14: ModelWorker::spawn("clip_l14", l14),
                }))
            }
            _ => None,
        };
        Ok(Models { clip, flux, loaded, budget, over_soft_limit })
    }
}

impl ClipPair {
    /// Scores a video's keyframes against the prompt with both models (in parallel, each on its
    /// thread) and forms the verdict. Dropping the future cancels both.
    pub async fn verify(
        &self,
        prompt: &str,
        video: &Video,
        cfg: &VerificationConfig,
    ) -> Result<ClipVerdict, StageError> {
        let frames: Arc<Vec<Frame>> = Arc::new(clip::keyframes(video, cfg));
        if frames.is_empty() {
            return Err(StageError::new("clip: the video has no frames"));
        }
        let job = |prompt: String, frames: Arc<Vec<Frame>>| {
            move |enc: &mut ClipEncoder, cancel: &crate::executor::CancelToken| {
                let refs: Vec<&Frame> = frames.iter().collect();
                clip::score(enc, &prompt, &refs, cancel)
            }
        };
        let (b32, l14) = tokio::join!(
            self.b32.run(job(prompt.to_string(), frames.clone())),
            self.l14.run(job(prompt.to_string(), frames)),
        );
        let (b32, l14) = (b32.map_err(|e| stage_error("clip", e))?, l14.map_err(|e| stage_error("clip", e))?);
        if b32.truncated || l14.truncated {
            tracing::warn!(target: "vortex::model", event = "prompt_truncated", "the prompt is longer than CLIP's context and was truncated");
        }
        Ok(clip::verdict(&b32, &l14, cfg))
    }

    /// How long the last cancelled CLIP job ran on after cancellation (the longer of the two).
    pub fn last_cancel_overrun(&self) -> Duration {
        self.b32.last_cancel_overrun().max(self.l14.last_cancel_overrun())
    }
}

/// A model job's error as the scheduler sees it, prefixed with the stage.
fn stage_error(stage: &str, e: ModelError) -> StageError {
    StageError::new(format!("{stage}: {e}"))
}

/// The real `Stages`: image (Flux) and verification (CLIP) are real; audio and video, whose
/// models are not built yet, fail loudly, so a slot never completes on made-up output.
pub struct RealStages {
    models: Models,
    verification: VerificationConfig,
}

impl RealStages {
    /// Stages over loaded models.
    pub fn new(models: Models, config: &Config) -> Self {
        RealStages { models, verification: config.verification }
    }

    /// The loaded models.
    pub fn models(&self) -> &Models {
        &self.models
    }
}

fn not_built(stage: &str, model: &str) -> StageError {
    StageError::new(format!("the {stage} stage ({model}) is not built yet in real mode; see docs/real-mode.md"))
}

/// Audio samples (the audio stage is not built yet; nothing produces this type).
#[derive(Debug)]
pub struct Audio {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl Stages for RealStages {
    type Audio = Audio;
    type Image = Frame;
    type Video = Video;
    type Verdict = ClipVerdict;

    async fn audio(&self, _: &Recipe, _: u32) -> Result<Audio, StageError> {
        Err(not_built("audio", "Kokoro-82M"))
    }

    async fn image(&self, recipe: &Recipe, _: u32) -> Result<Frame, StageError> {
        let Some(flux) = &self.models.flux else {
            return Err(StageError::new("the image stage needs models.flux in config.yaml"));
        };
        let (prompt, seed) = (recipe.prompt.clone(), recipe.seed);
        flux.run(move |pipeline: &mut FluxPipeline, cancel| pipeline.generate(&prompt, seed, cancel, |_| {}))
            .await
            .map_err(|e| stage_error("image", e))
    }

    async fn video(&self, _: &Recipe, _: &Audio, _: &Frame, _: u32) -> Result<Video, StageError> {
        Err(not_built("video", "LivePortrait"))
    }

    async fn clip(&self, recipe: &Recipe, video: &Video, _: u32) -> Result<ClipVerdict, StageError> {
        match &self.models.clip {
            Some(pair) => pair.verify(&recipe.prompt, video, &self.verification).await,
            None => {
                Err(StageError::new("the clip stage needs both models.clip_b32 and models.clip_l14 in config.yaml"))
            }
        }
    }
}
