//! Batch normalisation in inference (`nn.BatchNorm2d` / `nn.BatchNorm3d` in `eval()`), as
//! LivePortrait's `SameBlock2d`, `DownBlock3d`, `ResBlock3d` and dense motion network use it.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Module, VarBuilder};

/// `nn.BatchNorm2d` / `nn.BatchNorm3d`'s default epsilon, which LivePortrait keeps.
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// `nn.BatchNorm{1,2,3}d(affine=True)` in `eval()`: `(x − running_mean) / √(running_var + eps) ·
/// weight + bias` per channel. The running statistics are folded into one scale and one shift
/// per channel at load, so a forward pass is one broadcast multiply-add.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    scale: Tensor,
    shift: Tensor,
    channels: usize,
}

impl BatchNorm {
    /// Loads `weight`, `bias`, `running_mean` and `running_var` (each `[channels]`), PyTorch's
    /// names; `num_batches_tracked` is not needed in inference.
    pub fn new(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(channels, "weight")?;
        let bias = vb.get(channels, "bias")?;
        let mean = vb.get(channels, "running_mean")?;
        let var = vb.get(channels, "running_var")?;
        Self::from_stats(&weight, &bias, &mean, &var, eps)
    }

    /// From the four per-channel tensors, as [`BatchNorm::new`] loads them.
    pub fn from_stats(weight: &Tensor, bias: &Tensor, mean: &Tensor, var: &Tensor, eps: f64) -> Result<Self> {
        let channels = weight.elem_count();
        for (name, t) in [("weight", weight), ("bias", bias), ("running_mean", mean), ("running_var", var)] {
            if t.dims() != [channels] {
                bail!("batch norm {name} has shape {:?}, expected [{channels}]", t.dims());
            }
        }
        // In f32 at least, as PyTorch folds them in its CPU kernel, whatever the weights' dtype.
        let dtype = super::compute_dtype(weight.dtype());
        let f = |t: &Tensor| t.to_dtype(dtype);
        let scale = f(weight)?.div(&f(var)?.affine(1., eps)?.sqrt()?)?;
        let shift = f(bias)?.sub(&f(mean)?.mul(&scale)?)?;
        Ok(Self { scale, shift, channels })
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 || x.dim(1)? != self.channels {
            bail!(
                "batch norm over {} channels got x of shape {:?}, expected (batch, {}, ...)",
                self.channels,
                x.dims(),
                self.channels
            );
        }
        let mut shape = vec![1; x.rank()];
        shape[1] = self.channels;
        let dtype = x.dtype();
        let xf = x.to_dtype(super::compute_dtype(dtype))?;
        let scale = self.scale.to_dtype(xf.dtype())?.reshape(shape.as_slice())?;
        let shift = self.shift.to_dtype(xf.dtype())?.reshape(shape.as_slice())?;
        xf.broadcast_mul(&scale)?.broadcast_add(&shift)?.to_dtype(dtype)
    }
}
