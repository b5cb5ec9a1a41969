//! Building blocks from the reference's `modules/util.py` shared by LivePortrait's appearance
//! feature extractor F and its warping module W: `SameBlock2d` (convolution, batch norm, ReLU or
//! LeakyReLU), `DownBlock2d` (the same, then 2 × 2 average pooling) and `ResBlock3d` (two
//! pre-activation 3-D convolutions around an identity shortcut). Tensor names are the modules'
//! own (`conv`, `norm`, `conv1`, `norm1`, ...), under whatever prefix the network gives them.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::liveportrait::blocks::{DownBlock2d, ResBlock3d, SameBlock2d};
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let x = Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu)?;
//! let same = SameBlock2d::new(3, 8, 3, 1, false, vb.pp("first"))?;
//! let down = DownBlock2d::new(8, 16, 3, 1, vb.pp("down"))?;
//! assert_eq!(down.forward(&same.forward(&x)?)?.dims(), [1, 16, 8, 8]);
//! let volume = Tensor::zeros((1, 4, 2, 8, 8), DType::F32, &Device::Cpu)?;
//! assert_eq!(ResBlock3d::new(4, 3, 1, vb.pp("res"))?.forward(&volume)?.dims(), [1, 4, 2, 8, 8]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::ops::{conv2d, conv3d, BatchNorm, Conv2d, Conv3d, BATCH_NORM_EPS};

/// The slope of `nn.LeakyReLU()`'s default, which `SameBlock2d(lrelu=True)` uses.
pub const LEAKY_SLOPE: f64 = 0.01;

/// `nn.LeakyReLU(slope)` as whole-tensor ops: `max(x, 0) + slope · min(x, 0)`.
fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    x.relu()? + (x.minimum(0.)? * slope)?
}

/// A square `nn.Conv2d(in, out, kernel, padding=padding)` (stride 1, no groups): `conv.weight`
/// `[out, in, k, k]`, `conv.bias` `[out]`.
fn same_conv(in_features: usize, out_features: usize, kernel: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(in_features, out_features, kernel, Conv2dConfig { padding, ..Default::default() }, vb)
}

/// `SameBlock2d`: a 2-D convolution, batch norm, then ReLU (or LeakyReLU with slope
/// [`LEAKY_SLOPE`] when `lrelu`); with `padding = (kernel − 1) / 2` the size is kept.
#[derive(Debug, Clone)]
pub struct SameBlock2d {
    conv: Conv2d,
    norm: BatchNorm,
    lrelu: bool,
}

impl SameBlock2d {
    /// Loads `conv` (`in_features` → `out_features`, a `kernel` × `kernel` window, `padding` on
    /// every side) and `norm` over `out_features`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        kernel: usize,
        padding: usize,
        lrelu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: same_conv(in_features, out_features, kernel, padding, vb.pp("conv"))?,
            norm: BatchNorm::new(out_features, BATCH_NORM_EPS, vb.pp("norm"))?,
            lrelu,
        })
    }
}

impl Module for SameBlock2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.norm.forward(&self.conv.forward(x)?)?;
        if self.lrelu {
            leaky_relu(&y, LEAKY_SLOPE)
        } else {
            y.relu()
        }
    }
}

/// `DownBlock2d`: a 2-D convolution, batch norm, ReLU, then `nn.AvgPool2d(2)` (height and width
/// halved, rounding down).
#[derive(Debug, Clone)]
pub struct DownBlock2d {
    conv: Conv2d,
    norm: BatchNorm,
}

impl DownBlock2d {
    /// Loads `conv` (`in_features` → `out_features`, `kernel`, `padding`) and `norm`.
    pub fn new(in_features: usize, out_features: usize, kernel: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: same_conv(in_features, out_features, kernel, padding, vb.pp("conv"))?,
            norm: BatchNorm::new(out_features, BATCH_NORM_EPS, vb.pp("norm"))?,
        })
    }
}

impl Module for DownBlock2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(&self.conv.forward(x)?)?.relu()?.avg_pool2d(2)
    }
}

/// `ResBlock3d`: `x + conv2(relu(norm2(conv1(relu(norm1(x))))))`, both convolutions
/// `in_features` → `in_features` with a cubic `kernel` and `padding` that keep the size.
#[derive(Debug, Clone)]
pub struct ResBlock3d {
    norm1: BatchNorm,
    conv1: Conv3d,
    norm2: BatchNorm,
    conv2: Conv3d,
}

impl ResBlock3d {
    /// Loads `norm1`, `conv1`, `norm2`, `conv2`.
    pub fn new(in_features: usize, kernel: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: BatchNorm::new(in_features, BATCH_NORM_EPS, vb.pp("norm1"))?,
            conv1: conv3d(in_features, in_features, kernel, padding, vb.pp("conv1"))?,
            norm2: BatchNorm::new(in_features, BATCH_NORM_EPS, vb.pp("norm2"))?,
            conv2: conv3d(in_features, in_features, kernel, padding, vb.pp("conv2"))?,
        })
    }
}

impl Module for ResBlock3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(&self.norm1.forward(x)?.relu()?)?;
        let y = self.conv2.forward(&self.norm2.forward(&y)?.relu()?)?;
        y + x
    }
}
