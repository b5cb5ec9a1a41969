//! Instance normalisation and StyleTTS 2's adaptive instance normalisation, on
//! `(batch, channels, length)` tensors, and LivePortrait's `nn.InstanceNorm2d` on
//! `(batch, channels, height, width)` ones.

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use rayon::prelude::*;

use super::cpu_f32;

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

/// `nn.InstanceNorm2d(affine=False)` (`F.instance_norm` without running statistics) for x
/// `(batch, channels, height, width)`: each (batch, channel) plane normalised over its height ×
/// width, which is [`instance_norm_1d`] over the flattened plane.
///
/// At least two pixels per plane are needed, as in PyTorch, which refuses one.
pub fn instance_norm_2d(x: &Tensor, eps: f64) -> Result<Tensor> {
    let (batch, channels, height, width) =
        x.dims4().map_err(|e| e.context("instance norm 2d wants (batch, channels, height, width)"))?;
    if height * width < 2 {
        bail!("instance norm 2d needs at least 2 pixels per plane to normalise over, got shape {:?}", x.dims());
    }
    instance_norm_1d(&x.reshape((batch, channels, height * width))?, None, None, eps)?.reshape(x.shape())
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

    /// `snake_1d(self.forward(x, style), alpha)`, iSTFTNet's AdaIN-then-Snake. On the CPU in f32
    /// it is one fused pass per channel ([`InstanceNormSnake`]) instead of about a dozen
    /// elementwise passes over the whole tensor; elsewhere it is the two ops in turn.
    pub fn forward_snake(&self, x: &Tensor, style: &Tensor, alpha: &Tensor) -> Result<Tensor> {
        let fused = x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous();
        if !fused {
            return snake_1d(&self.forward(x, style)?, alpha);
        }
        let (batch, channels, _) = x.dims3()?;
        if channels != self.channels || style.rank() != 2 || style.dim(0)? != batch {
            return self.forward(x, style); // its error message
        }
        // (1 + γ) · (w · x̂ + b) + β = x̂ · scale + shift, per (batch, channel).
        let h = self.fc.forward(style)?;
        let gain = h.narrow(1, 0, channels)?.affine(1., 1.)?;
        let beta = h.narrow(1, channels, channels)?;
        let (scale, shift) = match (&self.norm.weight, &self.norm.bias) {
            (Some(w), Some(b)) => (gain.broadcast_mul(w)?, gain.broadcast_mul(b)?.add(&beta)?),
            (Some(w), None) => (gain.broadcast_mul(w)?, beta),
            (None, Some(b)) => (gain.clone(), gain.broadcast_mul(b)?.add(&beta)?),
            (None, None) => (gain, beta),
        };
        let params = Tensor::stack(&[scale, shift], 1)?.contiguous()?;
        let alpha = alpha.flatten_all()?.contiguous()?;
        x.apply_op3_no_bwd(&params, &alpha, &InstanceNormSnake { eps: self.norm.eps })
    }
}

/// Snake, `x + sin²(α·x) / α` with one α per channel (`[channels]` or `[1, channels, 1]`), for
/// `(batch, channels, length)` x. 1/α is computed as PyTorch does, `reciprocal(α)`.
pub fn snake_1d(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    let alpha = alpha.reshape((1, (), 1))?;
    x + x.broadcast_mul(&alpha)?.sin()?.sqr()?.broadcast_mul(&alpha.recip()?)?
}

/// The CPU kernel of [`AdaIn1d::forward_snake`]: for each (batch, channel) row of x, the mean and
/// the biased variance (accumulated in f64, two passes), then in one pass
/// `y = (x − μ) / √(σ² + eps) · scale + shift` and `y + sin²(α·y) / α`. Inputs: x `(batch,
/// channels, length)`, params `(batch, 2, channels)` (scale, shift), alpha `[channels]`; rows are
/// spread over rayon's pool.
struct InstanceNormSnake {
    eps: f64,
}

impl CustomOp3 for InstanceNormSnake {
    fn name(&self) -> &'static str {
        "instance-norm-snake"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        p: &CpuStorage,
        p_l: &Layout,
        a: &CpuStorage,
        a_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, params, alpha) = (cpu_f32(x, x_l, op)?, cpu_f32(p, p_l, op)?, cpu_f32(a, a_l, op)?);
        let &[batch, channels, len] = x_l.dims() else {
            bail!("instance-norm-snake: x must be (batch, channels, length)")
        };
        if p_l.dims() != [batch, 2, channels] || alpha.len() != channels || len < 2 {
            bail!(
                "instance-norm-snake: x {:?}, params {:?}, alpha {:?} do not fit",
                x_l.dims(),
                p_l.dims(),
                a_l.dims()
            );
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(len).zip(x.par_chunks(len)).enumerate().for_each(|(row, (y, x))| {
            let (n, c) = (row / channels, row % channels);
            let (scale, shift) = (params[n * 2 * channels + c], params[(n * 2 + 1) * channels + c]);
            let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / len as f64;
            let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / len as f64;
            let gain = ((var + self.eps).sqrt().recip() as f32) * scale;
            let (mean, alpha) = (mean as f32, alpha[c]);
            let inv_alpha = alpha.recip();
            for (y, &x) in y.iter_mut().zip(x) {
                let v = (x - mean) * gain + shift;
                let s = (alpha * v).sin();
                *y = v + s * s * inv_alpha;
            }
        });
        Ok((CpuStorage::F32(y), x_l.shape().clone()))
    }
}
