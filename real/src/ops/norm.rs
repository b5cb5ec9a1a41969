//! Instance normalisation and StyleTTS 2's adaptive instance normalisation, on
//! `(batch, channels, length)` tensors.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

/// `nn.InstanceNorm1d`'s default epsilon, which Kokoro's AdaIN layers keep.
pub const INSTANCE_NORM_EPS: f64 = 1e-5;

/// Normalises each (batch, channel) row over its length to mean 0 and variance 1 (the biased
/// variance, plus `eps`), then scales and shifts per channel when given, as
/// `F.instance_norm(x, weight=, bias=, eps=)` without running statistics.
///
/// At least two time steps are needed, as in PyTorch, which refuses one.
pub fn instance_norm_1d(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let (_, channels, len) = x.dims3().map_err(|e| e.context("instance norm wants (batch, channels, length)"))?;
    if len < 2 {
        bail!("instance norm needs at least 2 time steps to normalise over, got shape {:?}", x.dims());
    }
    let dtype = x.dtype();
    let xf = x.to_dtype(super::compute_dtype(dtype))?;
    // Two passes (mean, then the mean square of the centred values), which is what keeps the
    // variance accurate when the mean is large next to the spread.
    let centred = xf.broadcast_sub(&xf.mean_keepdim(2)?)?;
    let var = centred.sqr()?.mean_keepdim(2)?;
    let mut y = centred.broadcast_div(&var.affine(1., eps)?.sqrt()?)?;
    for (name, param) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = param {
            if p.dims() != [channels] {
                bail!("instance norm {name} has shape {:?}, expected [{channels}]", p.dims());
            }
            let p = p.to_dtype(y.dtype())?.reshape((1, channels, 1))?;
            y = if name == "weight" { y.broadcast_mul(&p)? } else { y.broadcast_add(&p)? };
        }
    }
    y.to_dtype(dtype)
}

/// `nn.InstanceNorm1d` in inference: per-channel `weight` and `bias` when affine.
#[derive(Debug, Clone)]
pub struct InstanceNorm1d {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl InstanceNorm1d {
    /// Loads `weight` and `bias` (shape `[channels]`) when `affine`, as PyTorch names them.
    pub fn new(channels: usize, affine: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) =
            if affine { (Some(vb.get(channels, "weight")?), Some(vb.get(channels, "bias")?)) } else { (None, None) };
        Ok(Self { weight, bias, eps })
    }
}

impl Module for InstanceNorm1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        instance_norm_1d(x, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// StyleTTS 2's `AdaIN1d` (Kokoro's `istftnet.py`): instance norm, then `(1 + γ) · x + β` with
/// γ and β, one per channel, the two halves of a linear map of the style vector.
#[derive(Debug, Clone)]
pub struct AdaIn1d {
    norm: InstanceNorm1d,
    fc: Linear,
    channels: usize,
}

impl AdaIn1d {
    /// Loads `fc.weight` `[2·channels, style_dim]`, `fc.bias`, and `norm.weight` / `norm.bias`
    /// when the checkpoint has them. Kokoro builds the norm with `affine=True` but loads its
    /// checkpoint with `strict=False`, so a missing `norm.*` pair keeps PyTorch's initial ones
    /// and zeros, which is the plain norm used here.
    pub fn new(style_dim: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        let fc = candle_nn::linear(style_dim, 2 * channels, vb.pp("fc"))?;
        let affine = vb.contains_tensor("norm.weight") || vb.contains_tensor("norm.bias");
        let norm = InstanceNorm1d::new(channels, affine, INSTANCE_NORM_EPS, vb.pp("norm"))?;
        Ok(Self { norm, fc, channels })
    }

    /// `x`: `(batch, channels, length)`; `style`: `(batch, style_dim)`.
    pub fn forward(&self, x: &Tensor, style: &Tensor) -> Result<Tensor> {
        let (batch, channels, _) = x.dims3().map_err(|e| e.context("AdaIN wants x as (batch, channels, length)"))?;
        if channels != self.channels || style.rank() != 2 || style.dim(0)? != batch {
            bail!(
                "AdaIN over {} channels got x {:?} and style {:?}; expected ({batch}, {}, length) and ({batch}, style_dim)",
                self.channels,
                x.dims(),
                style.dims(),
                self.channels
            );
        }
        let h = self.fc.forward(style)?.unsqueeze(2)?;
        let gamma = h.narrow(1, 0, channels)?;
        let beta = h.narrow(1, channels, channels)?;
        self.norm.forward(x)?.broadcast_mul(&gamma.affine(1., 1.)?)?.broadcast_add(&beta)
    }
}
