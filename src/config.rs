//! `config.yaml`: the orchestration policy and the real-mode sections, loaded with strict checks.
//!
//! Every value is checked while it is read, so an error names the file, the key path and the bad
//! value: `config.yaml: orchestration.timeouts.audio_s: expected a positive, finite number of
//! seconds, got -1`. Unknown keys are refused, so a misspelt key never silently falls back to a
//! default.
//!
//! ```
//! let cfg = vortex::Config::from_yaml_str("inline", &vortex::Config::default().to_yaml()).unwrap();
//! assert_eq!(cfg.orchestration.timeouts.audio_s.as_secs_f64(), 3.0);
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::stage::{PerStage, Stage};

/// The most retries a stage may be given: more would let one stage eat a whole slot.
pub const MAX_RETRIES: u32 = 5;

/// Everything `config.yaml` holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Timeouts, retries, targets and the deadline buffer.
    pub orchestration: Orchestration,
    /// Where real-mode models run.
    #[serde(default)]
    pub device: DeviceConfig,
    /// The VRAM budget real mode enforces at start-up.
    #[serde(default)]
    pub vram: VramConfig,
    /// Local weight paths of the real models.
    #[serde(default)]
    pub models: ModelsConfig,
    /// The CLIP self-check's thresholds and ensemble weights.
    #[serde(default)]
    pub verification: VerificationConfig,
}

/// The scheduler's policy (section `orchestration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orchestration {
    /// Safety margin the predictive abort keeps before the deadline (zero allowed).
    pub deadline_buffer_s: BufferSecs,
    /// Backoff before retry k is `backoff_base_s * 2^k`.
    pub backoff_base_s: Secs,
    /// Per-attempt timeout of each stage.
    pub timeouts: StageSecs,
    /// Retries per stage after the first attempt.
    pub retry_policy: RetryPolicy,
    /// Expected latency of each stage, used by the predictor.
    pub targets: StageSecs,
    /// Which predictor estimates remaining work: `static` (the targets) or `adaptive`.
    #[serde(default)]
    pub predictor: PredictorKind,
    /// Settings of the adaptive predictor.
    #[serde(default)]
    pub adaptive: AdaptiveConfig,
}

/// `orchestration.predictor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictorKind {
    /// Each stage takes its target.
    #[default]
    Static,
    /// Each stage takes a quantile of its recently observed latencies.
    Adaptive,
}

/// `orchestration.adaptive`: how the adaptive predictor learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// The quantile of recent latencies taken as a stage's estimate, in (0, 1].
    pub quantile: Quantile,
    /// Observations kept per stage (the window starts full of the stage's target).
    pub history: History,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig { quantile: Quantile(0.9), history: History(100) }
    }
}

/// The most observations the adaptive predictor keeps per stage.
pub const MAX_HISTORY: u32 = 10_000;

/// A quantile in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Quantile(f64);

/// A window length from 1 to [`MAX_HISTORY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct History(pub u32);

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(d)?;
        match u32::try_from(value) {
            Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(History(n)),
            _ => {
                Err(serde::de::Error::custom(format!("expected a history length from 1 to {MAX_HISTORY}, got {value}")))
            }
        }
    }
}

impl Default for Orchestration {
    fn default() -> Self {
        Orchestration {
            deadline_buffer_s: BufferSecs(5.0),
            backoff_base_s: Secs(0.5),
            timeouts: StageSecs::new(3.0, 15.0, 10.0, 2.0),
            retry_policy: RetryPolicy { audio: Retries(1), image: Retries(0), video: Retries(0), clip: Retries(0) },
            targets: StageSecs::new(2.0, 12.0, 8.0, 1.0),
            predictor: PredictorKind::Static,
            adaptive: AdaptiveConfig::default(),
        }
    }
}

/// One duration per stage, in seconds (`audio_s`, `image_s`, `video_s`, `clip_s`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSecs {
    /// Audio (Kokoro TTS).
    pub audio_s: Secs,
    /// Actor image (Flux.1-Schnell).
    pub image_s: Secs,
    /// Video (LivePortrait).
    pub video_s: Secs,
    /// Verification (dual CLIP).
    pub clip_s: Secs,
}

impl StageSecs {
    fn new(audio_s: f64, image_s: f64, video_s: f64, clip_s: f64) -> Self {
        StageSecs { audio_s: Secs(audio_s), image_s: Secs(image_s), video_s: Secs(video_s), clip_s: Secs(clip_s) }
    }

    /// The values as durations, indexed by stage.
    pub fn durations(&self) -> PerStage<Duration> {
        PerStage::from_fn(|stage| self.get(stage).duration())
    }

    /// The value of one stage.
    pub fn get(&self, stage: Stage) -> Secs {
        match stage {
            Stage::Audio => self.audio_s,
            Stage::Image => self.image_s,
            Stage::Video => self.video_s,
            Stage::Clip => self.clip_s,
        }
    }
}

/// Retries per stage (`audio`, `image`, `video`, `clip`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries of the audio stage.
    pub audio: Retries,
    /// Retries of the image stage.
    pub image: Retries,
    /// Retries of the video stage.
    pub video: Retries,
    /// Retries of the verification stage.
    pub clip: Retries,
}

impl RetryPolicy {
    /// Retries per stage as plain counts.
    pub fn counts(&self) -> PerStage<u32> {
        PerStage::new(self.audio.0, self.image.0, self.video.0, self.clip.0)
    }
}

/// Section `device`: where real-mode models run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// `cpu` or `cuda:N`.
    pub name: DeviceName,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig { name: DeviceName::Cpu }
    }
}

/// A device name as written in config: `cpu` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// The CPU backend, always available.
    Cpu,
    /// CUDA device N (needs the `cuda` feature).
    Cuda(u32),
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Cpu => f.write_str("cpu"),
            DeviceName::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "cpu" {
            return Ok(DeviceName::Cpu);
        }
        match text.strip_prefix("cuda:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(DeviceName::Cuda(n)),
            _ => Err(serde::de::Error::custom(format!("expected `cpu` or `cuda:N`, got {text:?}"))),
        }
    }
}

/// Section `vram`: the budget real mode checks before loading models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VramConfig {
    /// Warn when the resident models exceed this many GB.
    pub soft_limit_gb: Positive,
    /// Refuse to start when the resident models exceed this many GB.
    pub hard_limit_gb: Positive,
}

impl Default for VramConfig {
    fn default() -> Self {
        // A 12 GB RTX 3060 leaves about 11.5 GB once the driver and display take theirs.
        VramConfig { soft_limit_gb: Positive(10.5), hard_limit_gb: Positive(11.5) }
    }
}

/// Section `models`: where each real model's files are. Paths are relative to the config file.
/// Nothing is downloaded: a model whose entry is missing is not loaded, and a stage that needs
/// it fails loudly. Entries for models not built yet (Kokoro, LivePortrait) are refused until
/// their stages exist.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// CLIP ViT-B/32 (verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_b32: Option<ClipModelConfig>,
    /// CLIP ViT-L/14 (verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_l14: Option<ClipModelConfig>,
    /// Flux.1-Schnell (the actor image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<FluxModelConfig>,
}

/// Flux.1-Schnell's files: the transformer (Black Forest Labs' checkpoint layout), its two text
/// encoders and its autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluxModelConfig {
    /// `flux1-schnell.safetensors`.
    pub transformer: std::path::PathBuf,
    /// The transformer's architecture as JSON (candle's field names); default: the Schnell preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer_config: Option<std::path::PathBuf>,
    /// `ae.safetensors`.
    pub vae: std::path::PathBuf,
    /// The autoencoder's architecture as JSON; default: the Schnell preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_config: Option<std::path::PathBuf>,
    /// The T5 encoder (`text_encoder_2/`): weights, `config.json`, `tokenizer.json`.
    pub t5: TextEncoderFiles,
    /// The CLIP-L text encoder (`text_encoder/`): weights, `config.json`, `tokenizer.json`.
    pub clip: TextEncoderFiles,
    /// The dtype the weights are held in on the device.
    #[serde(default)]
    pub dtype: ModelDtype,
    /// Side of the square image in pixels (a multiple of 16).
    #[serde(default = "default_image_px")]
    pub image_px: u32,
    /// Denoising steps (Schnell is distilled for 4).
    #[serde(default = "default_steps")]
    pub steps: u32,
    /// T5 tokens the prompt is padded or cut to (256 for Schnell).
    #[serde(default = "default_t5_tokens")]
    pub t5_tokens: u32,
}

fn default_image_px() -> u32 {
    512
}

fn default_steps() -> u32 {
    4
}

fn default_t5_tokens() -> u32 {
    256
}

/// A Hugging Face text encoder directory's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEncoderFiles {
    /// `model.safetensors`, or the list of its shards (`model-00001-of-00002.safetensors`, ...).
    pub weights: WeightFiles,
    /// `config.json`.
    pub config: std::path::PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: std::path::PathBuf,
}

/// One CLIP model's files, as published in a Hugging Face model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipModelConfig {
    /// `model.safetensors`.
    pub weights: std::path::PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: std::path::PathBuf,
    /// `config.json` (the architecture: widths, layers, heads).
    pub config: std::path::PathBuf,
    /// The dtype the weights are held in on the device.
    #[serde(default)]
    pub dtype: ModelDtype,
}

/// One weights file, or the shards of one: written as a path or as a list of paths.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFiles(pub Vec<std::path::PathBuf>);

impl From<std::path::PathBuf> for WeightFiles {
    fn from(path: std::path::PathBuf) -> Self {
        WeightFiles(vec![path])
    }
}

impl Serialize for WeightFiles {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WeightFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(std::path::PathBuf),
            Many(Vec<std::path::PathBuf>),
        }
        match OneOrMany::deserialize(d) {
            Ok(OneOrMany::One(p)) => Ok(WeightFiles(vec![p])),
            Ok(OneOrMany::Many(v)) if !v.is_empty() => Ok(WeightFiles(v)),
            Ok(OneOrMany::Many(_)) => Err(serde::de::Error::custom("expected at least one weights file")),
            Err(_) => Err(serde::de::Error::custom("expected a weights file path, or a list of shard paths")),
        }
    }
}

/// A model's resident dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelDtype {
    /// 32-bit float (CPU default).
    #[default]
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

impl ModelDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ModelDtype::F32 => 4,
            ModelDtype::F16 | ModelDtype::Bf16 => 2,
        }
    }
}

/// Section `verification`: the dual CLIP self-check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfig {
    /// Keyframes sampled evenly from the video.
    pub keyframes: u32,
    /// ViT-B/32 score needed to pass (mean cosine similarity of frames and prompt).
    pub b32_min: f64,
    /// ViT-L/14 score needed to pass.
    pub l14_min: f64,
    /// Weight of ViT-B/32 in the ensemble score (ViT-L/14 gets 1 minus this).
    pub b32_weight: f64,
    /// Flag an outlier when the two scores differ by more than this.
    pub outlier_gap: f64,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig { keyframes: 5, b32_min: 0.70, l14_min: 0.72, b32_weight: 0.4, outlier_gap: 0.15 }
    }
}

/// A duration in seconds that must be positive and finite.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Secs(f64);

/// A duration in seconds that must be finite and not negative (zero allowed).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct BufferSecs(f64);

/// A positive, finite quantity that is not a duration (gigabytes).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Positive(f64);

/// A retry count, at most [`MAX_RETRIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retries(pub u32);

macro_rules! checked_f64 {
    ($ty:ident, $ok:expr, $what:literal) => {
        impl $ty {
            /// Checks and wraps a value, with the reason it is refused.
            pub fn new(value: f64) -> Result<Self, String> {
                let ok: fn(f64) -> bool = $ok;
                if ok(value) {
                    Ok($ty(value))
                } else {
                    Err(format!(concat!("expected ", $what, ", got {}"), fmt_f64(value)))
                }
            }

            /// The plain number.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = f64::deserialize(d)?;
                $ty::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_f64!(Secs, |v| v.is_finite() && v > 0.0, "a positive, finite number of seconds");
checked_f64!(BufferSecs, |v| v.is_finite() && v >= 0.0, "a finite number of seconds >= 0");
checked_f64!(Positive, |v| v.is_finite() && v > 0.0, "a positive, finite number");
checked_f64!(Quantile, |v| v > 0.0 && v <= 1.0, "a quantile in (0, 1]");

impl Secs {
    /// The value as a duration.
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    /// The value in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0
    }
}

impl BufferSecs {
    /// The value as a duration.
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Retries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(d)?;
        match u32::try_from(value) {
            Ok(n) if n <= MAX_RETRIES => Ok(Retries(n)),
            _ => Err(serde::de::Error::custom(format!("expected a retry count from 0 to {MAX_RETRIES}, got {value}"))),
        }
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { ".inf" } else { "-.inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Why a config (or scenario) could not be loaded; the message names the file, key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {cause}")]
    Io {
        /// The file's path as given.
        file: String,
        /// The underlying error (shown in the message, so not chained as a source too).
        cause: std::io::Error,
    },
    /// The file was read but a key or value is wrong.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file's path as given.
        file: String,
        /// Dotted key path, `(top level)` for the document itself.
        key: String,
        /// What is wrong, with the bad value.
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io { file: file.clone(), cause })?;
        Config::from_yaml_str(&file, &text)
    }

    /// Parses and checks YAML text; `origin` names it in errors.
    pub fn from_yaml_str(origin: &str, text: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_yaml(origin, text)?;
        config.check(origin)?;
        Ok(config)
    }

    /// Checks a YAML value (for example a config merged with overrides); `origin` names it in errors.
    pub fn from_value(origin: &str, value: serde_yaml_ng::Value) -> Result<Config, ConfigError> {
        let config: Config = from_value(origin, value)?;
        config.check(origin)?;
        Ok(config)
    }

    /// The config as a YAML value, the shape `from_value` reads.
    pub fn to_value(&self) -> serde_yaml_ng::Value {
        serde_yaml_ng::to_value(self).expect("a Config always serializes")
    }

    /// The config as YAML text.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a Config always serializes")
    }

    /// Checks that span several keys, after each value passed its own check.
    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let v = &self.verification;
        // Cosine similarities lie in [-1, 1]; the ensemble weight is a share.
        let within = |key: &str, x: f64, lo: f64| {
            if (lo..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(invalid(origin, key, format!("expected a number from {lo} to 1, got {x}")))
            }
        };
        within("verification.b32_min", v.b32_min, -1.0)?;
        within("verification.l14_min", v.l14_min, -1.0)?;
        within("verification.b32_weight", v.b32_weight, 0.0)?;
        if !(v.outlier_gap.is_finite() && v.outlier_gap >= 0.0) {
            return Err(invalid(
                origin,
                "verification.outlier_gap",
                format!("expected a number >= 0, got {}", v.outlier_gap),
            ));
        }
        if let Some(f) = &self.models.flux {
            if f.image_px == 0 || f.image_px % 16 != 0 || f.image_px > 2048 {
                return Err(invalid(
                    origin,
                    "models.flux.image_px",
                    format!("expected a multiple of 16 up to 2048, got {}", f.image_px),
                ));
            }
            if !(1..=50).contains(&f.steps) {
                return Err(invalid(origin, "models.flux.steps", format!("expected 1 to 50 steps, got {}", f.steps)));
            }
            if !(1..=512).contains(&f.t5_tokens) {
                return Err(invalid(
                    origin,
                    "models.flux.t5_tokens",
                    format!("expected 1 to 512 tokens, got {}", f.t5_tokens),
                ));
            }
        }
        if !(1..=64).contains(&v.keyframes) {
            return Err(invalid(
                origin,
                "verification.keyframes",
                format!("expected 1 to 64 keyframes, got {}", v.keyframes),
            ));
        }
        if self.vram.soft_limit_gb > self.vram.hard_limit_gb {
            return Err(invalid(
                origin,
                "vram.soft_limit_gb",
                format!(
                    "must not exceed vram.hard_limit_gb ({}), got {}",
                    self.vram.hard_limit_gb.get(),
                    self.vram.soft_limit_gb.get()
                ),
            ));
        }
        Ok(())
    }
}

/// Builds the error for a bad key.
pub fn invalid(origin: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: origin.to_string(), key: key.to_string(), message: message.into() }
}

/// Deserializes YAML text strictly, turning serde's error into one that names the key path.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(origin, e))
}

/// Deserializes a YAML value strictly, turning serde's error into one that names the key path.
pub fn from_value<T: serde::de::DeserializeOwned>(origin: &str, value: serde_yaml_ng::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(origin, e))
}

fn path_error(origin: &str, e: serde_path_to_error::Error<serde_yaml_ng::Error>) -> ConfigError {
    let key = e.path().to_string();
    let key = if key == "." { "(top level)".to_string() } else { key };
    let message = e.into_inner().to_string();
    // serde_yaml_ng prefixes its own (parent) path, which would repeat ours; its trailing
    // "at line L column C" stays, as it helps find the spot in long files.
    let message = ancestors(&key)
        .find_map(|parent| message.strip_prefix(&format!("{parent}: ")).map(str::to_string))
        .unwrap_or(message);
    invalid(origin, &key, message)
}

/// `a.b.c`, `a.b`, `a`: the key and its parents, longest first.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(key), |k| k.rfind('.').map(|i| &k[..i]))
}
