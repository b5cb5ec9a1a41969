//! `nn.Conv2d` with stride 1, as candle's `Conv2d` but with faster CPU paths: LivePortrait's SPADE
//! generator (about 0.9 TFLOP per 512 × 512 frame, nearly all 3 × 3 convolutions of 64–512
//! channels), warping module and appearance extractor.
//!
//! candle's CPU conv2d gathers an im2col tile element by element and scatters each tile's product
//! back element by element; on the SPADE generator those two loops took more time than the
//! products. Here, on the CPU in f32 with stride 1, no dilation and no groups:
//! - 3 × 3 kernels go through Winograd's F(2 × 2, 3 × 3) (`winograd`): 16 products per 2 × 2
//!   outputs instead of 36;
//! - other kernels are a tap convolution (`tap_conv`, as [`Conv3d`](super::Conv3d) does in 3-D):
//!   the input is zero-padded and flattened to `(batch, in, Hp·Wp)` columns, each of the k² taps
//!   adds one matrix product read at column shift th·Wp + tw, and the output, computed over the
//!   padded width, is cropped.
//!
//! Anything else (other devices, dtypes, strides) is candle's conv2d.

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use super::tap_conv::{tap_conv, CpuConv, TapConv};
use super::winograd::winograd_conv;

/// Output columns per CPU task at most, so that a stripe's input columns stay in cache across
/// its taps.
const MAX_COLS: usize = 4096;

/// `nn.Conv2d(in, out, kernel, stride, padding, dilation, groups)` in inference, for x
/// `(batch, in, height, width)`; the tap path where it applies, candle's conv2d elsewhere.
#[derive(Debug, Clone)]
pub struct Conv2d {
    inner: candle_nn::Conv2d,
    /// The CPU path's weights, laid out for it.
    cpu: Option<CpuConv>,
}

/// Loads `weight` `[out, in / groups, k, k]` and `bias` `[out]`, PyTorch's names.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let weight = vb.get((out_channels, in_channels / cfg.groups.max(1), kernel, kernel), "weight")?;
    let bias = vb.get(out_channels, "bias")?;
    Ok(Conv2d::new(weight, Some(bias), cfg))
}

impl Conv2d {
    /// A convolution from its weight `[out, in / groups, kh, kw]`, optional bias `[out]` and
    /// geometry, as `candle_nn::Conv2d::new`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv2dConfig) -> Self {
        let plain = cfg.stride == 1 && cfg.dilation == 1 && cfg.groups == 1;
        let cpu = if plain { CpuConv::new(&weight, bias.as_ref(), 4) } else { None };
        Self { inner: candle_nn::Conv2d::new(weight, bias, cfg), cpu }
    }

    /// The weight `[out, in / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// Checks x against the weight; returns the output's (height, width).
    fn output_size(&self, x: &Tensor) -> Result<(usize, usize)> {
        let (_, c_in, kh, kw) = self.weight().dims4()?;
        let (_, channels, h, w) = x.dims4()?;
        if channels != c_in {
            bail!("conv2d over {c_in} input channels got x of shape {:?}", x.dims());
        }
        let p = self.inner.config().padding;
        let size = |n: usize, k: usize| (n + 2 * p).checked_sub(k - 1).filter(|&o| o > 0);
        let (Some(oh), Some(ow)) = (size(h, kh), size(w, kw)) else {
            bail!("conv2d: x of shape {:?} padded by {p} is smaller than the kernel {kh}×{kw}", x.dims())
        };
        Ok((oh, ow))
    }

    /// The CPU path for kernels other than 3 × 3: the tap convolution over the padded,
    /// flattened plane.
    fn forward_taps(&self, x: &Tensor, taps: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (oh, ow) = self.output_size(x)?;
        let (_, _, kh, kw) = self.weight().dims4()?;
        let (batch, c_in, h, w) = x.dims4()?;
        let p = self.inner.config().padding;
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let x = if p > 0 { x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)? } else { x.clone() };
        let x = x.contiguous()?.reshape((batch, c_in, hp * wp))?;
        let shifts = (0..kh).flat_map(|th| (0..kw).map(move |tw| (th * wp + tw) as isize)).collect();
        // Every padded-width position of the output's rows; the columns past the valid ones
        // are cropped below.
        let y = tap_conv(&x, taps, bias, TapConv { shifts, out_len: oh * wp, max_cols: MAX_COLS })?;
        let out = y.dim(1)?;
        let y = y.reshape((batch, out, oh, wp))?;
        if ow == wp {
            Ok(y)
        } else {
            y.narrow(3, 0, ow)?.contiguous()
        }
    }

    /// The CPU path for 3 × 3 kernels: Winograd's F(2 × 2, 3 × 3) on x as one depth plane.
    fn forward_winograd(&self, x: &Tensor, u: &Tensor, bias: &Tensor) -> Result<Tensor> {
        self.output_size(x)?;
        let padding = self.inner.config().padding;
        winograd_conv(&x.unsqueeze(2)?.contiguous()?, u, bias, padding, 0)?.squeeze(2)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !(x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4) {
            return self.inner.forward(x);
        }
        match &self.cpu {
            Some(CpuConv::Winograd(u, bias)) => self.forward_winograd(x, u, bias),
            Some(CpuConv::Taps(taps, bias)) => self.forward_taps(x, taps, bias),
            None => self.inner.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The tap path against candle's conv2d (the path every other device takes), over the
    /// kernels and paddings LivePortrait uses and a batch of two.
    #[test]
    fn taps_match_candles_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        for (k, padding, h, w) in [(3, 1, 9, 7), (1, 0, 5, 6), (7, 3, 11, 8), (3, 0, 4, 5), (5, 1, 6, 6)] {
            let x = Tensor::randn(0f32, 1., (2, 6, h, w), &dev)?;
            let weight = Tensor::randn(0f32, 1., (5, 6, k, k), &dev)?;
            let bias = Tensor::randn(0f32, 1., 5, &dev)?;
            let cfg = Conv2dConfig { padding, ..Default::default() };
            let ours = Conv2d::new(weight.clone(), Some(bias.clone()), cfg);
            assert!(ours.cpu.is_some(), "a CPU path applies to a stride-1 f32 CPU convolution");
            let want = candle_nn::Conv2d::new(weight, Some(bias), cfg).forward(&x)?;
            let got = ours.forward(&x)?;
            assert_eq!(got.dims(), want.dims(), "kernel {k}, padding {padding}");
            let err = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = want.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err <= 1e-5 * scale, "kernel {k}, padding {padding}: error {err} of {scale}");
        }
        Ok(())
    }

    #[test]
    fn strided_and_grouped_convolutions_take_candles_path() -> Result<()> {
        let dev = Device::Cpu;
        let weight = Tensor::randn(0f32, 1., (4, 2, 2, 2), &dev)?;
        let strided = Conv2d::new(weight.clone(), None, Conv2dConfig { stride: 2, ..Default::default() });
        assert!(strided.cpu.is_none());
        let grouped = Conv2d::new(weight, None, Conv2dConfig { groups: 2, ..Default::default() });
        assert!(grouped.cpu.is_none());
        let x = Tensor::randn(0f32, 1., (1, 4, 6, 6), &dev)?;
        assert_eq!(grouped.forward(&x)?.dims(), [1, 4, 5, 5]);
        Ok(())
    }

    #[test]
    fn a_too_small_input_is_refused() {
        let dev = Device::Cpu;
        let weight = Tensor::zeros((2, 3, 5, 5), DType::F32, &dev).unwrap();
        let conv = Conv2d::new(weight, None, Conv2dConfig::default());
        let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
        let err = conv.forward(&x).unwrap_err().to_string();
        assert!(err.contains("smaller than the kernel"), "{err}");
        let wrong = Tensor::zeros((1, 2, 8, 8), DType::F32, &dev).unwrap();
        assert!(conv.forward(&wrong).unwrap_err().to_string().contains("input channels"));
        // The Winograd path (3 × 3) checks the same way.
        let three = Conv2d::new(Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap(), None, Conv2dConfig::default());
        assert!(matches!(three.cpu, Some(CpuConv::Winograd(..))));
        let err = three.forward(&Tensor::zeros((1, 3, 2, 2), DType::F32, &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("smaller than the kernel"), "{err}");
        assert!(three.forward(&wrong).unwrap_err().to_string().contains("input channels"));
    }
}
