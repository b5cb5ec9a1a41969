//! LivePortrait end to end, driven by audio: the actor image and the slot's speech in, 512 × 512
//! frames at 24 fps out.
//!
//! 1. **Crop.** The actor is a Flux portrait, so a fixed face crop replaces face detection: the
//!    square of side [`CROP_SIDE`] × the image's shorter side, centred horizontally, its centre at
//!    [`CROP_CENTRE_Y`] × the height (portraits put the face above the middle), resized to
//!    256 × 256 (bilinear) and scaled to [0, 1].
//! 2. **Source, once.** The appearance extractor F gives the 32 × 16 × 64 × 64 feature volume;
//!    the motion extractor M gives the canonical keypoints, expression, pose, scale and
//!    translation; Eqn. 2 gives the source keypoints `x_s`.
//! 3. **Per frame** ([`driver`](super::driver) says what each frame does): the source's pose plus
//!    the frame's sway rotates the canonical keypoints (the source's expression, scale and
//!    translation kept); the lip network adds the delta for the frame's lip opening and the eye
//!    network the delta for its eye opening (both against the source's own ratios, fixed at
//!    [`SOURCE_LIP_RATIO`] and [`SOURCE_EYE_RATIO`] since no landmark detector measures them);
//!    the stitching network corrects the result; the warping module W and the SPADE generator G
//!    make the frame.
//! 4. Frames are made [`LivePortraitPipeline::batch_frames`] at a time; the cancellation token is
//!    checked before each batch.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vortex::recipe::Expression;

use super::appearance::{self, AppearanceFeatureExtractor};
use super::driver::{self, FrameMotion, FPS};
use super::keypoints::{get_rotation_matrix, pose_degrees, retarget_eye, retarget_lip, stitching, transform_keypoint};
use super::motion::{self, MotionExtractor};
use super::spade::{self, SpadeDecoder};
use super::stitching::{self as stitch, StitchingRetargeting, EYE_PART, LIP_PART, STITCHING_PART};
use super::warping::{self, WarpingNetwork};
use crate::config::LivePortraitModelConfig;
use crate::executor::{input_error, CancelToken, ModelError};
use crate::loading::{mmap_safetensors, quote, read_pth};
use crate::media::{Frame, Video};
use crate::LoadError;

/// Where LivePortrait's weights come from, for load errors.
pub const PUBLISHED: &str = "the published LivePortrait checkpoints (KwaiVGI/LivePortrait's `pretrained_weights/liveportrait/`: \
     base_models/*.pth and retargeting_models/stitching_retargeting_module.pth), or safetensors conversions under the same \
     names; docs/real-mode.md";
/// A LivePortrait checkpoint is at most this large (the largest published one is about 180 MB).
pub const MAX_PTH_BYTES: u64 = 1 << 30;
/// The crop's side as a share of the actor image's shorter side.
pub const CROP_SIDE: f32 = 0.8;
/// The crop's centre as a share of the image's height from the top.
pub const CROP_CENTRE_Y: f32 = 0.45;
/// The lip-open ratio the source is taken to have (a closed mouth).
pub const SOURCE_LIP_RATIO: f32 = 0.0;
/// The lip-open ratio of a fully open mouth (the reference's retargeting slider ends at 0.8).
pub const OPEN_LIP_RATIO: f32 = 0.8;
/// The eye-open ratio the source's eyes are taken to have, and the open target.
pub const SOURCE_EYE_RATIO: f32 = 0.35;

/// The five networks' files under `models.liveportrait.weights`: (network, path without the
/// `.pth` / `.safetensors` extension).
pub const FILES: [(&str, &str); 5] = [
    ("appearance_feature_extractor", "base_models/appearance_feature_extractor"),
    ("motion_extractor", "base_models/motion_extractor"),
    ("warping_module", "base_models/warping_module"),
    ("spade_generator", "base_models/spade_generator"),
    ("stitching_retargeting_module", "retargeting_models/stitching_retargeting_module"),
];

/// The five networks' configs and the input side.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// F.
    pub appearance: appearance::Config,
    /// M.
    pub motion: motion::Config,
    /// W.
    pub warping: warping::Config,
    /// G.
    pub spade: spade::Config,
    /// S.
    pub stitching: stitch::Config,
    /// Side of the square crop F and M read (256 in the published model).
    pub input_size: u32,
}

impl Config {
    /// The published model (`src/config/models.yaml`).
    pub fn liveportrait() -> Self {
        Config {
            appearance: appearance::Config::liveportrait(),
            motion: motion::Config::liveportrait(),
            warping: warping::Config::liveportrait(),
            spade: spade::Config::liveportrait(),
            stitching: stitch::Config::liveportrait(),
            input_size: 256,
        }
    }
}

/// What the source image gives once: its feature volume and keypoint information.
#[derive(Debug, Clone)]
pub struct Source {
    /// F's volume `(1, 32, 16, 64, 64)`.
    pub volume: Tensor,
    /// Canonical keypoints `(1, N, 3)`.
    pub canonical: Tensor,
    /// Expression deltas `(1, N, 3)`.
    pub exp: Tensor,
    /// Pitch, yaw and roll in degrees, `(1,)` each.
    pub pose: (Tensor, Tensor, Tensor),
    /// Scale `(1, 1)`.
    pub scale: Tensor,
    /// Translation `(1, 3)`.
    pub t: Tensor,
    /// Source keypoints `x_s` `(1, N, 3)` (Eqn. 2).
    pub keypoints: Tensor,
}

/// LivePortrait's five networks, ready to animate.
pub struct LivePortraitPipeline {
    cfg: Config,
    appearance: AppearanceFeatureExtractor,
    motion: MotionExtractor,
    warping: WarpingNetwork,
    generator: SpadeDecoder,
    stitching: StitchingRetargeting,
    device: Device,
    batch_frames: usize,
}

impl LivePortraitPipeline {
    /// Builds the networks from one `VarBuilder` per file of [`FILES`], in that order (the
    /// stitching file's with its three parts as prefixes); `batch_frames` frames are generated
    /// at a time.
    pub fn new(cfg: Config, files: [VarBuilder; 5], batch_frames: usize) -> candle_core::Result<Self> {
        if batch_frames == 0 {
            candle_core::bail!("LivePortrait needs at least 1 frame per batch");
        }
        let [f, m, w, g, s] = files;
        Ok(LivePortraitPipeline {
            device: f.device().clone(),
            appearance: AppearanceFeatureExtractor::new(&cfg.appearance, f)?,
            motion: MotionExtractor::new(&cfg.motion, m)?,
            warping: WarpingNetwork::new(&cfg.warping, w)?,
            generator: SpadeDecoder::new(&cfg.spade, g)?,
            stitching: StitchingRetargeting::new(&cfg.stitching, s)?,
            batch_frames,
            cfg,
        })
    }

    /// Loads the published checkpoints (or their safetensors conversions, preferred when both
    /// exist) from `entry.weights` (relative to `base_dir`).
    pub fn load(entry: &LivePortraitModelConfig, base_dir: &Path, device: &Device) -> Result<Self, LoadError> {
        let dir = base_dir.join(&entry.weights);
        let file = |i: usize| -> Result<VarBuilder<'static>, LoadError> {
            let path = checkpoint(&dir, FILES[i].1);
            if path.extension().is_some_and(|e| e == "safetensors") {
                return Ok(mmap_safetensors("liveportrait", &[&path], DType::F32, device, PUBLISHED)?.0);
            }
            // The stitching file holds three state dicts; the others are one each.
            let parts = if i == 4 { vec![Some(STITCHING_PART), Some(LIP_PART), Some(EYE_PART)] } else { vec![None] };
            let tensors = read_pth("liveportrait", &path, &parts, MAX_PTH_BYTES, PUBLISHED)?;
            Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
        };
        let (cfg, what) = match &entry.architecture {
            None => (Config::liveportrait(), "LivePortrait's weights".to_string()),
            Some(arch) => {
                let path = base_dir.join(arch);
                (read_architecture(&path)?, format!("the weights of the architecture in {}", path.display()))
            }
        };
        let files = [file(0)?, file(1)?, file(2)?, file(3)?, file(4)?];
        let batch = entry.batch_frames.get() as usize;
        LivePortraitPipeline::new(cfg, files, batch)
            .map_err(|e| LoadError::file("liveportrait", &dir, format!("not {what}: {}", quote(e)), PUBLISHED))
    }

    /// Frames generated per batch.
    pub fn batch_frames(&self) -> usize {
        self.batch_frames
    }

    /// The configs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The warping module W (for benchmarks that time the networks one by one).
    pub fn warping(&self) -> &WarpingNetwork {
        &self.warping
    }

    /// The SPADE generator G (for benchmarks that time the networks one by one).
    pub fn generator(&self) -> &SpadeDecoder {
        &self.generator
    }

    /// The fixed face crop of `image`, resized to the networks' input: `(1, 3, S, S)` in [0, 1].
    pub fn crop(&self, image: &Frame) -> Result<Tensor, ModelError> {
        let (w, h) = image.dimensions();
        if w < 16 || h < 16 {
            return Err(input_error(format!("the actor image is {w}×{h} pixels; at least 16×16 is needed")));
        }
        let side = ((w.min(h) as f32 * CROP_SIDE).round() as u32).max(1);
        let x = (w - side) / 2;
        let centre = (h as f32 * CROP_CENTRE_Y).round() as i64;
        let y = (centre - i64::from(side) / 2).clamp(0, i64::from(h - side)) as u32;
        let cropped = image::imageops::crop_imm(image, x, y, side, side).to_image();
        let s = self.cfg.input_size;
        let resized = image::imageops::resize(&cropped, s, s, image::imageops::FilterType::Triangle);
        let values: Vec<f32> = resized.into_raw().into_iter().map(|v| f32::from(v) / 255.0).collect();
        let hwc = Tensor::from_vec(values, (s as usize, s as usize, 3), &self.device)?;
        Ok(hwc.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()?)
    }

    /// Runs F and M on the source crop `(1, 3, S, S)`.
    pub fn source(&self, crop: &Tensor) -> Result<Source, ModelError> {
        let volume = self.appearance.forward(crop)?;
        let m = self.motion.forward(crop)?;
        let (pitch, yaw, roll) = pose_degrees(&m.pitch, &m.yaw, &m.roll)?;
        let n = self.cfg.motion.num_kp;
        let canonical = m.kp.reshape((1, n, 3))?;
        let exp = m.exp.reshape((1, n, 3))?;
        let rotation = get_rotation_matrix(&pitch, &yaw, &roll)?;
        let keypoints = transform_keypoint(&canonical, &rotation, &exp, &m.scale, &m.t)?;
        Ok(Source { volume, canonical, exp, pose: (pitch, yaw, roll), scale: m.scale, t: m.t, keypoints })
    }

    /// The driving keypoints `(B, N, 3)` of `frames` (stitched), from `source`.
    pub fn driving_keypoints(&self, source: &Source, frames: &[FrameMotion]) -> Result<Tensor, ModelError> {
        let b = frames.len();
        let column = |f: &dyn Fn(&FrameMotion) -> f32| {
            Tensor::from_vec(frames.iter().map(f).collect::<Vec<_>>(), b, &self.device)
        };
        let (p, y, r) = &source.pose;
        let pitch = p.broadcast_add(&column(&|m| m.pitch_deg)?)?;
        let yaw = y.broadcast_add(&column(&|m| m.yaw_deg)?)?;
        let roll = r.broadcast_add(&column(&|m| m.roll_deg)?)?;
        let rotation = get_rotation_matrix(&pitch, &yaw, &roll)?;
        let n = self.cfg.motion.num_kp;
        let repeat = |t: &Tensor| -> candle_core::Result<Tensor> {
            let mut dims = t.dims().to_vec();
            dims[0] = b;
            t.broadcast_as(dims)?.contiguous()
        };
        let driving = transform_keypoint(
            &repeat(&source.canonical)?,
            &rotation,
            &repeat(&source.exp)?,
            &repeat(&source.scale)?,
            &repeat(&source.t)?,
        )?;
        let lip: Vec<f32> =
            frames.iter().flat_map(|m| [SOURCE_LIP_RATIO, m.lip_open.clamp(0.0, 1.0) * OPEN_LIP_RATIO]).collect();
        let eye: Vec<f32> = frames
            .iter()
            .flat_map(|m| [SOURCE_EYE_RATIO, SOURCE_EYE_RATIO, m.eye_open.clamp(0.0, 1.0) * SOURCE_EYE_RATIO])
            .collect();
        let lip = Tensor::from_vec(lip, (b, 2), &self.device)?;
        let eye = Tensor::from_vec(eye, (b, 3), &self.device)?;
        let driving = (driving
            + retarget_lip(&self.stitching, &source.keypoints, &lip)?
            + retarget_eye(&self.stitching, &source.keypoints, &eye)?)?;
        debug_assert_eq!(driving.dims(), [b, n, 3]);
        Ok(stitching(&self.stitching, &source.keypoints, &driving)?)
    }

    /// The frames of `motion`, `batch_frames` at a time, calling `on_batch(frames_done)` after
    /// each batch; cancellation is checked before each.
    pub fn animate(
        &self,
        source: &Source,
        motion: &[FrameMotion],
        cancel: &CancelToken,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Frame>, ModelError> {
        let mut frames = Vec::with_capacity(motion.len());
        for batch in motion.chunks(self.batch_frames) {
            cancel.check()?;
            let driving = self.driving_keypoints(source, batch)?;
            let b = batch.len();
            let mut dims = source.volume.dims().to_vec();
            dims[0] = b;
            let volume = source.volume.broadcast_as(dims)?.contiguous()?;
            let kp_source = source.keypoints.broadcast_as(driving.dims())?.contiguous()?;
            let warped = self.warping.forward(&volume, &driving, &kp_source)?;
            let images = self.generator.forward(&warped.out)?;
            frames.extend(to_frames(&images)?);
            on_batch(frames.len());
        }
        Ok(frames)
    }

    /// The whole video stage: `image` animated by `samples` (mono, `sample_rate`) with Kokoro's
    /// `phonemes` (may be empty), the recipe's `expression` and `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn video(
        &self,
        image: &Frame,
        samples: &[f32],
        sample_rate: u32,
        phonemes: &[crate::kokoro::pipeline::PhonemeTiming],
        expression: &Expression,
        seed: u64,
        cancel: &CancelToken,
    ) -> Result<Video, ModelError> {
        let motion = driver::drive(samples, sample_rate, phonemes, expression, seed).map_err(input_error)?;
        if motion.is_empty() {
            return Err(input_error("the audio is empty: no frames to animate"));
        }
        cancel.check()?;
        let source = self.source(&self.crop(image)?)?;
        let frames = self.animate(&source, &motion, cancel, |_| {})?;
        Ok(Video { frames, fps: FPS as f32 })
    }
}

/// What an architecture error points to.
pub const ARCHITECTURE_HELP: &str = "models.liveportrait.architecture names a file in the layout of LivePortrait's \
     src/config/models.yaml; docs/real-mode.md lists its keys and docs/reliability.md their bounds";

/// Reads the architecture file `models.liveportrait.architecture` names (at most
/// [`vortex::yaml::MAX_YAML_BYTES`]).
pub fn read_architecture(path: &Path) -> Result<Config, LoadError> {
    let refuse = |reason: String| {
        LoadError::file("liveportrait", path, format!("models.liveportrait.architecture: {reason}"), ARCHITECTURE_HELP)
    };
    let text = crate::loading::read_text_limited(path, vortex::yaml::MAX_YAML_BYTES, "an architecture file")
        .map_err(refuse)?;
    super::architecture::from_yaml(&path.display().to_string(), &text).map_err(|e| refuse(e.to_string()))
}

/// Generator output `(B, 3, H, W)` in [0, 1] to RGB frames; a non-finite value is invalid output.
fn to_frames(images: &Tensor) -> Result<Vec<Frame>, ModelError> {
    let (b, c, h, w) = images.dims4()?;
    if c != 3 {
        return Err(ModelError::InvalidOutput(format!("the generator made {c} channels, not 3")));
    }
    let hwc = images.permute((0, 2, 3, 1))?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    if let Some(bad) = hwc.iter().find(|v| !v.is_finite()) {
        return Err(ModelError::InvalidOutput(format!("the generator made a non-finite value ({bad})")));
    }
    let per = h * w * 3;
    (0..b)
        .map(|i| {
            let bytes = hwc[i * per..(i + 1) * per].iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
            Frame::from_raw(w as u32, h as u32, bytes)
                .ok_or_else(|| ModelError::InvalidOutput("a frame of the wrong size".into()))
        })
        .collect()
}

/// The file of checkpoint `stem` under `dir`: its `.safetensors` conversion when there is one,
/// else the published `.pth` (whose absence the reader then reports).
fn checkpoint(dir: &Path, stem: &str) -> std::path::PathBuf {
    let safetensors = dir.join(format!("{stem}.safetensors"));
    if safetensors.is_file() {
        safetensors
    } else {
        dir.join(format!("{stem}.pth"))
    }
}

/// Bytes once resident (f32): the checkpoints' sizes, within their pickles' few kilobytes.
pub fn resident_size(entry: &LivePortraitModelConfig, base_dir: &Path) -> Result<u64, LoadError> {
    let dir = base_dir.join(&entry.weights);
    let mut total = 0;
    for (_, stem) in FILES {
        let path = checkpoint(&dir, stem);
        let meta = std::fs::metadata(&path).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "missing (nor a .safetensors)".to_string(),
                _ => e.to_string(),
            };
            LoadError::file("liveportrait", &path, reason, PUBLISHED)
        })?;
        total += meta.len();
    }
    Ok(total)
}
