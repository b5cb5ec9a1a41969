//! A depthwise 2-D convolution (`nn.Conv2d(C, C, k, padding, groups=C)`, stride 1), as ConvNeXt V2's
//! 7×7 `dwconv` in LivePortrait's motion extractor (`convnextv2.py`'s `Block`). candle's grouped
//! conv2d runs one convolution per group, here per channel.

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{compute_dtype, cpu_f32};

/// `F.conv2d(x, weight, bias, stride=1, padding, groups=C)` for x `(N, C, H, W)` and weight
/// `[C, 1, kh, kw]`, bias `[C]` → `(N, C, H + 2·padding − kh + 1, W + 2·padding − kw + 1)`.
///
/// On the CPU in f32 it is one pass per (batch, channel) plane that adds each tap's row of
/// weighted input into the output row ([`DepthwiseConv2d`]); elsewhere kh·kw broadcast
/// multiply-adds of shifted views of the zero-padded input.
pub fn depthwise_conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        bail!("depthwise conv2d wants x as (batch, channels, height, width), got shape {:?}", x.dims())
    };
    let &[wc, one, kh, kw] = weight.dims() else {
        bail!("depthwise conv2d weight has shape {:?}, expected [{c}, 1, kh, kw]", weight.dims())
    };
    if wc != c || one != 1 || kh == 0 || kw == 0 {
        bail!(
            "depthwise conv2d weight has shape {:?}, expected [{c}, 1, kh, kw] for x of shape {:?}",
            weight.dims(),
            x.dims()
        );
    }
    if let Some(b) = bias {
        if b.dims() != [c] {
            bail!("depthwise conv2d bias has shape {:?}, expected [{c}]", b.dims());
        }
    }
    let (Some(oh), Some(ow)) = ((h + 2 * padding).checked_sub(kh - 1), (w + 2 * padding).checked_sub(kw - 1)) else {
        bail!("depthwise conv2d: x of shape {:?} padded by {padding} is smaller than the kernel {kh}×{kw}", x.dims())
    };
    if oh == 0 || ow == 0 {
        bail!("depthwise conv2d: x of shape {:?} padded by {padding} is smaller than the kernel {kh}×{kw}", x.dims());
    }
    let dtype = x.dtype();
    if x.device().is_cpu() && dtype == DType::F32 {
        let weight = weight.to_dtype(DType::F32)?.contiguous()?;
        let bias = match bias {
            Some(b) => b.to_dtype(DType::F32)?.contiguous()?,
            None => Tensor::zeros(c, DType::F32, x.device())?,
        };
        return x.contiguous()?.apply_op3_no_bwd(&weight, &bias, &DepthwiseConv2d { padding });
    }
    let cdtype = compute_dtype(dtype);
    let xp = x.to_dtype(cdtype)?.pad_with_zeros(2, padding, padding)?.pad_with_zeros(3, padding, padding)?;
    let weight = weight.to_dtype(cdtype)?;
    let mut y = match bias {
        Some(b) => b.to_dtype(cdtype)?.reshape((1, c, 1, 1))?.broadcast_as((n, c, oh, ow))?.contiguous()?,
        None => Tensor::zeros((n, c, oh, ow), cdtype, x.device())?,
    };
    for ky in 0..kh {
        for kx in 0..kw {
            let tap = weight.narrow(2, ky, 1)?.narrow(3, kx, 1)?.reshape((1, c, 1, 1))?;
            y = (y + xp.narrow(2, ky, oh)?.narrow(3, kx, ow)?.broadcast_mul(&tap)?)?;
        }
    }
    y.to_dtype(dtype)
}

/// The CPU kernel of [`depthwise_conv2d`]: contiguous f32 x `(N, C, H, W)`, weight `[C, 1, kh,
/// kw]`, bias `[C]`. Each (batch, channel) plane is one rayon task; for each output row and tap,
/// the tap's weight times the in-range stretch of one input row is added to the output row.
struct DepthwiseConv2d {
    padding: usize,
}

impl CustomOp3 for DepthwiseConv2d {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        k: &CpuStorage,
        k_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, k, b) = (cpu_f32(x, x_l, op)?, cpu_f32(k, k_l, op)?, cpu_f32(b, b_l, op)?);
        let (&[n, c, h, w], &[kc, 1, kh, kw], &[bc]) = (x_l.dims(), k_l.dims(), b_l.dims()) else {
            bail!("depthwise-conv2d: x {:?}, weight {:?}, bias {:?} do not fit", x_l.dims(), k_l.dims(), b_l.dims())
        };
        let p = self.padding;
        let (oh, ow) = ((h + 2 * p + 1).saturating_sub(kh), (w + 2 * p + 1).saturating_sub(kw));
        if kc != c || bc != c || oh == 0 || ow == 0 {
            bail!("depthwise-conv2d: x {:?}, weight {:?}, bias {:?} do not fit", x_l.dims(), k_l.dims(), b_l.dims());
        }
        let mut y = vec![0f32; n * c * oh * ow];
        y.par_chunks_mut(oh * ow).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let input = &x[plane * h * w..(plane + 1) * h * w];
            let taps = &k[ch * kh * kw..(ch + 1) * kh * kw];
            out.fill(b[ch]);
            for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
                for ky in 0..kh {
                    // Input row oy + ky − p; rows in the padding add nothing.
                    let Some(iy) = (oy + ky).checked_sub(p).filter(|&iy| iy < h) else { continue };
                    let in_row = &input[iy * w..(iy + 1) * w];
                    for kx in 0..kw {
                        // Output column ox reads input column ox + kx − p.
                        let first = p.saturating_sub(kx);
                        let last = (w + p).saturating_sub(kx).min(ow);
                        if first >= last {
                            continue;
                        }
                        let weight = taps[ky * kw + kx];
                        let src = &in_row[first + kx - p..last + kx - p];
                        for (o, &v) in row[first..last].iter_mut().zip(src) {
                            *o += v * weight;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }
}
