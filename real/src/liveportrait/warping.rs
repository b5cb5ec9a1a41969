//! LivePortrait's warping module W: the reference's `src/modules/warping_network.py`
//! `WarpingNetwork`, loaded from the published `warping_module.pth` (a plain state dict).
//!
//! The [dense motion network](super::dense_motion) turns the source and driving keypoints into
//! a deformation grid and an occlusion map; the source's feature volume `(B, 32, 16, 64, 64)` is
//! resampled along the grid (trilinear `grid_sample`), its depth folded into the channels (512),
//! brought to 256 channels by `third` (3×3 convolution, batch norm, LeakyReLU) and `fourth`
//! (1×1 convolution), and multiplied by the occlusion map: the SPADE generator's input,
//! `(B, 256, 64, 64)`.
//!
//! ```
//! use vortex_real::liveportrait::warping::Config;
//!
//! let cfg = Config::liveportrait();
//! cfg.validate()?;
//! assert_eq!(cfg.out_channels(), 256);
//! assert_eq!(cfg.dense_motion().hourglass_out_filters(), 142);
//! // WarpingNetwork::new(&cfg, vb)?.forward(&feature_3d, &kp_driving, &kp_source)?.out
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::blocks::SameBlock2d;
use super::dense_motion::{self, DenseMotion, DenseMotionNetwork};
use crate::ops::{conv2d, grid_sample_3d, Conv2d};

/// models.yaml's `dense_motion_params`, the dense motion network's own sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseMotionParams {
    /// Width of the hourglass' first level.
    pub block_expansion: usize,
    /// Cap on the hourglass' widths.
    pub max_features: usize,
    /// Levels of the hourglass.
    pub num_blocks: usize,
    /// Depth of the feature volume.
    pub reshape_depth: usize,
    /// Channels the feature volume is compressed to for the sparse motions.
    pub compress: usize,
}

/// models.yaml's `warping_module_params`, under its field names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keypoints (21 in the published model).
    pub num_kp: usize,
    /// With `num_down_blocks`, the output width: `block_expansion · 2^num_down_blocks`.
    pub block_expansion: usize,
    /// Channels into `third`: the feature volume's channels times its depth.
    pub max_features: usize,
    /// See `block_expansion`.
    pub num_down_blocks: usize,
    /// Channels of the feature volume.
    pub reshape_channel: usize,
    /// Whether the dense motion network predicts an occlusion map (and the output is
    /// multiplied by it).
    pub estimate_occlusion_map: bool,
    /// The dense motion network's sizes.
    pub dense_motion_params: DenseMotionParams,
}

impl Config {
    /// The published model's: 21 keypoints, a 32 × 16 volume (512 channels folded) to 256
    /// output channels, with the occlusion map; the dense motion network's hourglass of 5
    /// levels from 32 to 1024 channels, compress 4.
    pub fn liveportrait() -> Self {
        Config {
            num_kp: 21,
            block_expansion: 64,
            max_features: 512,
            num_down_blocks: 2,
            reshape_channel: 32,
            estimate_occlusion_map: true,
            dense_motion_params: DenseMotionParams {
                block_expansion: 32,
                max_features: 1024,
                num_blocks: 5,
                reshape_depth: 16,
                compress: 4,
            },
        }
    }

    /// Channels of the output (`block_expansion · 2^num_down_blocks`).
    pub fn out_channels(&self) -> usize {
        self.block_expansion << self.num_down_blocks
    }

    /// The dense motion network's constructor arguments, as `WarpingNetwork` passes them.
    pub fn dense_motion(&self) -> dense_motion::Config {
        let p = &self.dense_motion_params;
        dense_motion::Config {
            block_expansion: p.block_expansion,
            num_blocks: p.num_blocks,
            max_features: p.max_features,
            num_kp: self.num_kp,
            feature_channel: self.reshape_channel,
            reshape_depth: p.reshape_depth,
            compress: p.compress,
            estimate_occlusion_map: self.estimate_occlusion_map,
        }
    }

    /// Refuses zero sizes and a `max_features` other than the folded volume's channels
    /// (`reshape_channel · reshape_depth`), which `third` would refuse at the first frame.
    pub fn validate(&self) -> Result<()> {
        self.dense_motion().validate()?;
        if self.block_expansion == 0 || self.num_down_blocks > 16 {
            bail!(
                "warping config: block_expansion {} and num_down_blocks {}; need at least 1 and at most 16",
                self.block_expansion,
                self.num_down_blocks
            );
        }
        let folded = self.reshape_channel * self.dense_motion_params.reshape_depth;
        if self.max_features != folded {
            bail!(
                "warping config: max_features {} must be reshape_channel × reshape_depth = {folded}",
                self.max_features
            );
        }
        Ok(())
    }
}

/// What the warping module returns.
#[derive(Debug, Clone)]
pub struct Warped {
    /// The warped features, `(B, out_channels, H, W)` (the generator's input), already
    /// multiplied by the occlusion map when there is one.
    pub out: Tensor,
    /// The dense motion network's prediction: `mask`, `deformation`, `occlusion_map`.
    pub motion: DenseMotion,
}

/// `WarpingNetwork` (with its dense motion network; the published model always has one).
#[derive(Debug, Clone)]
pub struct WarpingNetwork {
    cfg: Config,
    dense_motion_network: DenseMotionNetwork,
    third: SameBlock2d,
    fourth: Conv2d,
}

impl WarpingNetwork {
    /// Its dense motion network (for benchmarks that time the parts one by one).
    pub fn dense_motion(&self) -> &DenseMotionNetwork {
        &self.dense_motion_network
    }

    /// Loads `dense_motion_network.*`, `third.*` and `fourth.*`, `warping_module.pth`'s names.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let dense_motion_network = DenseMotionNetwork::new(&cfg.dense_motion(), vb.pp("dense_motion_network"))?;
        let out = cfg.out_channels();
        let third = SameBlock2d::new(cfg.max_features, out, 3, 1, true, vb.pp("third"))?;
        let fourth = conv2d(out, out, 1, Conv2dConfig::default(), vb.pp("fourth"))?;
        Ok(Self { cfg: cfg.clone(), dense_motion_network, third, fourth })
    }

    /// The module's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The forward pass: `feature_3d` `(B, reshape_channel, reshape_depth, H, W)` (H and W
    /// multiples of `2^num_blocks`), keypoints `(B, num_kp, 3)` in the volume's coordinates.
    pub fn forward(&self, feature_3d: &Tensor, kp_driving: &Tensor, kp_source: &Tensor) -> Result<Warped> {
        let motion = self.dense_motion_network.forward(feature_3d, kp_driving, kp_source)?;
        self.warp(feature_3d, motion)
    }

    /// The rest of [`Self::forward`] once the dense motion network has run: deform the volume,
    /// `third`, `fourth`, the occlusion map.
    pub fn warp(&self, feature_3d: &Tensor, motion: DenseMotion) -> Result<Warped> {
        let warped = grid_sample_3d(feature_3d, &motion.deformation)?;
        let (b, c, d, h, w) = warped.dims5()?;
        let out = self.fourth.forward(&self.third.forward(&warped.reshape((b, c * d, h, w))?)?)?;
        let out = match &motion.occlusion_map {
            Some(occlusion) => out.broadcast_mul(occlusion)?,
            None => out,
        };
        Ok(Warped { out, motion })
    }
}
