//! 1-D resampling as `F.interpolate` on `(batch, channels, length)` tensors.

use candle_core::{bail, DType, Result, Tensor};

/// The output of a resampling, given the way `F.interpolate` takes it: a `size` or a
/// `scale_factor` (which also sets the sampling positions: scaling by 1/300 and by 300 is not
/// always the same as asking for the sizes they give).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    /// `size=`: the output length.
    Size(usize),
    /// `scale_factor=` (with `recompute_scale_factor` unset): the output length is
    /// ⌊length × factor⌋, and positions map back through 1 / factor.
    Scale(f64),
}

/// Linear interpolation along the last dimension of `(batch, channels, length)`, as
/// `F.interpolate(x, size or scale_factor, mode="linear", align_corners=False)`: output sample
/// j reads position (j + ½)·s − ½ (clamped at 0), s = 1/factor or length/size, computed in f32
/// as PyTorch's CPU kernel does.
pub fn interpolate_linear_1d(x: &Tensor, resize: Resize) -> Result<Tensor> {
    let (_, _, len) = x.dims3().map_err(|e| e.context("interpolate (linear) wants (batch, channels, length)"))?;
    let out = output_len(len, resize, "linear")?;
    if out == len {
        // PyTorch copies when the length does not change, whatever the factor.
        return Ok(x.clone());
    }
    let device = x.device();
    let scale = scale_f32(len, out, resize);
    let dst = Tensor::arange(0u32, out as u32, device)?.to_dtype(DType::F32)?;
    let src = dst.affine(1., 0.5)?.affine(scale as f64, -0.5)?.relu()?;
    let last = (len - 1) as f64;
    let i0 = src.floor()?.minimum(last)?;
    let lambda1 = (&src - &i0)?.clamp(0., 1.)?;
    let lambda0 = lambda1.affine(-1., 1.)?;
    let i1 = i0.affine(1., 1.)?.minimum(last)?;
    let (i0, i1) = (i0.to_dtype(DType::U32)?, i1.to_dtype(DType::U32)?);
    let dtype = x.dtype();
    let w0 = lambda0.to_dtype(dtype)?.reshape((1, 1, out))?;
    let w1 = lambda1.to_dtype(dtype)?.reshape((1, 1, out))?;
    x.index_select(&i0, 2)?.broadcast_mul(&w0)? + x.index_select(&i1, 2)?.broadcast_mul(&w1)?
}

/// Nearest-neighbour resampling along the last dimension of `(batch, channels, length)`, as
/// `F.interpolate(x, size or scale_factor, mode="nearest")` and `nn.Upsample`: output sample j
/// copies ⌊j·s⌋ (at most the last), s in f32 as in PyTorch, so an integer factor repeats each
/// sample that many times.
pub fn interpolate_nearest_1d(x: &Tensor, resize: Resize) -> Result<Tensor> {
    let (_, _, len) = x.dims3().map_err(|e| e.context("interpolate (nearest) wants (batch, channels, length)"))?;
    let out = output_len(len, resize, "nearest")?;
    if out == len {
        return Ok(x.clone());
    }
    let scale = scale_f32(len, out, resize);
    let dst = Tensor::arange(0u32, out as u32, x.device())?.to_dtype(DType::F32)?;
    let src = dst.affine(scale as f64, 0.)?.floor()?.minimum((len - 1) as f64)?;
    x.index_select(&src.to_dtype(DType::U32)?, 2)
}

/// The output length PyTorch computes: the size itself, or ⌊length × factor⌋ in f64.
fn output_len(len: usize, resize: Resize, mode: &str) -> Result<usize> {
    if len == 0 {
        bail!("interpolate ({mode}): the input has no samples");
    }
    let out = match resize {
        Resize::Size(size) => size,
        Resize::Scale(factor) => {
            if !(factor.is_finite() && factor > 0.) {
                bail!("interpolate ({mode}): the scale factor must be finite and above 0, got {factor}");
            }
            (len as f64 * factor).floor().min(u32::MAX as f64) as usize
        }
    };
    // u32 indices (candle's gather type) and f32 positions that stay exact below 2^24.
    if out == 0 || out >= 1 << 24 {
        bail!("interpolate ({mode}): output length {out} from {len} samples ({resize:?}) is not from 1 to 2^24 - 1");
    }
    Ok(out)
}

/// Source step per output sample, as PyTorch's `compute_scales_value`: 1/factor when a factor
/// was given (computed in f64, then rounded to f32), else length/size in f32.
fn scale_f32(len: usize, out: usize, resize: Resize) -> f32 {
    match resize {
        Resize::Scale(factor) => (1.0 / factor) as f32,
        Resize::Size(_) => len as f32 / out as f32,
    }
}
