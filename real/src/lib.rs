//! # Real mode: the scheduler driving candle models
//!
//! The same [`vortex::SlotScheduler`] that the simulator runs in virtual time drives real models
//! here. Each model is loaded once at start-up from local files named in `config.yaml`'s `models`
//! section, stays resident on its own worker thread ([`executor`]), and is told to stop through a
//! cancellation token when the scheduler times out, aborts or cancels its stage.
//!
//! ## Map
//! - [`config`]: real mode's `config.yaml` (the core's `orchestration` plus device, VRAM,
//!   models, verification). A new model adds its section here only.
//! - [`stages`]: [`stages::RealStages`], the real `Stages`, and the CLIP pair.
//! - [`models`]: loading every configured model once, onto its worker.
//! - [`budget`]: the VRAM budget from weights headers, before anything loads.
//! - [`executor`]: model worker threads, cancellation, contained panics, bounded queues.
//! - Model files, one per model and nothing else: [`clip`] (CLIP ViT-B/32 and ViT-L/14: loading,
//!   preprocessing, scoring) over [`clip_model`] (the network),
//!   [`flux`] (Flux.1-Schnell).
//! - [`verification`]: the self-check's ensemble verdict and keyframe choice.
//! - Shared loading: [`loading`] (dtypes, mapped weights, JSON, tokenizers, prompt fitting),
//!   [`weights`] (safetensors headers through the `safetensors` crate), [`hf`] (Hugging Face
//!   `config.json` shapes shared by models).
//! - [`media`]: frames and videos passed between stages.
//!
//! All four stages have their real model: audio (Kokoro-82M), image (Flux.1-Schnell), video
//! ([`liveportrait`], driven by the audio) and verification (dual CLIP). A stage whose model is
//! not configured fails with an error that says so, never with made-up output.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

#[cfg(feature = "openblas")]
pub mod blas;
pub mod budget;
pub mod clip;
pub mod clip_model;
pub mod config;
pub mod director;
pub mod executor;
pub mod flux;
#[doc(hidden)]
pub mod fuzzing;
pub mod gguf;
pub mod hf;
pub mod kokoro;
pub mod liveportrait;
pub mod loading;
pub mod media;
pub mod models;
pub mod ops;
pub mod service;
pub mod stages;
pub mod tiny;
pub mod verification;
pub mod weights;

/// Why a model could not be loaded; the message names the model, the file and where such files
/// are published.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A weights file is missing, malformed or lacks tensors.
    #[error(transparent)]
    Weights(#[from] weights::WeightsError),
    /// Another file (config, tokenizer) is wrong.
    #[error("{model}: {}: {reason}. {published}", path.display())]
    File {
        /// Which model.
        model: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// Where such files are published.
        published: &'static str,
    },
    /// The device cannot be used.
    #[error("device {device}: {reason}")]
    Device {
        /// The configured device.
        device: String,
        /// What is wrong.
        reason: String,
    },
    /// The models do not fit the VRAM budget.
    #[error("{0}")]
    Budget(String),
}

impl LoadError {
    /// An error about one of a model's files.
    pub fn file(model: &str, path: &Path, reason: impl Into<String>, published: &'static str) -> Self {
        LoadError::File { model: model.into(), path: path.into(), reason: reason.into(), published }
    }
}

/// Tells glibc's allocator to keep freed memory for reuse instead of handing large blocks back
/// to the kernel. A model's forward pass allocates and frees activations of megabytes each, and
/// glibc by default serves every such block with a fresh `mmap` and trims it on free, so each
/// one costs page faults again (measured on full-size CLIP ViT-L/14 on the CPU: see
/// docs/benchmarks.md). Call it once at start-up, before loading models; elsewhere than Linux
/// with glibc it does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; it is safe to call at any time.
    unsafe {
        // Every block comes from the heap and is reused: the mmap threshold tops out at 32 MiB,
        // and LivePortrait's volumes are larger (its frames faulted in about 4 GB of fresh pages
        // each with only the threshold raised). Trimming only above 1 GiB of free heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
