//! Folding `torch.nn.utils.weight_norm`'s two tensors into one weight.

use candle_core::{bail, Result, Shape, Tensor};
use candle_nn::VarBuilder;

/// `g · v / ‖v‖`, the norm taken over every dimension but `dim`, as
/// `torch.nn.utils.weight_norm(module, dim=dim)` computes the weight from `weight_g` and
/// `weight_v` (PyTorch's `v * (g / norm)`). `g` has `v`'s shape with 1 everywhere but `dim`.
/// Kokoro uses `dim=0`: output channels for a convolution, input channels for a transposed one.
pub fn fold_weight_norm(g: &Tensor, v: &Tensor, dim: usize) -> Result<Tensor> {
    if dim >= v.rank() {
        bail!("weight norm over dimension {dim} of a weight of shape {:?}", v.dims());
    }
    let mut g_shape = vec![1; v.rank()];
    g_shape[dim] = v.dim(dim)?;
    if g.dims() != g_shape.as_slice() {
        bail!("weight norm: weight_g has shape {:?}, expected {g_shape:?} for weight_v {:?}", g.dims(), v.dims());
    }
    let others: Vec<usize> = (0..v.rank()).filter(|&d| d != dim).collect();
    let norm = if others.is_empty() { v.abs()? } else { v.sqr()?.sum_keepdim(others)?.sqrt()? };
    v.broadcast_mul(&(g / norm)?)
}

/// Loads the weight of a weight-normed layer: `weight_g` and `weight_v` folded with
/// [`fold_weight_norm`] (PyTorch's checkpoints, Kokoro's `.pth`), or a plain `weight` (a
/// conversion that folded them already). `shape` is the weight's.
pub fn weight_norm_weight<S: Into<Shape>>(vb: &VarBuilder, shape: S, dim: usize) -> Result<Tensor> {
    let shape: Shape = shape.into();
    if vb.contains_tensor("weight_g") || vb.contains_tensor("weight_v") {
        let mut g_shape = vec![1; shape.rank()];
        if dim >= shape.rank() {
            bail!("weight norm over dimension {dim} of a weight of shape {shape:?}");
        }
        g_shape[dim] = shape.dims()[dim];
        let g = vb.get(g_shape, "weight_g")?;
        let v = vb.get(shape, "weight_v")?;
        fold_weight_norm(&g, &v, dim)
    } else {
        vb.get(shape, "weight")
    }
}
