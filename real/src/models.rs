//! Loading the configured models once at start-up, after the VRAM budget passed, each onto its
//! worker thread.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;

use crate::budget::{clip_entries, Budget, ModelReport};
use crate::clip::ClipEncoder;
use crate::config::{Config, DeviceName};
use crate::executor::ModelWorker;
use crate::flux::FluxPipeline;
use crate::kokoro::pipeline::KokoroPipeline;
use crate::liveportrait::pipeline::LivePortraitPipeline;
use crate::stages::ClipPair;
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

/// The loaded models, each on its worker thread.
pub struct Models {
    /// The dual CLIP ensemble, if both models are configured.
    pub clip: Option<Arc<ClipPair>>,
    /// Flux.1-Schnell, if configured.
    pub flux: Option<ModelWorker<FluxPipeline>>,
    /// Kokoro-82M with its voices, if configured.
    pub kokoro: Option<ModelWorker<KokoroPipeline>>,
    /// LivePortrait's five networks, if configured.
    pub liveportrait: Option<ModelWorker<LivePortraitPipeline>>,
    /// What was loaded, with load times.
    pub loaded: Vec<ModelReport>,
    /// The budget that was checked.
    pub budget: Budget,
    /// True when the budget exceeded the soft limit.
    pub over_soft_limit: bool,
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
                Some(load_worker("flux", &budget, &mut loaded, || FluxPipeline::load(entry, base_dir, &device))?)
            }
            None => None,
        };
        let kokoro = match &config.models.kokoro {
            Some(entry) => {
                Some(load_worker("kokoro", &budget, &mut loaded, || KokoroPipeline::load(entry, base_dir, &device))?)
            }
            None => None,
        };
        let liveportrait = match &config.models.liveportrait {
            Some(entry) => Some(load_worker("liveportrait", &budget, &mut loaded, || {
                LivePortraitPipeline::load(entry, base_dir, &device)
            })?),
            None => None,
        };
        let clip = match (config.models.clip_b32.is_some(), config.models.clip_l14.is_some()) {
            (true, true) => {
                let l14 = encoders.pop().expect("two encoders");
                let b32 = encoders.pop().expect("two encoders");
                Some(Arc::new(ClipPair::new(ModelWorker::spawn("clip_b32", b32), ModelWorker::spawn("clip_l14", l14))))
            }
            _ => None,
        };
        Ok(Models { clip, flux, kokoro, liveportrait, loaded, budget, over_soft_limit })
    }
}

/// Loads one model with `load`, records its load time against its budget entry, and starts its
/// worker thread.
fn load_worker<M: Send + 'static>(
    name: &'static str,
    budget: &Budget,
    loaded: &mut Vec<ModelReport>,
    load: impl FnOnce() -> Result<M, LoadError>,
) -> Result<ModelWorker<M>, LoadError> {
    // Wall clock on purpose: load time is a real cost reported to the operator.
    let started = Instant::now();
    let model = load()?;
    let report = budget.models.iter().find(|m| m.name == name).expect("every configured model is in the budget");
    loaded.push(ModelReport { load_time: started.elapsed(), ..report.clone() });
    Ok(ModelWorker::spawn(name, model))
}
