//! `nn.Conv3d` with a cubic kernel and stride 1, which candle lacks: LivePortrait's appearance
//! feature extractor (`ResBlock3d`), dense motion network (its hourglass's `DownBlock3d` /
//! `UpBlock3d`, `compress`, and the 7×7×7 `mask` convolution, 137 → 22 channels over 16×64×64,
//! about 135 GFLOP per frame) and warping network (`third`, `fourth`).
//!
//! On the CPU in f32, 3 × 3 × 3 kernels go through Winograd's F(2 × 2, 3 × 3) in the plane
//! (`winograd`) with the three depth taps summed in the transformed domain. Other kernels are a
//! tap convolution (`tap_conv`): the input is zero-padded, flattened to `(batch, in, Dp·Hp·Wp)`
//! columns, and each of the k³ taps adds one matrix product read at column shift td·Hp·Wp +
//! th·Wp + tw; the output is computed over the padded grid (about 1.2–1.6× the valid outputs)
//! and cropped. Elsewhere it is candle's conv2d, once per depth tap over the output's depth
//! slices folded into the batch, summed. None keeps a buffer proportional to taps × volume.

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::tap_conv::{tap_conv, CpuConv, TapConv};
use super::winograd::winograd_conv;

/// Output columns per CPU task at most: a stripe's input columns (for all in-plane taps of one
/// depth tap) then stay in the L2 cache across its taps.
const MAX_COLS: usize = 2048;

/// Elements of conv2d's im2col buffer at most per call on the whole-tensor path (1 GiB in f32).
const SLICE_BUDGET: usize = 1 << 28;

/// `nn.Conv3d(in, out, kernel, padding=padding)` (stride 1, no dilation, no groups) in
/// inference, for x `(batch, in, depth, height, width)`.
#[derive(Debug, Clone)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    /// The CPU path's weights, laid out for it.
    cpu: Option<CpuConv>,
}

/// Loads `weight` `[out, in, kernel, kernel, kernel]` and `bias` `[out]`, PyTorch's names.
pub fn conv3d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv3d> {
    let weight = vb.get((out_channels, in_channels, kernel, kernel, kernel), "weight")?;
    let bias = vb.get(out_channels, "bias")?;
    Ok(Conv3d::new(weight, Some(bias), padding))
}

impl Conv3d {
    /// A convolution from its weight `[out, in, k, k, k]`, optional bias `[out]` and padding (the
    /// same on every side). A weight of another shape is refused by [`Module::forward`].
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Self {
        let cpu = CpuConv::new(&weight, bias.as_ref(), 5);
        Self { weight, bias, padding, cpu }
    }

    /// The weight `[out, in, k, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Checks the weight, bias and input against each other; returns (out, kernel) and the
    /// output's (depth, height, width).
    fn geometry(&self, x: &Tensor) -> Result<(usize, usize, [usize; 3])> {
        let &[out, c_in, k, kh, kw] = self.weight.dims() else {
            bail!("conv3d weight has shape {:?}, expected [out, in, k, k, k]", self.weight.dims())
        };
        if k != kh || k != kw || k == 0 {
            bail!("conv3d weight has shape {:?}, expected a cubic kernel", self.weight.dims());
        }
        if let Some(b) = &self.bias {
            if b.dims() != [out] {
                bail!("conv3d bias has shape {:?}, expected [{out}]", b.dims());
            }
        }
        let &[_, channels, d, h, w] = x.dims() else {
            bail!("conv3d wants x as (batch, {c_in}, depth, height, width), got shape {:?}", x.dims())
        };
        if channels != c_in {
            bail!("conv3d over {c_in} input channels got x of shape {:?}", x.dims());
        }
        let p = self.padding;
        let size = |n: usize| (n + 2 * p).checked_sub(k - 1).filter(|&o| o > 0);
        let (Some(od), Some(oh), Some(ow)) = (size(d), size(h), size(w)) else {
            bail!("conv3d: x of shape {:?} padded by {p} is smaller than the kernel {k}", x.dims())
        };
        Ok((out, k, [od, oh, ow]))
    }

    /// The CPU path: the tap convolution over the padded, flattened volume.
    fn forward_taps(
        &self,
        x: &Tensor,
        taps: &Tensor,
        bias: &Tensor,
        k: usize,
        [od, oh, ow]: [usize; 3],
    ) -> Result<Tensor> {
        let p = self.padding;
        let (batch, c_in, d, h, w) = x.dims5()?;
        let (dp, hp, wp) = (d + 2 * p, h + 2 * p, w + 2 * p);
        let x = if p > 0 {
            x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?.pad_with_zeros(4, p, p)?
        } else {
            x.clone()
        };
        let x = x.contiguous()?.reshape((batch, c_in, dp * hp * wp))?;
        let mut shifts = Vec::with_capacity(k * k * k);
        for td in 0..k {
            for th in 0..k {
                for tw in 0..k {
                    shifts.push((td * hp * wp + th * wp + tw) as isize);
                }
            }
        }
        // Every padded-grid position of the output's depth slices; rows and columns past the
        // valid ones are cropped below.
        let out_len = od * hp * wp;
        let y = tap_conv(&x, taps, bias, TapConv { shifts, out_len, max_cols: MAX_COLS })?;
        let out = y.dim(1)?;
        y.reshape((batch, out, od, hp, wp))?.narrow(3, 0, oh)?.narrow(4, 0, ow)?.contiguous()
    }

    /// Any device: per depth tap, candle's conv2d over the output's depth slices as a batch. The
    /// output depths go in chunks so that conv2d's im2col buffer (in·k²·Ho·Wo per slice) stays
    /// under `budget` elements.
    fn forward_slices(&self, x: &Tensor, k: usize, [od, oh, ow]: [usize; 3], budget: usize) -> Result<Tensor> {
        let p = self.padding;
        let (batch, c_in, _, h, w) = x.dims5()?;
        let out = self.weight.dim(0)?;
        let weight = self.weight.to_dtype(x.dtype())?;
        let taps: Vec<Tensor> =
            (0..k).map(|td| weight.narrow(2, td, 1)?.squeeze(2)?.contiguous()).collect::<Result<_>>()?;
        // (batch, Dp, in, H, W): a depth window is then one contiguous block per batch entry.
        let x = x.pad_with_zeros(2, p, p)?.permute((0, 2, 1, 3, 4))?.contiguous()?;
        let chunk = (budget / (batch * c_in * k * k * oh * ow).max(1)).clamp(1, od);
        let mut chunks = Vec::with_capacity(od.div_ceil(chunk));
        for first in (0..od).step_by(chunk) {
            let len = chunk.min(od - first);
            let mut y: Option<Tensor> = None;
            for (td, w_td) in taps.iter().enumerate() {
                let slices = x.narrow(1, first + td, len)?.reshape((batch * len, c_in, h, w))?;
                let part = slices.conv2d(w_td, p, 1, 1, 1)?;
                y = Some(match y {
                    Some(acc) => (acc + part)?,
                    None => part,
                });
            }
            chunks.push(y.expect("k ≥ 1").reshape((batch, len, out, oh, ow))?);
        }
        let mut y = Tensor::cat(&chunks, 1)?.permute((0, 2, 1, 3, 4))?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&b.to_dtype(y.dtype())?.reshape((1, out, 1, 1, 1))?)?;
        }
        y.contiguous()
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, k, size) = self.geometry(x)?;
        if !(x.device().is_cpu() && x.dtype() == DType::F32) {
            return self.forward_slices(x, k, size, SLICE_BUDGET);
        }
        match &self.cpu {
            Some(CpuConv::Winograd(u, bias)) => winograd_conv(&x.contiguous()?, u, bias, self.padding, self.padding),
            Some(CpuConv::Taps(taps, bias)) => self.forward_taps(&x.contiguous()?, taps, bias, k, size),
            None => self.forward_slices(x, k, size, SLICE_BUDGET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The whole-tensor path in chunks of output depths (a tiny budget) gives the one-chunk
    /// result, and the CPU paths (Winograd's for k = 3, the taps' for k = 2) give it too.
    #[test]
    fn depth_chunks_and_cpu_paths_give_the_same_convolution() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1., (2, 3, 5, 4, 6), &dev)?;
        for (k, winograd) in [(3, true), (2, false)] {
            let weight = Tensor::randn(0f64, 0.3, (4, 3, k, k, k), &dev)?;
            let bias = Tensor::randn(0f64, 1., 4, &dev)?;
            let conv = Conv3d::new(weight.clone(), Some(bias.clone()), 1);
            let (_, k, size) = conv.geometry(&x)?;
            let whole = conv.forward_slices(&x, k, size, usize::MAX)?;
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            let cpu = Conv3d::new(f32(&weight)?, Some(f32(&bias)?), 1);
            assert_eq!(matches!(cpu.cpu, Some(CpuConv::Winograd(..))), winograd, "kernel {k}");
            let fast = cpu.forward(&f32(&x)?)?.to_dtype(DType::F64)?;
            let slice = k * k * 4 * 6;
            for budget in [1, 2 * 3 * slice * 2, 2 * 3 * slice * 3] {
                let chunked = conv.forward_slices(&x, k, size, budget)?;
                let diff = (&chunked - &whole)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
                assert!(diff < 1e-12, "kernel {k}, budget {budget}: {diff}");
            }
            // Relative to the output's scale: Winograd's transforms round more than a direct sum.
            let diff = (&fast - &whole)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
            let scale = whole.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?.max(1.0);
            assert!(diff < 1e-5 * scale, "kernel {k}: the CPU path against slices: {diff} of {scale}");
        }
        Ok(())
    }
}
