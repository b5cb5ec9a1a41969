//! Reflect padding of the last dimension.

use candle_core::{bail, Result, Tensor};

/// Pads the last dimension by reflection about its first and last elements (which are not
/// repeated), as PyTorch's `F.pad(x, (left, right), mode="reflect")` and `nn.ReflectionPad1d`.
///
/// Both pads must be shorter than the length, as in PyTorch: `[0, 1, 2, 3]` padded by 3 on the
/// left gives `[3, 2, 1, 0, 1, 2, 3]`, and by 4 it is an error.
pub fn reflect_pad_1d(x: &Tensor, left: usize, right: usize) -> Result<Tensor> {
    if x.rank() == 0 {
        bail!("reflect padding needs a tensor with a length dimension, got a scalar");
    }
    let dim = x.rank() - 1;
    let len = x.dim(dim)?;
    if left >= len || right >= len {
        bail!("reflect padding ({left}, {right}) must be shorter than the length {len} of shape {:?}", x.dims());
    }
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    // The mirrored ends are short (a pad each): flipping them gathers `left + right` columns
    // with one small index tensor, on the tensor's own device (candle gathers only from
    // contiguous tensors, hence the copies of the two short ends).
    let mut parts = Vec::with_capacity(3);
    if left > 0 {
        parts.push(x.narrow(dim, 1, left)?.contiguous()?.flip(&[dim])?);
    }
    parts.push(x.clone());
    if right > 0 {
        parts.push(x.narrow(dim, len - 1 - right, right)?.contiguous()?.flip(&[dim])?);
    }
    Tensor::cat(&parts, dim)
}
