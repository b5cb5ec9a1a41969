//! LivePortrait's architecture file, `models.liveportrait.architecture`: the layout of the
//! reference's `src/config/models.yaml` (`model_params:` with
//! `appearance_feature_extractor_params`, `motion_extractor_params`, `warping_module_params`,
//! `spade_generator_params`, `stitching_retargeting_module_params`, under the reference's own
//! keys), read into [`Config`] with every size bounded and the five networks checked against
//! each other, so that a small random-weight LivePortrait (`vortex models tiny`) loads through
//! the same code as the published one.
//!
//! This project's keys, each defaulting to the published value: `input_size` at the top level
//! (the crop's side, 256, which the reference sets in its inference config rather than here);
//! `num_bins`, `in_chans`, `depths` and `dims` in `motion_extractor_params` (ConvNeXt-V2's
//! arguments, which the reference's `backbone: convnextv2_tiny` fixes); `hidden` and
//! `out_channels` in `spade_generator_params` (fixed in the reference's code). Any other key
//! is refused.
//!
//! ```
//! use vortex_real::liveportrait::{architecture, pipeline::Config};
//! let yaml = architecture::to_yaml(&Config::liveportrait());
//! assert_eq!(architecture::from_yaml("models.yaml", &yaml).unwrap(), Config::liveportrait());
//! ```

use serde::{Deserialize, Serialize};

use super::pipeline::Config;
use super::{appearance, motion, spade, stitching, warping};

/// Largest width (channels, features, MLP sizes) an architecture file may give: four times the
/// published model's widest (the dense motion network's 1024).
pub const MAX_WIDTH: usize = 4096;
/// Most keypoints (published 21).
pub const MAX_KP: usize = 128;
/// Most pose bins (published 66).
pub const MAX_BINS: usize = 360;
/// Largest feature volume depth (published 16).
pub const MAX_DEPTH: usize = 64;
/// Most down blocks of F and W, and levels of the dense motion hourglass (published 2 and 5).
pub const MAX_LEVELS: usize = 6;
/// Most residual blocks, ConvNeXt blocks per stage, and MLP hidden layers (published at most 9).
pub const MAX_BLOCKS: usize = 16;
/// Most ConvNeXt stages (published 4).
pub const MAX_STAGES: usize = 6;
/// Smallest and largest crop side (published 256): the activations grow with its square.
pub const INPUT_SIZE_RANGE: (u32, u32) = (16, 512);
/// The published motion extractor's backbone, the only one the reference defines.
pub const BACKBONE: &str = "convnextv2_tiny";

/// `models.yaml` as the reference writes it, plus `input_size`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "LivePortrait's models.yaml: a map with model_params (and optionally input_size)"
)]
struct File {
    model_params: ModelParams,
    #[serde(default = "published_input_size")]
    input_size: u32,
}

fn published_input_size() -> u32 {
    Config::liveportrait().input_size
}

/// `model_params`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with appearance_feature_extractor_params, motion_extractor_params, warping_module_params, \
                 spade_generator_params, stitching_retargeting_module_params"
)]
struct ModelParams {
    appearance_feature_extractor_params: appearance::Config,
    motion_extractor_params: MotionParams,
    warping_module_params: warping::Config,
    spade_generator_params: spade::Config,
    stitching_retargeting_module_params: stitching::Config,
}

/// `motion_extractor_params`: the reference's `num_kp` and `backbone`, and ConvNeXt-V2's own
/// arguments where they differ from the backbone's.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with num_kp and backbone (and optionally num_bins, in_chans, depths, dims)"
)]
struct MotionParams {
    num_kp: usize,
    backbone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num_bins: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_chans: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    depths: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dims: Option<Vec<usize>>,
}

/// Why an architecture file was refused: the key (dotted, `[i]` for list entries) and what is
/// wrong with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchitectureError {
    /// The key, e.g. `model_params.warping_module_params.num_kp`.
    pub key: String,
    /// What is wrong, with the value and the allowed range.
    pub reason: String,
}

impl std::fmt::Display for ArchitectureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() || self.key == "(top level)" {
            f.write_str(&self.reason)
        } else {
            write!(f, "key {}: {}", self.key, self.reason)
        }
    }
}

fn refuse(key: impl Into<String>, reason: impl Into<String>) -> ArchitectureError {
    ArchitectureError { key: key.into(), reason: reason.into() }
}

/// Prefixes of the five sections' keys.
const F: &str = "model_params.appearance_feature_extractor_params";
const M: &str = "model_params.motion_extractor_params";
const W: &str = "model_params.warping_module_params";
const G: &str = "model_params.spade_generator_params";
const S: &str = "model_params.stitching_retargeting_module_params";

/// `value` at `section.key` must be from `lo` to `hi`.
fn within(section: &str, key: &str, value: usize, lo: usize, hi: usize) -> Result<usize, ArchitectureError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(refuse(format!("{section}.{key}"), format!("{value}; expected a whole number from {lo} to {hi}")))
    }
}

/// A list at `section.key` of `len` entries, each from `lo` to `hi`.
fn list_within(
    section: &str,
    key: &str,
    list: &[usize],
    len: (usize, usize),
    lo: usize,
    hi: usize,
) -> Result<(), ArchitectureError> {
    if !(len.0..=len.1).contains(&list.len()) {
        return Err(refuse(
            format!("{section}.{key}"),
            format!("{} entries; expected {} to {}", list.len(), len.0, len.1),
        ));
    }
    list.iter().enumerate().try_for_each(|(i, &v)| within(section, &format!("{key}[{i}]"), v, lo, hi).map(|_| ()))
}

/// `section.key` must equal what another network's sizes imply.
fn agrees(section: &str, key: &str, value: usize, want: usize, why: &str) -> Result<(), ArchitectureError> {
    if value == want {
        Ok(())
    } else {
        Err(refuse(format!("{section}.{key}"), format!("{value}; must be {want} ({why})")))
    }
}

/// Reads an architecture file's text; `origin` names it in errors (parse errors keep their line
/// and column).
pub fn from_yaml(origin: &str, text: &str) -> Result<Config, ArchitectureError> {
    let file: File = vortex::yaml::parse(origin, text).map_err(|e| match e {
        vortex::yaml::ConfigError::Invalid { key, message, .. } => refuse(key, message),
        other => refuse("", other.to_string()),
    })?;
    to_config(file)
}

/// The file's values as the pipeline's config, every size checked.
fn to_config(f: File) -> Result<Config, ArchitectureError> {
    let p = f.model_params;
    let a = p.appearance_feature_extractor_params;
    agrees(F, "image_channel", a.image_channel, 3, "the crop is RGB")?;
    within(F, "block_expansion", a.block_expansion, 1, MAX_WIDTH)?;
    within(F, "num_down_blocks", a.num_down_blocks, 1, MAX_LEVELS)?;
    within(F, "max_features", a.max_features, 1, MAX_WIDTH)?;
    within(F, "reshape_channel", a.reshape_channel, 1, MAX_WIDTH)?;
    within(F, "reshape_depth", a.reshape_depth, 1, MAX_DEPTH)?;
    within(F, "num_resblocks", a.num_resblocks, 0, MAX_BLOCKS)?;
    a.validate().map_err(|e| refuse(F, e.to_string()))?;

    let m = p.motion_extractor_params;
    let published = motion::Config::liveportrait();
    if m.backbone != BACKBONE {
        return Err(refuse(
            format!("{M}.backbone"),
            format!("{}; the reference defines only {BACKBONE}", crate::loading::quote(&m.backbone)),
        ));
    }
    let num_kp = within(M, "num_kp", m.num_kp, 1, MAX_KP)?;
    let in_chans = m.in_chans.unwrap_or(published.in_channels);
    agrees(M, "in_chans", in_chans, 3, "the crop is RGB")?;
    let motion = motion::Config {
        num_kp,
        num_bins: within(M, "num_bins", m.num_bins.unwrap_or(published.num_bins), 1, MAX_BINS)?,
        in_channels: in_chans,
        depths: m.depths.unwrap_or(published.depths),
        dims: m.dims.unwrap_or(published.dims),
    };
    list_within(M, "depths", &motion.depths, (1, MAX_STAGES), 0, MAX_BLOCKS)?;
    list_within(M, "dims", &motion.dims, (1, MAX_STAGES), 1, MAX_WIDTH)?;
    agrees(M, "dims", motion.dims.len(), motion.depths.len(), "one width per stage of depths: its length")?;
    motion.validate().map_err(|e| refuse(M, e.to_string()))?;

    let w = p.warping_module_params;
    let d = &w.dense_motion_params;
    agrees(W, "num_kp", w.num_kp, num_kp, "motion_extractor_params.num_kp: the keypoints W reads are M's")?;
    within(W, "block_expansion", w.block_expansion, 1, MAX_WIDTH)?;
    within(W, "max_features", w.max_features, 1, MAX_WIDTH)?;
    within(W, "num_down_blocks", w.num_down_blocks, 1, MAX_LEVELS)?;
    within(W, "reshape_channel", w.reshape_channel, 1, MAX_WIDTH)?;
    let dm = format!("{W}.dense_motion_params");
    within(&dm, "block_expansion", d.block_expansion, 1, MAX_WIDTH)?;
    within(&dm, "max_features", d.max_features, 1, MAX_WIDTH)?;
    within(&dm, "num_blocks", d.num_blocks, 1, MAX_LEVELS)?;
    within(&dm, "reshape_depth", d.reshape_depth, 1, MAX_DEPTH)?;
    within(&dm, "compress", d.compress, 1, MAX_WIDTH)?;
    let volume = "the feature volume W warps is F's";
    agrees(W, "reshape_channel", w.reshape_channel, a.reshape_channel, volume)?;
    agrees(&dm, "reshape_depth", d.reshape_depth, a.reshape_depth, volume)?;
    w.validate().map_err(|e| refuse(W, e.to_string()))?;

    let g = p.spade_generator_params;
    within(G, "upscale", g.upscale, 0, 2)?;
    within(G, "block_expansion", g.block_expansion, 1, MAX_WIDTH)?;
    within(G, "max_features", g.max_features, 1, MAX_WIDTH)?;
    within(G, "num_down_blocks", g.num_down_blocks, 1, MAX_LEVELS)?;
    within(G, "hidden", g.hidden, 1, MAX_WIDTH)?;
    within(G, "out_channels", g.out_channels, 1, MAX_WIDTH)?;
    g.validate().map_err(|e| refuse(G, e.to_string()))?;
    let warped = w.block_expansion.checked_shl(w.num_down_blocks as u32).unwrap_or(usize::MAX);
    if g.input_channels() != warped {
        return Err(refuse(
            G,
            format!(
                "G reads min(max_features, block_expansion × 2^num_down_blocks) = {} channels, but W makes {warped} \
                 (warping_module_params.block_expansion × 2^num_down_blocks)",
                g.input_channels()
            ),
        ));
    }

    let s = p.stitching_retargeting_module_params;
    let k3 = 3 * num_kp;
    let keypoints = "sizes follow motion_extractor_params.num_kp";
    for (name, mlp, input, output) in
        [("stitching", &s.stitching, 2 * k3, k3 + 2), ("lip", &s.lip, k3 + 2, k3), ("eye", &s.eye, k3 + 3, k3)]
    {
        let section = format!("{S}.{name}");
        agrees(&section, "input_size", mlp.input_size, input, keypoints)?;
        agrees(&section, "output_size", mlp.output_size, output, keypoints)?;
        list_within(&section, "hidden_sizes", &mlp.hidden_sizes, (1, MAX_BLOCKS), 1, MAX_WIDTH)?;
    }
    s.validate().map_err(|e| refuse(S, e.to_string()))?;

    let (lo, hi) = INPUT_SIZE_RANGE;
    let side = f.input_size;
    if !(lo..=hi).contains(&side) {
        return Err(refuse("input_size", format!("{side}; expected a whole number from {lo} to {hi}")));
    }
    // F halves the crop num_down_blocks times; the dense motion hourglass halves that volume
    // num_blocks times more and must come back to the same size.
    let step = 1u32 << (a.num_down_blocks + d.num_blocks);
    if side % step != 0 {
        return Err(refuse(
            "input_size",
            format!(
                "{side}; must be a multiple of {step} (2^(appearance num_down_blocks + dense_motion_params.num_blocks))"
            ),
        ));
    }
    // ConvNeXt's stem divides the side by 4 and each later stage by 2.
    let smallest = 4u32 << (motion.dims.len() - 1);
    if side < smallest {
        return Err(refuse(
            "input_size",
            format!("{side}; the motion extractor's {} stages need at least {smallest}", motion.dims.len()),
        ));
    }
    Ok(Config { appearance: a, motion, warping: w, spade: g, stitching: s, input_size: side })
}

/// `cfg` as an architecture file in the reference's layout; this project's keys are left out
/// where they hold the published values, and `input_size` is always written.
pub fn to_yaml(cfg: &Config) -> String {
    let published = motion::Config::liveportrait();
    let m = &cfg.motion;
    let differs = |v: usize, d: usize| (v != d).then_some(v);
    let file = File {
        model_params: ModelParams {
            appearance_feature_extractor_params: cfg.appearance.clone(),
            motion_extractor_params: MotionParams {
                num_kp: m.num_kp,
                backbone: BACKBONE.to_string(),
                num_bins: differs(m.num_bins, published.num_bins),
                in_chans: differs(m.in_channels, published.in_channels),
                depths: (m.depths != published.depths).then(|| m.depths.clone()),
                dims: (m.dims != published.dims).then(|| m.dims.clone()),
            },
            warping_module_params: cfg.warping.clone(),
            spade_generator_params: cfg.spade.clone(),
            stitching_retargeting_module_params: cfg.stitching.clone(),
        },
        input_size: cfg.input_size,
    };
    vortex::yaml::to_text(&file)
}
