//! Real mode's `config.yaml`: the core's `orchestration` section plus the sections only real mode
//! reads (`device`, `vram`, `models`, `verification`).
//!
//! A new model adds its section here and nowhere else: the core and the simulator read only
//! `orchestration` ([`vortex::Orchestration::load`]). Values are validated types, checked while
//! parsed, so every error keeps its file, key, line and column; unknown keys are refused.
//!
//! ```
//! let config = vortex_real::config::Config::from_yaml_str("inline", "orchestration: {}\n").unwrap();
//! assert_eq!(config.verification.keyframes.get(), 5);
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vortex::yaml::{self, ConfigError};
use vortex::{bounded_f64, bounded_int, Orchestration};

/// Everything `config.yaml` holds in real mode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    try_from = "ConfigFile",
    expecting = "a real-mode config file: a map with orchestration and optional device, vram, models, verification, service"
)]
pub struct Config {
    /// The scheduler's policy (the core's section).
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
    /// `vortex serve`: where finished slots live, the queue bound, the shutdown grace.
    #[serde(default)]
    pub service: ServiceConfig,
}

/// `config.yaml` as written, before the checks that span sections.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a real-mode config file: a map with orchestration and optional device, vram, models, verification, service"
)]
struct ConfigFile {
    orchestration: Orchestration,
    #[serde(default)]
    device: DeviceConfig,
    #[serde(default)]
    vram: VramConfig,
    #[serde(default)]
    models: ModelsConfig,
    #[serde(default)]
    verification: VerificationConfig,
    #[serde(default)]
    service: ServiceConfig,
}

impl TryFrom<ConfigFile> for Config {
    type Error = String;

    fn try_from(f: ConfigFile) -> Result<Self, String> {
        let config = Config {
            orchestration: f.orchestration,
            device: f.device,
            vram: f.vram,
            models: f.models,
            verification: f.verification,
            service: f.service,
        };
        let f32_only = [
            ("models.kokoro.dtype", "Kokoro", config.models.kokoro.as_ref().map(|c| c.dtype)),
            ("models.liveportrait.dtype", "LivePortrait", config.models.liveportrait.as_ref().map(|c| c.dtype)),
        ];
        for (key, model, dtype) in f32_only {
            if let Some(dtype) = dtype.filter(|&d| d != ModelDtype::F32) {
                return Err(format!(
                    "{key} is {}; only f32 is supported (a half-precision {model} is not checked against the \
                     reference yet)",
                    dtype.name()
                ));
            }
        }
        if config.device.name == DeviceName::Cpu {
            if let Some(key) = config.model_dtypes().into_iter().find_map(|(k, d)| (d == ModelDtype::Bf16).then_some(k))
            {
                return Err(format!(
                    "{key} is bf16, which device.name cpu cannot run: candle's CPU backend has no bf16 matrix \
                     multiply. Use f32 or f16 on cpu, bf16 on cuda"
                ));
            }
        }
        Ok(config)
    }
}

impl Config {
    /// Each configured model's dtype, by its config key.
    pub fn model_dtypes(&self) -> Vec<(&'static str, ModelDtype)> {
        let m = &self.models;
        [
            ("models.clip_b32.dtype", m.clip_b32.as_ref().map(|c| c.dtype)),
            ("models.clip_l14.dtype", m.clip_l14.as_ref().map(|c| c.dtype)),
            ("models.flux.dtype", m.flux.as_ref().map(|c| c.dtype)),
            ("models.kokoro.dtype", m.kokoro.as_ref().map(|c| c.dtype)),
            ("models.liveportrait.dtype", m.liveportrait.as_ref().map(|c| c.dtype)),
        ]
        .into_iter()
        .filter_map(|(k, d)| d.map(|d| (k, d)))
        .collect()
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = yaml::read_text(path, yaml::MAX_YAML_BYTES)?;
        Config::from_yaml_str(&path.display().to_string(), &text)
    }

    /// Parses and checks YAML text; `origin` names it in errors.
    pub fn from_yaml_str(origin: &str, text: &str) -> Result<Config, ConfigError> {
        yaml::parse(origin, text)
    }

    /// The config as YAML text (every effective value, defaults included).
    pub fn to_yaml(&self) -> String {
        yaml::to_text(self)
    }
}

/// Section `device`: where real-mode models run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with the key name (cpu or cuda:N)")]
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
            Some(Ok(n)) if n < 64 => Ok(DeviceName::Cuda(n)),
            _ => Err(serde::de::Error::custom(format!("expected `cpu` or `cuda:N` (N from 0 to 63), got {text:?}"))),
        }
    }
}

bounded_f64!(
    /// Gigabytes of VRAM: above 0 and at most 1024 (no GPU has more).
    pub Gigabytes,
    |v| v > 0.0 && v <= 1024.0,
    "a number of gigabytes above 0 and at most 1024"
);

/// Section `vram`: the budget real mode checks before loading models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "VramFile", expecting = "a map with soft_limit_gb and hard_limit_gb")]
pub struct VramConfig {
    /// Warn when the resident models exceed this many GB.
    pub soft_limit_gb: Gigabytes,
    /// Refuse to start when the resident models exceed this many GB.
    pub hard_limit_gb: Gigabytes,
}

/// `vram` as written, before the check that spans both keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map with soft_limit_gb and hard_limit_gb")]
struct VramFile {
    soft_limit_gb: Gigabytes,
    hard_limit_gb: Gigabytes,
}

impl TryFrom<VramFile> for VramConfig {
    type Error = String;

    fn try_from(v: VramFile) -> Result<Self, String> {
        if v.soft_limit_gb > v.hard_limit_gb {
            return Err(format!(
                "soft_limit_gb ({}) must not exceed hard_limit_gb ({})",
                v.soft_limit_gb.get(),
                v.hard_limit_gb.get()
            ));
        }
        Ok(VramConfig { soft_limit_gb: v.soft_limit_gb, hard_limit_gb: v.hard_limit_gb })
    }
}

impl Default for VramConfig {
    fn default() -> Self {
        // A 12 GB RTX 3060 leaves about 11.5 GB once the driver and display take theirs.
        let gb = |v| Gigabytes::new(v).expect("a valid default");
        VramConfig { soft_limit_gb: gb(10.5), hard_limit_gb: gb(11.5) }
    }
}

/// Section `models`: where each real model's files are. Paths are relative to the config file.
/// Nothing is downloaded: a model whose entry is missing is not loaded, and a stage that needs
/// it fails loudly.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map of models (clip_b32, clip_l14, flux, kokoro, liveportrait)")]
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
    /// Kokoro-82M (the audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kokoro: Option<KokoroModelConfig>,
    /// LivePortrait (the video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveportrait: Option<LivePortraitModelConfig>,
}

/// LivePortrait's files and how it runs (docs/real-mode.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map of LivePortrait's settings (weights, architecture, dtype, batch_frames)"
)]
pub struct LivePortraitModelConfig {
    /// The folder of the published checkpoints, in their published layout:
    /// `base_models/{appearance_feature_extractor, motion_extractor, warping_module,
    /// spade_generator}.pth` and `retargeting_models/stitching_retargeting_module.pth`; each may
    /// instead be a `.safetensors` file of the same name and tensor names.
    pub weights: PathBuf,
    /// The networks' sizes in the reference's `models.yaml` layout
    /// ([`crate::liveportrait::architecture`]); default: the published model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<PathBuf>,
    /// The dtype the weights are held in: only f32 (a half-precision LivePortrait is not checked
    /// against the reference yet).
    #[serde(default)]
    pub dtype: ModelDtype,
    /// Frames generated per batch; the slot's cancellation is checked between batches.
    #[serde(default)]
    pub batch_frames: BatchFrames,
}

bounded_int!(
    /// Frames LivePortrait generates per batch, 1 to 64 (default 1: on CUDA larger batches are no
    /// faster and each frame adds about 1.9 GB of activations; docs/benchmarks.md).
    pub BatchFrames: u32, 1, 64, "a number of frames per batch"
);

impl Default for BatchFrames {
    fn default() -> Self {
        BatchFrames(1)
    }
}

/// Kokoro-82M's files: its weights and its voices (docs/real-mode.md says how to obtain them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map of Kokoro's files (weights, voices, architecture) and dtype")]
pub struct KokoroModelConfig {
    /// `kokoro-v1_0.safetensors` (`tools/kokoro_weights.py convert`'s output, or any conversion
    /// under the checkpoint's names), or the published PyTorch checkpoint `kokoro-v1_0.pth`.
    pub weights: PathBuf,
    /// The architecture in the layout of Kokoro's `config.json`
    /// ([`crate::kokoro::architecture`]); default: Kokoro-82M v1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<PathBuf>,
    /// A folder of voices (`NAME.bin`, `NAME.npy` or `NAME.pt`), or a `.npz` archive of them
    /// (`voices-v1.0.bin`).
    pub voices: PathBuf,
    /// The dtype the weights are held in: only f32 (82 M parameters, 330 MB; a half-precision
    /// Kokoro is not checked against the reference yet).
    #[serde(default)]
    pub dtype: ModelDtype,
}

bounded_int!(
    /// Denoising steps of the image stage, 1 to 50 (Schnell is distilled for 4).
    pub DenoiseSteps: u32, 1, 50, "a number of denoising steps"
);

bounded_int!(
    /// T5 tokens the prompt is padded or cut to, 1 to 512.
    pub T5Tokens: u32, 1, 512, "a number of T5 tokens"
);

/// Side of the generated square image in pixels: a multiple of 16 from 16 to 2048.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ImagePx(u32);

impl ImagePx {
    /// Checks a side in pixels.
    pub fn new(px: u32) -> Result<ImagePx, String> {
        if (16..=2048).contains(&px) && px % 16 == 0 {
            Ok(ImagePx(px))
        } else {
            Err(format!("expected a multiple of 16 from 16 to 2048, got {px}"))
        }
    }

    /// The side in pixels.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ImagePx {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i128::deserialize(d)?;
        let px = u32::try_from(v).map_err(|_| format!("expected a multiple of 16 from 16 to 2048, got {v}"));
        px.and_then(ImagePx::new).map_err(serde::de::Error::custom)
    }
}

/// Flux.1-Schnell's files: the transformer (Black Forest Labs' checkpoint layout), its two text
/// encoders and its autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map of Flux's files (transformer, vae, t5, clip) and settings")]
pub struct FluxModelConfig {
    /// `flux1-schnell.safetensors`, or a quantized `.gguf`.
    pub transformer: PathBuf,
    /// The transformer's architecture as JSON (candle's field names); default: the Schnell preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer_config: Option<PathBuf>,
    /// `ae.safetensors`.
    pub vae: PathBuf,
    /// The autoencoder's architecture as JSON; default: the Schnell preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_config: Option<PathBuf>,
    /// The T5 encoder (`text_encoder_2/`): weights, `config.json`, `tokenizer.json`.
    pub t5: TextEncoderFiles,
    /// The CLIP-L text encoder (`text_encoder/`): weights, `config.json`, `tokenizer.json`.
    pub clip: TextEncoderFiles,
    /// The dtype the weights are held in on the device.
    #[serde(default)]
    pub dtype: ModelDtype,
    /// Side of the square image in pixels. Default 512.
    #[serde(default = "default_image_px")]
    pub image_px: ImagePx,
    /// Denoising steps. Default 4.
    #[serde(default = "default_steps")]
    pub steps: DenoiseSteps,
    /// T5 tokens the prompt is padded or cut to. Default 256 (Schnell's).
    #[serde(default = "default_t5_tokens")]
    pub t5_tokens: T5Tokens,
}

fn default_image_px() -> ImagePx {
    ImagePx(512)
}

fn default_steps() -> DenoiseSteps {
    DenoiseSteps::new(4).expect("a valid default")
}

fn default_t5_tokens() -> T5Tokens {
    T5Tokens::new(256).expect("a valid default")
}

/// A Hugging Face text encoder directory's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map of a text encoder's files (weights, config, tokenizer)")]
pub struct TextEncoderFiles {
    /// `model.safetensors`, or the list of its shards (`model-00001-of-00002.safetensors`, ...).
    pub weights: WeightFiles,
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
}

/// One CLIP model's files, as published in a Hugging Face model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map of a CLIP model's files (weights, tokenizer, config) and dtype")]
pub struct ClipModelConfig {
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `config.json` (the architecture: widths, layers, heads).
    pub config: PathBuf,
    /// The dtype the weights are held in on the device.
    #[serde(default)]
    pub dtype: ModelDtype,
}

/// One weights file, or the shards of one: written as a path or as a list of paths.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFiles(pub Vec<PathBuf>);

impl From<PathBuf> for WeightFiles {
    fn from(path: PathBuf) -> Self {
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
            One(PathBuf),
            Many(Vec<PathBuf>),
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

    /// `f32`, `f16` or `bf16`, as config writes it.
    pub fn name(self) -> &'static str {
        match self {
            ModelDtype::F32 => "f32",
            ModelDtype::F16 => "f16",
            ModelDtype::Bf16 => "bf16",
        }
    }
}

bounded_f64!(
    /// A CLIPScore threshold, from 0 to 2.5: 2.5 × the cosine similarity, negatives counted as 0
    /// (Hessel et al., 2021; [`crate::verification::clip_score`]).
    pub ClipScore,
    |v| (0.0..=crate::verification::CLIP_SCORE_W).contains(&v),
    "a CLIPScore (2.5 × cosine similarity) from 0 to 2.5"
);

bounded_f64!(
    /// A share of the ensemble, from 0 to 1.
    pub Share,
    |v| (0.0..=1.0).contains(&v),
    "a share from 0 to 1"
);

bounded_f64!(
    /// A difference of two CLIPScores, from 0 to 2.5 (each score is from 0 to 2.5).
    pub ClipScoreGap,
    |v| (0.0..=crate::verification::CLIP_SCORE_W).contains(&v),
    "a difference of CLIPScores from 0 to 2.5"
);

bounded_int!(
    /// Keyframes the self-check samples from the video, 1 to 64.
    pub Keyframes: u32, 1, 64, "a number of keyframes"
);

/// Section `verification`: the dual CLIP self-check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map of the self-check settings (keyframes, b32_min, l14_min, b32_weight, outlier_gap)"
)]
pub struct VerificationConfig {
    /// Keyframes sampled evenly from the video.
    pub keyframes: Keyframes,
    /// ViT-B/32 CLIPScore needed to pass (the keyframes' mean of 2.5 × max(cosine, 0)); 0.70 is
    /// cosine 0.28, LAION-5B's ViT-B/32 filter (docs/decisions.md D16).
    pub b32_min: ClipScore,
    /// ViT-L/14 CLIPScore needed to pass; 0.60 is cosine 0.24, below mmc4's published ViT-L/14
    /// matched pairs (0.28, 0.32).
    pub l14_min: ClipScore,
    /// Weight of ViT-B/32 in the ensemble score (ViT-L/14 gets 1 minus this).
    pub b32_weight: Share,
    /// Flag an outlier when the two models' CLIPScores differ by more than this.
    pub outlier_gap: ClipScoreGap,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            keyframes: Keyframes::new(5).expect("a valid default"),
            b32_min: ClipScore::new(0.70).expect("a valid default"),
            l14_min: ClipScore::new(0.60).expect("a valid default"),
            b32_weight: Share::new(0.4).expect("a valid default"),
            outlier_gap: ClipScoreGap::new(0.30).expect("a valid default"),
        }
    }
}

bounded_int!(
    /// Slots waiting in `vortex serve`'s queue, 1 to 1024 (a slot airs every 45 s: 1024 is
    /// half a day of schedule, far more than a director queues ahead).
    pub QueueMax: u32, 1, 1024, "a queue length"
);

bounded_f64!(
    /// Seconds a stopping service gives the running slot to finish, from 0 to 600.
    pub GraceSeconds,
    |v| (0.0..=600.0).contains(&v),
    "a number of seconds from 0 to 600"
);

/// Section `service`: `vortex serve` (docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map with out_dir, queue_max and shutdown_grace_s")]
pub struct ServiceConfig {
    /// The folder of finished slots' folders (`slot-ID`), relative to the config file; found
    /// again at start-up.
    pub out_dir: PathBuf,
    /// Slots that may wait for the GPU; a request beyond it is answered 429.
    pub queue_max: QueueMax,
    /// On SIGTERM the running slot gets this long to finish, then it is cancelled.
    pub shutdown_grace_s: GraceSeconds,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            out_dir: PathBuf::from("slots"),
            // Eight slots are six minutes of schedule queued ahead.
            queue_max: QueueMax::new(8).expect("a valid default"),
            // One slot's length: a slot nearly done gets to finish.
            shutdown_grace_s: GraceSeconds::new(45.0).expect("a valid default"),
        }
    }
}
