//! LivePortrait's appearance feature extractor F (the reference's `AppearanceFeatureExtractor` in
//! `modules/appearance_feature_extractor.py`): the source image through a `SameBlock2d`, two
//! `DownBlock2d`s (256 → 64 pixels a side) and a 1 × 1 convolution to 512 channels, viewed as a
//! 32-channel volume 16 deep, refined by six `ResBlock3d`s: the 32 × 16 × 64 × 64 features the
//! warping module deforms.
//!
//! Tensor names are the published `appearance_feature_extractor.pth`'s: `first.conv.weight`,
//! `down_blocks.1.norm.running_var`, `second.bias`, `resblocks_3d.3dr5.conv2.weight`, ...
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::liveportrait::appearance::{AppearanceFeatureExtractor, Config};
//!
//! let cfg = Config { block_expansion: 4, max_features: 16, reshape_channel: 4, reshape_depth: 4,
//!                    num_resblocks: 1, ..Config::liveportrait() };
//! let vars = VarMap::new();
//! let f = AppearanceFeatureExtractor::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
//! let image = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu)?;
//! assert_eq!(f.forward(&image)?.dims(), [2, 4, 4, 8, 8]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::blocks::{DownBlock2d, ResBlock3d, SameBlock2d};
use crate::ops::{conv2d, Conv2d};

/// Largest width or count a config may ask for.
pub const MAX_DIM: usize = 1 << 16;
/// Kernel of `first`, the down blocks and the residual blocks (padding 1 keeps the size).
const KERNEL: usize = 3;

/// F's hyperparameters: models.yaml's `appearance_feature_extractor_params`, under its names.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Channels of the input image.
    pub image_channel: usize,
    /// Width of `first`; each down block doubles it, up to `max_features`.
    pub block_expansion: usize,
    /// Down blocks, each halving the height and width.
    pub num_down_blocks: usize,
    /// Width of `second`, the map that becomes the volume; must be `reshape_channel · reshape_depth`.
    pub max_features: usize,
    /// Channels of the feature volume.
    pub reshape_channel: usize,
    /// Depth of the feature volume.
    pub reshape_depth: usize,
    /// `ResBlock3d`s on the volume.
    pub num_resblocks: usize,
}

impl Config {
    /// LivePortrait's F: RGB in, block_expansion 64, 2 down blocks, 512 features viewed as 32
    /// channels × 16 depths, 6 residual blocks.
    pub fn liveportrait() -> Self {
        Config {
            image_channel: 3,
            block_expansion: 64,
            num_down_blocks: 2,
            max_features: 512,
            reshape_channel: 32,
            reshape_depth: 16,
            num_resblocks: 6,
        }
    }

    /// Refuses a config no checkpoint can have: zero or oversized widths, too many down blocks,
    /// or a `max_features` that is not `reshape_channel · reshape_depth`.
    pub fn validate(&self) -> Result<()> {
        let widths = [
            ("image_channel", self.image_channel),
            ("block_expansion", self.block_expansion),
            ("max_features", self.max_features),
            ("reshape_channel", self.reshape_channel),
            ("reshape_depth", self.reshape_depth),
        ];
        for (name, value) in widths {
            if value == 0 || value > MAX_DIM {
                bail!("appearance feature extractor config: {name} is {value}, must be between 1 and {MAX_DIM}");
            }
        }
        if self.num_down_blocks > 16 || self.num_resblocks > MAX_DIM {
            bail!(
                "appearance feature extractor config: {} down blocks and {} residual blocks, at most 16 and {MAX_DIM}",
                self.num_down_blocks,
                self.num_resblocks
            );
        }
        if self.reshape_channel * self.reshape_depth != self.max_features {
            bail!(
                "appearance feature extractor config: max_features {} is not reshape_channel {} × reshape_depth {}",
                self.max_features,
                self.reshape_channel,
                self.reshape_depth
            );
        }
        Ok(())
    }

    /// Width after down block `i` (0 = `first`'s): `block_expansion · 2^i`, at most `max_features`.
    fn width(&self, i: usize) -> usize {
        self.block_expansion.saturating_mul(1 << i).min(self.max_features)
    }
}

/// LivePortrait's appearance feature extractor F (`AppearanceFeatureExtractor`).
#[derive(Debug, Clone)]
pub struct AppearanceFeatureExtractor {
    config: Config,
    first: SameBlock2d,
    down_blocks: Vec<DownBlock2d>,
    second: Conv2d,
    resblocks: Vec<ResBlock3d>,
}

impl AppearanceFeatureExtractor {
    /// Loads F from `vb` at the checkpoint's root.
    pub fn new(config: &Config, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let c = config;
        let first = SameBlock2d::new(c.image_channel, c.block_expansion, KERNEL, 1, false, vb.pp("first"))?;
        let down_blocks = (0..c.num_down_blocks)
            .map(|i| DownBlock2d::new(c.width(i), c.width(i + 1), KERNEL, 1, vb.pp("down_blocks").pp(i)))
            .collect::<Result<_>>()?;
        let second = conv2d(c.width(c.num_down_blocks), c.max_features, 1, Conv2dConfig::default(), vb.pp("second"))?;
        let resblocks = (0..c.num_resblocks)
            .map(|i| ResBlock3d::new(c.reshape_channel, KERNEL, 1, vb.pp("resblocks_3d").pp(format!("3dr{i}"))))
            .collect::<Result<_>>()?;
        Ok(Self { config: config.clone(), first, down_blocks, second, resblocks })
    }

    /// The config this extractor was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The feature volume `(N, reshape_channel, reshape_depth, H / 2^d, W / 2^d)` of images
    /// `(N, image_channel, H, W)` (the reference takes 256 × 256 RGB in [0, 1]; d =
    /// `num_down_blocks`, each halving rounding down); H and W must be at least 2^d.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        self.volume(&self.planar(images)?)
    }

    /// The 2-D part: `second`'s map `(N, max_features, H / 2^d, W / 2^d)` of images, before it
    /// is viewed as a volume.
    pub fn planar(&self, images: &Tensor) -> Result<Tensor> {
        let (c, least) = (&self.config, 1usize << self.config.num_down_blocks);
        match *images.dims() {
            [_, ch, h, w] if ch == c.image_channel && h >= least && w >= least => {}
            ref dims => bail!(
                "appearance feature extractor: images of shape {dims:?}, expected (N, {}, H, W) with H and W at least {least}",
                c.image_channel
            ),
        }
        let mut x = self.first.forward(images)?;
        for block in &self.down_blocks {
            x = block.forward(&x)?;
        }
        self.second.forward(&x)
    }

    /// The 3-D part: [`AppearanceFeatureExtractor::planar`]'s map viewed as
    /// `(N, reshape_channel, reshape_depth, h, w)`, then the residual blocks.
    pub fn volume(&self, map: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let &[n, channels, h, w] = map.dims() else {
            bail!(
                "appearance feature extractor: a map of shape {:?}, expected (N, {}, h, w)",
                map.dims(),
                c.max_features
            )
        };
        if channels != c.max_features {
            bail!(
                "appearance feature extractor: a map of shape {:?}, expected (N, {}, h, w)",
                map.dims(),
                c.max_features
            );
        }
        let mut volume = map.reshape((n, c.reshape_channel, c.reshape_depth, h, w))?;
        for block in &self.resblocks {
            volume = block.forward(&volume)?;
        }
        Ok(volume)
    }
}
