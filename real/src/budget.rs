//! The VRAM budget: every configured model's resident size, read from its weights headers before
//! anything is loaded, checked against `vram.soft_limit_gb` (warn) and `vram.hard_limit_gb`
//! (refuse to start). Each model module reports its own size (`resident_size`).

use std::path::Path;
use std::time::Duration;

use crate::config::{ClipModelConfig, Config, ModelDtype};
use crate::LoadError;

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
            let (resident_bytes, tensors) = crate::clip::resident_size(name, entry, base_dir, published)?;
            models.push(ModelReport { name, dtype: entry.dtype, resident_bytes, tensors, load_time: Duration::ZERO });
        }
        if let Some(f) = &config.models.flux {
            let (resident_bytes, tensors) = crate::flux::resident_size(f, base_dir)?;
            models.push(ModelReport {
                name: "flux",
                dtype: f.dtype,
                resident_bytes,
                tensors,
                load_time: Duration::ZERO,
            });
        }
        if let Some(k) = &config.models.kokoro {
            let (resident_bytes, tensors) = crate::kokoro::pipeline::resident_size(k, base_dir)?;
            models.push(ModelReport {
                name: "kokoro",
                dtype: k.dtype,
                resident_bytes,
                tensors,
                load_time: Duration::ZERO,
            });
        }
        if let Some(lp) = &config.models.liveportrait {
            let resident_bytes = crate::liveportrait::pipeline::resident_size(lp, base_dir)?;
            models.push(ModelReport {
                name: "liveportrait",
                dtype: lp.dtype,
                resident_bytes,
                tensors: 0,
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

/// The configured CLIP models: config key, entry, where such weights are published.
pub fn clip_entries(config: &Config) -> Vec<(&'static str, &ClipModelConfig, &'static str)> {
    let m = &config.models;
    let mut out = Vec::new();
    if let Some(c) = &m.clip_b32 {
        out.push(("clip_b32", c, crate::clip::B32_PUBLISHED));
    }
    if let Some(c) = &m.clip_l14 {
        out.push(("clip_l14", c, crate::clip::L14_PUBLISHED));
    }
    out
}
