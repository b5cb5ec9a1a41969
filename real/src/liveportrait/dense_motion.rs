//! LivePortrait's dense motion network, the first half of the warping module W: the reference's
//! `src/modules/dense_motion.py` `DenseMotionNetwork`, with what it takes from `util.py`
//! (`kp2gaussian`, `make_coordinate_grid`, `DownBlock3d`, `UpBlock3d` and the hourglass
//! `Encoder` / `Decoder` / `Hourglass`).
//!
//! From the source's feature volume (`(B, 32, 16, 64, 64)`, the appearance extractor's output)
//! and the source and driving keypoints (`(B, 21, 3)`, in the volume's [−1, 1] coordinates):
//!
//! 1. the volume is compressed to 4 channels (1×1×1 convolution, batch norm, ReLU);
//! 2. one sparse motion per keypoint, the identity grid shifted by `kp_source − kp_driving`,
//!    plus the identity itself (the background), each samples the compressed volume;
//! 3. the 22 deformed volumes, each with its keypoint's heatmap (the driving Gaussian minus the
//!    source one; zero for the background), go through a 5-level 3-D hourglass;
//! 4. a 7×7×7 convolution and a softmax over the 22 give each voxel's mixture of the sparse
//!    motions: the `deformation` grid `(B, D, H, W, 3)`;
//! 5. the hourglass output, its depth folded into the channels, gives the occlusion map
//!    `(B, 1, H, W)` through a 7×7 convolution and a sigmoid.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vortex_real::liveportrait::dense_motion::{kp2gaussian, make_coordinate_grid, Config};
//!
//! let cfg = Config::liveportrait();
//! cfg.validate()?;
//! assert_eq!((cfg.hourglass_in_features(), cfg.hourglass_out_filters()), (110, 142));
//! let grid = make_coordinate_grid((2, 3, 5), candle_core::DType::F32, &Device::Cpu)?;
//! assert_eq!(grid.get(1)?.get(2)?.get(4)?.to_vec1::<f32>()?, [1., 1., 1.]); // (x, y, z)
//! let kp = Tensor::zeros((1, 1, 3), candle_core::DType::F32, &Device::Cpu)?;
//! assert_eq!(kp2gaussian(&kp, (3, 3, 3), 0.01)?.dims(), [1, 1, 3, 3, 3]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Device, Module, Result, Tensor, D};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::ops::{conv2d, conv3d, grid_sample_3d, BatchNorm, Conv2d, Conv3d, BATCH_NORM_EPS};

/// `kp2gaussian`'s variance, as `create_heatmap_representations` passes it.
pub const KP_VARIANCE: f64 = 0.01;
/// Kernel of the `mask` convolution (3-D) and of the `occlusion` convolution (2-D).
const HEAD_KERNEL: usize = 7;
/// Kernel of the hourglass' convolutions.
const BLOCK_KERNEL: usize = 3;

/// `DenseMotionNetwork`'s constructor arguments: models.yaml's `dense_motion_params` plus what
/// `WarpingNetwork` passes in (`num_kp`, `feature_channel`, `estimate_occlusion_map`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Width of the hourglass' first level, doubled at each level below.
    pub block_expansion: usize,
    /// Levels of the hourglass (each halves height and width).
    pub num_blocks: usize,
    /// Cap on the hourglass' widths.
    pub max_features: usize,
    /// Keypoints (21 in the published model).
    pub num_kp: usize,
    /// Channels of the feature volume (`reshape_channel`).
    pub feature_channel: usize,
    /// Depth of the feature volume, folded into the occlusion convolution's channels.
    pub reshape_depth: usize,
    /// Channels the feature volume is compressed to before the sparse motions sample it.
    pub compress: usize,
    /// Whether the network has the `occlusion` head.
    pub estimate_occlusion_map: bool,
}

impl Config {
    /// The published model's: models.yaml's `dense_motion_params` (block expansion 32, 5
    /// levels up to 1024 channels, depth 16, compress 4) under `warping_module_params` (21
    /// keypoints, 32 feature channels, with the occlusion map).
    pub fn liveportrait() -> Self {
        Config {
            block_expansion: 32,
            num_blocks: 5,
            max_features: 1024,
            num_kp: 21,
            feature_channel: 32,
            reshape_depth: 16,
            compress: 4,
            estimate_occlusion_map: true,
        }
    }

    /// Refuses zero sizes and a hourglass deeper than `usize` widths allow.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("block_expansion", self.block_expansion),
            ("num_blocks", self.num_blocks),
            ("max_features", self.max_features),
            ("num_kp", self.num_kp),
            ("feature_channel", self.feature_channel),
            ("reshape_depth", self.reshape_depth),
            ("compress", self.compress),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            bail!("dense motion config: {name} must be at least 1");
        }
        if self.num_blocks > 16 {
            bail!("dense motion config: num_blocks {} is more than 16 levels", self.num_blocks);
        }
        Ok(())
    }

    /// Width of hourglass level `i` (`min(max_features, block_expansion · 2^i)`).
    fn width(&self, i: usize) -> usize {
        self.max_features.min(self.block_expansion << i)
    }

    /// Channels into the hourglass: per keypoint and the background, the compressed features
    /// and the heatmap, `(num_kp + 1) · (compress + 1)`.
    pub fn hourglass_in_features(&self) -> usize {
        (self.num_kp + 1) * (self.compress + 1)
    }

    /// Channels out of the hourglass (`Decoder.out_filters`): the last up block's width and the
    /// input skip.
    pub fn hourglass_out_filters(&self) -> usize {
        self.block_expansion + self.hourglass_in_features()
    }
}

/// `make_coordinate_grid`: a `(d, h, w, 3)` grid of (x, y, z) in [−1, 1], x along the width,
/// y along the height, z along the depth (the order `grid_sample` reads). Each size must be at
/// least 2 (the reference divides by `size − 1`).
pub fn make_coordinate_grid(spatial: (usize, usize, usize), dtype: DType, device: &Device) -> Result<Tensor> {
    let (d, h, w) = spatial;
    if d < 2 || h < 2 || w < 2 {
        bail!("coordinate grid of size {spatial:?}: each size must be at least 2");
    }
    // In f32 as the reference (arange in the keypoints' dtype), divided rather than multiplied
    // by the reciprocal, as it does.
    let axis = |n: usize| -> Result<Tensor> {
        let steps = Tensor::arange(0u32, n as u32, device)?.to_dtype(DType::F32)?;
        let last = Tensor::new(&[(n - 1) as f32], device)?;
        steps.broadcast_div(&last)?.affine(2., 0.)?.affine(1., -1.)
    };
    let x = axis(w)?.reshape((1, 1, w, 1))?.broadcast_as((d, h, w, 1))?;
    let y = axis(h)?.reshape((1, h, 1, 1))?.broadcast_as((d, h, w, 1))?;
    let z = axis(d)?.reshape((d, 1, 1, 1))?.broadcast_as((d, h, w, 1))?;
    Tensor::cat(&[x, y, z], 3)?.to_dtype(dtype)
}

/// Checks that `kp` is `(batch, num_kp, 3)` keypoints; returns the batch.
fn check_keypoints(kp: &Tensor, name: &str, num_kp: Option<usize>) -> Result<usize> {
    match (kp.dims(), num_kp) {
        ([b, n, 3], Some(k)) if *n == k => Ok(*b),
        ([b, _, 3], None) => Ok(*b),
        (dims, Some(k)) => bail!("{name} of shape {dims:?}; need (batch, {k}, 3)"),
        (dims, None) => bail!("{name} of shape {dims:?}; need (batch, keypoints, 3)"),
    }
}

/// `kp2gaussian`: keypoints `(B, K, 3)` to unnormalised Gaussians `exp(−|p − kp|² / (2 · var))`
/// over the `(d, h, w)` coordinate grid, `(B, K, d, h, w)`.
pub fn kp2gaussian(kp: &Tensor, spatial: (usize, usize, usize), kp_variance: f64) -> Result<Tensor> {
    let b = check_keypoints(kp, "keypoints", None)?;
    let k = kp.dim(1)?;
    let (d, h, w) = spatial;
    let grid = make_coordinate_grid(spatial, kp.dtype(), kp.device())?.reshape((1, 1, d, h, w, 3))?;
    let distance = grid.broadcast_sub(&kp.reshape((b, k, 1, 1, 1, 3))?)?.sqr()?.sum(D::Minus1)?;
    // The reference computes −0.5 · Σ / var, in that order.
    distance.affine(-0.5, 0.)?.affine(1. / kp_variance, 0.)?.exp()
}

/// `AvgPool3d((1, 2, 2))` on `(B, C, D, H, W)` with even H and W: the mean of each 2×2 tile.
fn avg_pool_hw(x: &Tensor) -> Result<Tensor> {
    let (b, c, d, h, w) = x.dims5()?;
    x.reshape((b * c * d, h / 2, 2, w / 2, 2))?.sum(4)?.sum(2)?.affine(0.25, 0.)?.reshape((b, c, d, h / 2, w / 2))
}

/// `F.interpolate(scale_factor=(1, 2, 2))` (nearest) on `(B, C, D, H, W)`: each voxel repeated
/// over a 2×2 tile.
fn upsample_hw(x: &Tensor) -> Result<Tensor> {
    let (b, c, d, h, w) = x.dims5()?;
    let n = b * c * d;
    x.reshape((n, h, 1, w, 1))?.broadcast_as((n, h, 2, w, 2))?.reshape((b, c, d, 2 * h, 2 * w))
}

/// `DownBlock3d`: 3×3×3 convolution, batch norm, ReLU, then the height and width halved.
#[derive(Debug, Clone)]
pub struct DownBlock3d {
    conv: Conv3d,
    norm: BatchNorm,
}

impl DownBlock3d {
    /// Loads `conv.{weight,bias}` and `norm.*`.
    pub fn new(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        let conv = conv3d(in_features, out_features, BLOCK_KERNEL, BLOCK_KERNEL / 2, vb.pp("conv"))?;
        let norm = BatchNorm::new(out_features, BATCH_NORM_EPS, vb.pp("norm"))?;
        Ok(Self { conv, norm })
    }
}

impl Module for DownBlock3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        avg_pool_hw(&self.norm.forward(&self.conv.forward(x)?)?.relu()?)
    }
}

/// `UpBlock3d`: the height and width doubled (nearest), then 3×3×3 convolution, batch norm,
/// ReLU.
#[derive(Debug, Clone)]
pub struct UpBlock3d {
    conv: Conv3d,
    norm: BatchNorm,
}

impl UpBlock3d {
    /// Loads `conv.{weight,bias}` and `norm.*`.
    pub fn new(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        let conv = conv3d(in_features, out_features, BLOCK_KERNEL, BLOCK_KERNEL / 2, vb.pp("conv"))?;
        let norm = BatchNorm::new(out_features, BATCH_NORM_EPS, vb.pp("norm"))?;
        Ok(Self { conv, norm })
    }
}

impl Module for UpBlock3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(&self.conv.forward(&upsample_hw(x)?)?)?.relu()
    }
}

/// The hourglass (`Hourglass`: `Encoder` then `Decoder`, a U-Net over 3-D volumes that keeps
/// the depth): `num_blocks` down blocks, as many up blocks each followed by the skip from the
/// level above, then a 3×3×3 convolution, batch norm and ReLU.
#[derive(Debug, Clone)]
pub struct Hourglass {
    down_blocks: Vec<DownBlock3d>,
    up_blocks: Vec<UpBlock3d>,
    conv: Conv3d,
    norm: BatchNorm,
}

impl Hourglass {
    /// Loads `encoder.down_blocks.{i}.*`, `decoder.up_blocks.{i}.*`, `decoder.conv.*` and
    /// `decoder.norm.*` for `cfg`'s hourglass.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let n = cfg.num_blocks;
        let input = cfg.hourglass_in_features();
        let down_blocks = (0..n)
            .map(|i| {
                let in_features = if i == 0 { input } else { cfg.width(i) };
                DownBlock3d::new(in_features, cfg.width(i + 1), vb.pp(format!("encoder.down_blocks.{i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // The decoder's blocks run from the deepest level up; block j works on level n − 1 − j.
        let up_blocks = (0..n)
            .rev()
            .enumerate()
            .map(|(j, i)| {
                let in_features = if i == n - 1 { 1 } else { 2 } * cfg.width(i + 1);
                UpBlock3d::new(in_features, cfg.width(i), vb.pp(format!("decoder.up_blocks.{j}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = cfg.hourglass_out_filters();
        let conv = conv3d(out, out, BLOCK_KERNEL, BLOCK_KERNEL / 2, vb.pp("decoder.conv"))?;
        let norm = BatchNorm::new(out, BATCH_NORM_EPS, vb.pp("decoder.norm"))?;
        Ok(Self { down_blocks, up_blocks, conv, norm })
    }
}

impl Module for Hourglass {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            let next = block.forward(skips.last().expect("starts with the input"))?;
            skips.push(next);
        }
        let mut out = skips.pop().expect("starts with the input");
        for block in &self.up_blocks {
            let skip = skips.pop().expect("one skip per up block");
            out = Tensor::cat(&[block.forward(&out)?, skip], 1)?;
        }
        self.norm.forward(&self.conv.forward(&out)?)?.relu()
    }
}

/// What the dense motion network predicts.
#[derive(Debug, Clone)]
pub struct DenseMotion {
    /// Each voxel's weights over the background and the keypoints' sparse motions, a softmax
    /// over dimension 1: `(B, num_kp + 1, D, H, W)`.
    pub mask: Tensor,
    /// Where each voxel of the output samples the source volume, (x, y, z) in [−1, 1]:
    /// `(B, D, H, W, 3)`, `grid_sample`'s grid.
    pub deformation: Tensor,
    /// How visible each output pixel is in the source, in (0, 1): `(B, 1, H, W)`; `None`
    /// without the occlusion head.
    pub occlusion_map: Option<Tensor>,
}

/// `DenseMotionNetwork`: the deformation and the occlusion map from the feature volume and the
/// two keypoint sets.
#[derive(Debug, Clone)]
pub struct DenseMotionNetwork {
    cfg: Config,
    hourglass: Hourglass,
    mask: Conv3d,
    compress: Conv3d,
    norm: BatchNorm,
    occlusion: Option<Conv2d>,
}

impl DenseMotionNetwork {
    /// Loads `hourglass.*`, `mask.*`, `compress.*`, `norm.*` and, with the occlusion head,
    /// `occlusion.*` (the checkpoint's names under `dense_motion_network.`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let hourglass = Hourglass::new(cfg, vb.pp("hourglass"))?;
        let out = cfg.hourglass_out_filters();
        let mask = conv3d(out, cfg.num_kp + 1, HEAD_KERNEL, HEAD_KERNEL / 2, vb.pp("mask"))?;
        let compress = conv3d(cfg.feature_channel, cfg.compress, 1, 0, vb.pp("compress"))?;
        let norm = BatchNorm::new(cfg.compress, BATCH_NORM_EPS, vb.pp("norm"))?;
        let occlusion = if cfg.estimate_occlusion_map {
            let conv_cfg = Conv2dConfig { padding: HEAD_KERNEL / 2, ..Default::default() };
            Some(conv2d(out * cfg.reshape_depth, 1, HEAD_KERNEL, conv_cfg, vb.pp("occlusion"))?)
        } else {
            None
        };
        Ok(Self { cfg: cfg.clone(), hourglass, mask, compress, norm, occlusion })
    }

    /// The network's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Checks the inputs' shapes against the config; returns `(batch, depth, height, width)`.
    fn check_inputs(&self, feature: &Tensor, kp_driving: &Tensor, kp_source: &Tensor) -> Result<[usize; 4]> {
        let cfg = &self.cfg;
        let tile = 1usize << cfg.num_blocks;
        let [b, c, d, h, w] = match feature.dims() {
            &[b, c, d, h, w] => [b, c, d, h, w],
            dims => {
                bail!("feature volume of shape {dims:?}; need (batch, {}, depth, height, width)", cfg.feature_channel)
            }
        };
        if c != cfg.feature_channel || d != cfg.reshape_depth {
            bail!(
                "feature volume of shape {:?}; need {} channels and depth {}",
                feature.dims(),
                cfg.feature_channel,
                cfg.reshape_depth
            );
        }
        if h % tile != 0 || w % tile != 0 || h < 2 || w < 2 || d < 2 {
            bail!(
                "feature volume of shape {:?}: the {}-level hourglass needs height and width multiples of {tile} (and every size at least 2)",
                feature.dims(),
                cfg.num_blocks
            );
        }
        for (kp, name) in [(kp_driving, "kp_driving"), (kp_source, "kp_source")] {
            if check_keypoints(kp, name, Some(cfg.num_kp))? != b {
                bail!("{name} of shape {:?} for a batch of {b} feature volumes", kp.dims());
            }
        }
        Ok([b, d, h, w])
    }

    /// `create_sparse_motions`: the identity grid (the background) and, per keypoint, the grid
    /// shifted by `kp_source − kp_driving`: `(B, num_kp + 1, D, H, W, 3)`.
    fn sparse_motions(&self, dims: [usize; 4], kp_driving: &Tensor, kp_source: &Tensor) -> Result<Tensor> {
        let [b, d, h, w] = dims;
        let k = self.cfg.num_kp;
        let identity =
            make_coordinate_grid((d, h, w), kp_source.dtype(), kp_source.device())?.reshape((1, 1, d, h, w, 3))?;
        let shape = (b, k, 1, 1, 1, 3);
        // (grid − driving) + source, in the reference's order.
        let driving_to_source =
            identity.broadcast_sub(&kp_driving.reshape(shape)?)?.broadcast_add(&kp_source.reshape(shape)?)?;
        Tensor::cat(&[identity.broadcast_as((b, 1, d, h, w, 3))?, driving_to_source], 1)
    }

    /// `create_deformed_feature`: the compressed volume sampled by every sparse motion,
    /// `(B, num_kp + 1, C, D, H, W)`.
    fn deformed_feature(&self, feature: &Tensor, sparse_motions: &Tensor) -> Result<Tensor> {
        let (b, c, d, h, w) = feature.dims5()?;
        let n = self.cfg.num_kp + 1;
        let repeated = feature.unsqueeze(1)?.broadcast_as((b, n, c, d, h, w))?.reshape((b * n, c, d, h, w))?;
        let grid = sparse_motions.reshape((b * n, d, h, w, 3))?;
        grid_sample_3d(&repeated, &grid)?.reshape((b, n, c, d, h, w))
    }

    /// `create_heatmap_representations`: per keypoint the driving Gaussian minus the source
    /// one, zeros for the background, `(B, num_kp + 1, 1, D, H, W)`.
    fn heatmaps(&self, dims: [usize; 4], kp_driving: &Tensor, kp_source: &Tensor) -> Result<Tensor> {
        let [b, d, h, w] = dims;
        let spatial = (d, h, w);
        let heatmap = (kp2gaussian(kp_driving, spatial, KP_VARIANCE)? - kp2gaussian(kp_source, spatial, KP_VARIANCE)?)?;
        let zeros = Tensor::zeros((b, 1, d, h, w), heatmap.dtype(), heatmap.device())?;
        Tensor::cat(&[zeros, heatmap], 1)?.unsqueeze(2)
    }

    /// The forward pass: `feature` `(B, feature_channel, reshape_depth, H, W)` with H and W
    /// multiples of `2^num_blocks`, keypoints `(B, num_kp, 3)`.
    pub fn forward(&self, feature: &Tensor, kp_driving: &Tensor, kp_source: &Tensor) -> Result<DenseMotion> {
        let dims = self.check_inputs(feature, kp_driving, kp_source)?;
        let [b, d, h, w] = dims;
        let feature = self.norm.forward(&self.compress.forward(feature)?)?.relu()?;

        let sparse_motions = self.sparse_motions(dims, kp_driving, kp_source)?;
        let deformed = self.deformed_feature(&feature, &sparse_motions)?;
        let heatmaps = self.heatmaps(dims, kp_driving, kp_source)?;
        let input = Tensor::cat(&[heatmaps, deformed], 2)?.reshape((b, (), d, h, w))?;

        let prediction = self.hourglass.forward(&input)?;
        let mask = candle_nn::ops::softmax(&self.mask.forward(&prediction)?, 1)?;
        // Σ over the sparse motions of motion · weight, with the coordinates kept last.
        let deformation = sparse_motions.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;

        let occlusion_map = match &self.occlusion {
            Some(conv) => {
                let folded = prediction.reshape((b, (), h, w))?;
                Some(candle_nn::ops::sigmoid(&conv.forward(&folded)?)?)
            }
            None => None,
        };
        Ok(DenseMotion { mask, deformation, occlusion_map })
    }
}
