//! Building blocks shared by Kokoro's prosody predictor and its decoder: weight-normed
//! convolutions and StyleTTS 2's `AdainResBlk1d` (kokoro 0.9.4's `istftnet.py`).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::kokoro::blocks::AdainResBlk1d;
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let block = AdainResBlk1d::new(8, 4, 16, true, vb)?; // 8 → 4 channels, length doubled
//! let x = Tensor::randn(0f32, 1., (1, 8, 5), &Device::Cpu)?;
//! let style = Tensor::randn(0f32, 1., (1, 16), &Device::Cpu)?;
//! assert_eq!(block.forward(&x, &style)?.dims(), [1, 4, 10]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv1dConfig, VarBuilder};

use crate::ops::{
    interpolate_nearest_1d, tap_conv1d, weight_norm_weight, AdaIn1d, DepthwiseConvTranspose1d, Resize, TransposeConfig,
};

/// The slope of StyleTTS 2's `nn.LeakyReLU(0.2)` in residual blocks and the text encoder.
pub const LEAKY_SLOPE: f64 = 0.2;

/// `weight_norm(nn.Conv1d(in_channels, out_channels, kernel, ...))` or a plain `nn.Conv1d`:
/// `weight` `[out, in / groups, kernel]` from `weight_g`/`weight_v` or from `weight`, and
/// `bias` `[out]` when `bias`.
pub fn conv1d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv1dConfig,
    bias: bool,
    vb: VarBuilder,
) -> Result<Conv1d> {
    let weight = weight_norm_weight(&vb, (out_channels, in_channels / cfg.groups, kernel), 0)?;
    let bias = if bias { Some(vb.get(out_channels, "bias")?) } else { None };
    Ok(Conv1d::new(weight, bias, cfg))
}

/// `nn.Conv1d`. On the CPU a stride-1, ungrouped f32 convolution runs as [`tap_conv1d`]: one
/// accumulating matrix product per kernel tap over the input in place, instead of candle's
/// im2col, which copies the input `kernel` times into a fresh buffer on one thread (about a
/// quarter of Kokoro's CPU time, page faults included, at the generator's 128 channels × 200,000
/// samples × 11 taps). Anything else (strides, groups, other dtypes and devices) is candle's
/// convolution.
#[derive(Debug, Clone)]
pub struct Conv1d {
    inner: candle_nn::Conv1d,
    /// `[kernel, out, in]`, contiguous, and the bias `[out]` (zeros without one), when the tap
    /// path applies.
    taps: Option<(Tensor, Tensor)>,
}

impl Conv1d {
    /// A convolution from its weight `[out, in / groups, kernel]`, optional bias `[out]` and
    /// geometry.
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv1dConfig) -> Self {
        let tap_path = weight.device().is_cpu() && weight.dtype() == DType::F32 && cfg.stride == 1 && cfg.groups == 1;
        let taps = tap_path
            .then(|| {
                let taps = weight.permute((2, 0, 1))?.contiguous()?;
                let bias = match &bias {
                    Some(b) => b.contiguous()?,
                    None => Tensor::zeros(weight.dim(0)?, DType::F32, weight.device())?,
                };
                Ok::<_, candle_core::Error>((taps, bias))
            })
            .and_then(|r| r.ok());
        Conv1d { inner: candle_nn::Conv1d::new(weight, bias, cfg), taps }
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some((taps, bias)) = self.taps.as_ref().filter(|_| x.rank() == 3 && x.dtype() == DType::F32) else {
            return self.inner.forward(x);
        };
        let cfg = self.inner.config();
        let (kernel, _, c_in) = taps.dims3()?;
        let (_, channels, len) = x.dims3()?;
        if channels != c_in || len + 2 * cfg.padding <= cfg.dilation * (kernel - 1) {
            return self.inner.forward(x); // candle's own error message
        }
        tap_conv1d(&x.contiguous()?, taps, bias, cfg.padding, cfg.dilation)
    }
}

/// A stride-1 convolution padded to keep the length: `padding = dilation·(kernel − 1) / 2`
/// (StyleTTS 2's `get_padding`).
pub fn same_padding(kernel: usize, dilation: usize) -> Conv1dConfig {
    Conv1dConfig { padding: dilation * (kernel - 1) / 2, dilation, ..Default::default() }
}

/// StyleTTS 2's `AdainResBlk1d`: AdaIN, LeakyReLU(0.2), an optional ×2 upsampling (a depthwise
/// transposed convolution on the residual path, nearest repetition on the shortcut), then two
/// 3-tap convolutions, the second after another AdaIN; the sum with the shortcut (a bias-free
/// 1×1 convolution when the width changes) is scaled by 1/√2.
#[derive(Debug, Clone)]
pub struct AdainResBlk1d {
    norm1: AdaIn1d,
    norm2: AdaIn1d,
    conv1: Conv1d,
    conv2: Conv1d,
    conv1x1: Option<Conv1d>,
    pool: Option<DepthwiseConvTranspose1d>,
}

impl AdainResBlk1d {
    /// Loads `norm1`, `norm2` (AdaIN over `dim_in` and `dim_out` channels), `conv1`, `conv2`,
    /// `conv1x1` when `dim_in != dim_out`, and `pool` when `upsample`.
    pub fn new(dim_in: usize, dim_out: usize, style_dim: usize, upsample: bool, vb: VarBuilder) -> Result<Self> {
        let three = same_padding(3, 1);
        let pool_cfg = TransposeConfig { stride: 2, padding: 1, output_padding: 1, dilation: 1 };
        Ok(Self {
            norm1: AdaIn1d::new(style_dim, dim_in, vb.pp("norm1"))?,
            norm2: AdaIn1d::new(style_dim, dim_out, vb.pp("norm2"))?,
            conv1: conv1d(dim_in, dim_out, 3, three, true, vb.pp("conv1"))?,
            conv2: conv1d(dim_out, dim_out, 3, three, true, vb.pp("conv2"))?,
            conv1x1: if dim_in != dim_out {
                Some(conv1d(dim_in, dim_out, 1, Conv1dConfig::default(), false, vb.pp("conv1x1"))?)
            } else {
                None
            },
            pool: if upsample {
                Some(DepthwiseConvTranspose1d::new(dim_in, 3, pool_cfg, true, vb.pp("pool"))?)
            } else {
                None
            },
        })
    }

    /// True when the block doubles the length.
    pub fn upsamples(&self) -> bool {
        self.pool.is_some()
    }

    /// `x`: `(batch, dim_in, length)`, `style`: `(batch, style_dim)`; returns
    /// `(batch, dim_out, length)`, or twice the length when the block upsamples.
    pub fn forward(&self, x: &Tensor, style: &Tensor) -> Result<Tensor> {
        let mut residual = candle_nn::ops::leaky_relu(&self.norm1.forward(x, style)?, LEAKY_SLOPE)?;
        if let Some(pool) = &self.pool {
            residual = pool.forward(&residual)?;
        }
        let residual = self.conv1.forward(&residual)?;
        let residual = candle_nn::ops::leaky_relu(&self.norm2.forward(&residual, style)?, LEAKY_SLOPE)?;
        let residual = self.conv2.forward(&residual)?;

        let mut shortcut = if self.pool.is_some() { interpolate_nearest_1d(x, Resize::Scale(2.))? } else { x.clone() };
        if let Some(conv) = &self.conv1x1 {
            shortcut = conv.forward(&shortcut)?;
        }
        // PyTorch multiplies by rsqrt(2) in f32: 0.70710677, the f32 nearest 1/√2.
        (residual + shortcut)?.affine(std::f64::consts::FRAC_1_SQRT_2, 0.)
    }
}
