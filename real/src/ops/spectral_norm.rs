//! The weight of a layer under `torch.nn.utils.spectral_norm`, as LivePortrait's SPADE generator
//! (`SPADEResnetBlock`'s `conv_0`, `conv_1`, `conv_s`) stores it.

use candle_core::{bail, Result, Shape, Tensor};
use candle_nn::VarBuilder;

/// `weight_orig / σ` with `σ = u · (W v)`, W being `weight_orig` reshaped to `(out, −1)`: the
/// weight `spectral_norm` computes in `eval()`, where it runs no power iteration and uses the
/// stored `weight_u` `[out]` and `weight_v` `[in·k…]` as they are. σ is computed here, once.
/// `shape` is the weight's, output channels first.
pub fn spectral_norm_weight<S: Into<Shape>>(vb: &VarBuilder, shape: S) -> Result<Tensor> {
    let shape: Shape = shape.into();
    let Some((&out, rest)) = shape.dims().split_first() else {
        bail!("spectral norm of a scalar weight");
    };
    let cols: usize = rest.iter().product();
    let weight = vb.get(shape.clone(), "weight_orig")?;
    let u = vb.get(out, "weight_u")?;
    let v = vb.get(cols, "weight_v")?;
    let dtype = super::compute_dtype(weight.dtype());
    let w_mat = weight.to_dtype(dtype)?.reshape((out, cols))?;
    let wv = w_mat.matmul(&v.to_dtype(dtype)?.reshape((cols, 1))?)?;
    let sigma = u.to_dtype(dtype)?.reshape((1, out))?.matmul(&wv)?.reshape(())?;
    weight.to_dtype(dtype)?.broadcast_div(&sigma)?.to_dtype(weight.dtype())
}
