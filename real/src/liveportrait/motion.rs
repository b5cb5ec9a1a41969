//! LivePortrait's motion extractor M (the reference's `MotionExtractor` in
//! `modules/motion_extractor.py`, wrapping `ConvNeXtV2` of `modules/convnextv2.py`): a
//! ConvNeXt-V2 backbone (a 4 × 4 patchify stem, four stages of blocks with a 7 × 7 depthwise
//! convolution, a channels-last LayerNorm, a GELU MLP with global response normalisation, joined
//! by 2 × 2 strided downsampling convolutions), global average pooling and a LayerNorm, then seven
//! linear heads: the canonical keypoints, the expression offsets, pitch, yaw and roll as bin
//! logits, the translation and the scale.
//!
//! Tensor names are the published `motion_extractor.pth`'s: everything sits under `detector.`
//! (`detector.downsample_layers.0.0.weight`, `detector.stages.2.8.grn.gamma`,
//! `detector.fc_kp.bias`, ...). The heads come out raw, as the reference returns them;
//! turning pose bins into degrees and keypoints into `(N, num_kp, 3)` is the caller's step.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::liveportrait::motion::{Config, MotionExtractor};
//!
//! let cfg = Config { depths: vec![1, 1, 1, 1], dims: vec![8, 8, 16, 16], ..Config::liveportrait() };
//! let vars = VarMap::new();
//! let m = MotionExtractor::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
//! let image = Tensor::zeros((2, 3, 64, 64), DType::F32, &Device::Cpu)?;
//! let motion = m.forward(&image)?;
//! assert_eq!(motion.kp.dims(), [2, 63]);
//! assert_eq!(motion.pitch.dims(), [2, 66]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::{linear, Conv2d, Conv2dConfig, Linear, VarBuilder};

use crate::ops::depthwise_conv2d;

/// Epsilon of every LayerNorm in ConvNeXt-V2 (both data formats and the final norm).
pub const LAYER_NORM_EPS: f64 = 1e-6;
/// Added to the mean response in GRN's denominator.
pub const GRN_EPS: f64 = 1e-6;
/// Largest width or count a config may ask for.
pub const MAX_DIM: usize = 1 << 16;
/// The stem's kernel and stride: the image is cut into 4 × 4 patches.
const STEM_PATCH: usize = 4;
/// Kernel and stride of the downsampling convolutions between stages.
const DOWNSAMPLE: usize = 2;
/// The depthwise convolution's kernel (padding 3 keeps the size).
const DW_KERNEL: usize = 7;
/// Hidden width of a block's MLP, as a multiple of the stage's width.
const MLP_RATIO: usize = 4;

/// The motion extractor's hyperparameters: models.yaml's `motion_extractor_params` and the
/// backbone's (`convnextv2_tiny`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Implicit keypoints; the keypoint and expression heads have `3 · num_kp` outputs.
    pub num_kp: usize,
    /// Bins of each of the pitch, yaw and roll heads.
    pub num_bins: usize,
    /// Channels of the input image.
    pub in_channels: usize,
    /// Blocks in each stage.
    pub depths: Vec<usize>,
    /// Width of each stage; as many as `depths`.
    pub dims: Vec<usize>,
}

impl Config {
    /// LivePortrait's M: 21 keypoints, 66 pose bins, ConvNeXt-V2-tiny (depths [3, 3, 9, 3],
    /// dims [96, 192, 384, 768]) on RGB images.
    pub fn liveportrait() -> Self {
        Config { num_kp: 21, num_bins: 66, in_channels: 3, depths: vec![3, 3, 9, 3], dims: vec![96, 192, 384, 768] }
    }

    /// Refuses a config no checkpoint can have: zero or oversized widths and counts, no stages,
    /// or `depths` and `dims` of different lengths.
    pub fn validate(&self) -> Result<()> {
        let counts = [("num_kp", self.num_kp), ("num_bins", self.num_bins), ("in_channels", self.in_channels)];
        for (name, value) in counts.into_iter().chain(self.dims.iter().map(|&d| ("dims", d))) {
            if value == 0 || value > MAX_DIM {
                bail!("motion extractor config: {name} holds {value}, must be between 1 and {MAX_DIM}");
            }
        }
        if let Some(&d) = self.depths.iter().find(|&&d| d > MAX_DIM) {
            bail!("motion extractor config: a stage depth is {d}, at most {MAX_DIM}");
        }
        if self.dims.is_empty() || self.dims.len() != self.depths.len() {
            bail!(
                "motion extractor config: {} depths and {} dims, need the same number (at least one)",
                self.depths.len(),
                self.dims.len()
            );
        }
        Ok(())
    }

    /// How many times the stem and the downsampling layers divide the image's height and width.
    pub fn reduction(&self) -> usize {
        STEM_PATCH * DOWNSAMPLE.pow(self.dims.len() as u32 - 1)
    }
}

/// LayerNorm over dimension `dim` with the affine `weight`, `bias` (`[C]`), broadcast along
/// `shape`'s other dimensions. Two passes (mean, then the mean of squared deviations) as the
/// reference's channels-first formula and PyTorch's `F.layer_norm` compute it: candle's fused
/// kernel takes E[x²] − E[x]², which loses digits when the mean is large against the spread.
fn layer_norm(x: &Tensor, dim: usize, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(compute_dtype(dtype))?;
    let centred = x.broadcast_sub(&x.mean_keepdim(dim)?)?;
    let var = centred.sqr()?.mean_keepdim(dim)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let mut affine = vec![1; x.rank()];
    affine[dim] = weight.elem_count();
    let weight = weight.to_dtype(normed.dtype())?.reshape(affine.as_slice())?;
    let bias = bias.to_dtype(normed.dtype())?.reshape(affine)?;
    normed.broadcast_mul(&weight)?.broadcast_add(&bias)?.to_dtype(dtype)
}

/// Half-precision inputs are normalised in f32, as PyTorch's CPU kernels accumulate them.
fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// The reference's `LayerNorm` (either data format) and `nn.LayerNorm`: `weight`, `bias` `[C]`.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(channels, "weight")?, bias: vb.get(channels, "bias")? })
    }

    /// Over the channels of `(N, C, H, W)` (`data_format="channels_first"`).
    fn channels_first(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, 1, &self.weight, &self.bias, LAYER_NORM_EPS)
    }

    /// Over the last dimension (`channels_last`, and `nn.LayerNorm`).
    fn channels_last(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, x.rank() - 1, &self.weight, &self.bias, LAYER_NORM_EPS)
    }
}

/// ConvNeXt-V2's global response normalisation on `(N, L, C)` (the reference's `(N, H, W, C)`
/// with the positions flattened): each channel's L2 norm over the positions, divided by its mean
/// over the channels, scales the input; `gamma`, `beta` are stored `[1, 1, 1, C]`.
#[derive(Debug, Clone)]
struct Grn {
    gamma: Tensor,
    beta: Tensor,
}

impl Grn {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let gamma = vb.get((1, 1, 1, channels), "gamma")?.reshape((1, 1, channels))?;
        let beta = vb.get((1, 1, 1, channels), "beta")?.reshape((1, 1, channels))?;
        Ok(Self { gamma, beta })
    }
}

impl Module for Grn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gx = x.sqr()?.sum_keepdim(1)?.sqrt()?;
        let nx = gx.broadcast_div(&(gx.mean_keepdim(2)? + GRN_EPS)?)?;
        (x.broadcast_mul(&nx)?.broadcast_mul(&self.gamma)?.broadcast_add(&self.beta)? + x)?.contiguous()
    }
}

/// A ConvNeXt-V2 block (`Block`): depthwise 7 × 7 convolution, channels-last LayerNorm,
/// `pwconv1` to 4C, exact (erf) GELU, GRN, `pwconv2` back to C, plus the input.
#[derive(Debug, Clone)]
struct Block {
    /// The depthwise convolution's `[C, 1, 7, 7]` weight and `[C]` bias.
    dwconv: (Tensor, Tensor),
    norm: LayerNorm,
    pwconv1: Linear,
    grn: Grn,
    pwconv2: Linear,
}

impl Block {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let dw = vb.pp("dwconv");
        Ok(Self {
            dwconv: (dw.get((dim, 1, DW_KERNEL, DW_KERNEL), "weight")?, dw.get(dim, "bias")?),
            norm: LayerNorm::new(dim, vb.pp("norm"))?,
            pwconv1: linear(dim, MLP_RATIO * dim, vb.pp("pwconv1"))?,
            grn: Grn::new(MLP_RATIO * dim, vb.pp("grn"))?,
            pwconv2: linear(MLP_RATIO * dim, dim, vb.pp("pwconv2"))?,
        })
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (weight, bias) = &self.dwconv;
        let y = depthwise_conv2d(x, weight, Some(bias), DW_KERNEL / 2)?;
        let y = y.permute((0, 2, 3, 1))?.contiguous()?.reshape((n, h * w, c))?;
        let y = self.pwconv1.forward(&self.norm.channels_last(&y)?)?.gelu_erf()?;
        let y = self.pwconv2.forward(&self.grn.forward(&y)?)?;
        x + y.reshape((n, h, w, c))?.permute((0, 3, 1, 2))?
    }
}

/// What M predicts for each image, each head's raw output `(N, width)`.
#[derive(Debug, Clone)]
pub struct Motion {
    /// Canonical keypoints, `3 · num_kp` (x, y, z per keypoint).
    pub kp: Tensor,
    /// Expression offsets of the keypoints, `3 · num_kp`.
    pub exp: Tensor,
    /// Pitch bin logits, `num_bins`.
    pub pitch: Tensor,
    /// Yaw bin logits, `num_bins`.
    pub yaw: Tensor,
    /// Roll bin logits, `num_bins`.
    pub roll: Tensor,
    /// Translation, 3.
    pub t: Tensor,
    /// Scale, 1.
    pub scale: Tensor,
}

/// LivePortrait's motion extractor M on ConvNeXt-V2 (`MotionExtractor` / `ConvNeXtV2`).
#[derive(Debug, Clone)]
pub struct MotionExtractor {
    config: Config,
    stem: Conv2d,
    stem_norm: LayerNorm,
    /// Between stages: channels-first LayerNorm, then a 2 × 2 stride-2 convolution.
    downsample: Vec<(LayerNorm, Conv2d)>,
    stages: Vec<Vec<Block>>,
    norm: LayerNorm,
    fc_kp: Linear,
    fc_exp: Linear,
    fc_pitch: Linear,
    fc_yaw: Linear,
    fc_roll: Linear,
    fc_t: Linear,
    fc_scale: Linear,
}

/// A convolution with kernel and stride `k`, no padding: `weight` `[out, in, k, k]`, `bias`.
fn patchify(in_channels: usize, out_channels: usize, k: usize, vb: VarBuilder) -> Result<Conv2d> {
    let weight = vb.get((out_channels, in_channels, k, k), "weight")?;
    Ok(Conv2d::new(weight, Some(vb.get(out_channels, "bias")?), Conv2dConfig { stride: k, ..Default::default() }))
}

impl MotionExtractor {
    /// Loads M from `vb` at the checkpoint's root (the tensors under `detector.`).
    pub fn new(config: &Config, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let vb = vb.pp("detector");
        let (dims, layers) = (&config.dims, vb.pp("downsample_layers"));
        let stem = patchify(config.in_channels, dims[0], STEM_PATCH, layers.pp(0).pp(0))?;
        let stem_norm = LayerNorm::new(dims[0], layers.pp(0).pp(1))?;
        let downsample = (1..dims.len())
            .map(|i| {
                let layer = layers.pp(i);
                Ok((
                    LayerNorm::new(dims[i - 1], layer.pp(0))?,
                    patchify(dims[i - 1], dims[i], DOWNSAMPLE, layer.pp(1))?,
                ))
            })
            .collect::<Result<_>>()?;
        let stages = (config.depths.iter().zip(dims).enumerate())
            .map(|(i, (&depth, &dim))| (0..depth).map(|j| Block::new(dim, vb.pp("stages").pp(i).pp(j))).collect())
            .collect::<Result<_>>()?;
        let last = dims[dims.len() - 1];
        let head = |out: usize, name: &str| linear(last, out, vb.pp(name));
        Ok(Self {
            config: config.clone(),
            stem,
            stem_norm,
            downsample,
            stages,
            norm: LayerNorm::new(last, vb.pp("norm"))?,
            fc_kp: head(3 * config.num_kp, "fc_kp")?,
            fc_exp: head(3 * config.num_kp, "fc_exp")?,
            fc_pitch: head(config.num_bins, "fc_pitch")?,
            fc_yaw: head(config.num_bins, "fc_yaw")?,
            fc_roll: head(config.num_bins, "fc_roll")?,
            fc_t: head(3, "fc_t")?,
            fc_scale: head(1, "fc_scale")?,
        })
    }

    /// The config this extractor was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backbone's pooled, normalised features `(N, dims[-1])` of images `(N, C, H, W)`
    /// (`forward_features`); H and W must be at least [`Config::reduction`].
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let reduction = self.config.reduction();
        match *images.dims() {
            [_, c, h, w] if c == self.config.in_channels && h >= reduction && w >= reduction => {}
            ref dims => bail!(
                "motion extractor: images of shape {dims:?}, expected (N, {}, H, W) with H and W at least {reduction}",
                self.config.in_channels
            ),
        }
        let mut x = self.stem_norm.channels_first(&self.stem.forward(images)?)?;
        for (i, stage) in self.stages.iter().enumerate() {
            if i > 0 {
                let (norm, conv) = &self.downsample[i - 1];
                x = conv.forward(&norm.channels_first(&x)?)?;
            }
            for block in stage {
                x = block.forward(&x)?;
            }
        }
        self.norm.channels_last(&x.mean((2, 3))?)
    }

    /// Every head's output for images `(N, C, H, W)` (the reference takes 256 × 256 RGB in [0, 1]).
    pub fn forward(&self, images: &Tensor) -> Result<Motion> {
        self.heads(&self.features(images)?)
    }

    /// The seven heads on pooled features `(N, dims[-1])` from [`MotionExtractor::features`].
    pub fn heads(&self, x: &Tensor) -> Result<Motion> {
        let width = self.config.dims[self.config.dims.len() - 1];
        if !matches!(*x.dims(), [_, c] if c == width) {
            bail!("motion extractor heads: features of shape {:?}, expected (N, {width})", x.dims());
        }
        Ok(Motion {
            kp: self.fc_kp.forward(x)?,
            exp: self.fc_exp.forward(x)?,
            pitch: self.fc_pitch.forward(x)?,
            yaw: self.fc_yaw.forward(x)?,
            roll: self.fc_roll.forward(x)?,
            t: self.fc_t.forward(x)?,
            scale: self.fc_scale.forward(x)?,
        })
    }
}
