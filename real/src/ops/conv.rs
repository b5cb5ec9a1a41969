//! Depthwise transposed 1-D convolution (`groups == channels`) without a loop over groups.

use candle_core::{bail, Result, Tensor};
use candle_nn::{Module, VarBuilder};

/// `nn.ConvTranspose1d`'s geometry, PyTorch's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransposeConfig {
    /// Samples between input positions in the output.
    pub stride: usize,
    /// Trimmed from both ends of the full output.
    pub padding: usize,
    /// Added to the right end (below `max(stride, dilation)`, as PyTorch requires).
    pub output_padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
}

impl Default for TransposeConfig {
    fn default() -> Self {
        Self { stride: 1, padding: 0, output_padding: 0, dilation: 1 }
    }
}

/// `nn.ConvTranspose1d(C, C, K, groups=C)` applied to `x` `(batch, C, length)` with `weight`
/// `[C, 1, K]` and an optional `bias` `[C]`: output length (length − 1)·stride − 2·padding +
/// dilation·(K − 1) + output_padding + 1.
///
/// candle runs grouped convolutions one group at a time (a loop of C small ones); here each
/// kernel tap is one broadcast multiply-add over all channels: the input is spread with
/// stride − 1 zeros between samples, padded, and tap k adds its shifted copy times
/// `weight[:, 0, k]`. K taps, so K + a few tensor ops whatever C is.
pub fn depthwise_conv_transpose_1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: TransposeConfig,
) -> Result<Tensor> {
    let (batch, channels, len) =
        x.dims3().map_err(|e| e.context("depthwise transposed conv wants (batch, channels, length)"))?;
    let (w_channels, per_group, taps) =
        weight.dims3().map_err(|e| e.context("depthwise transposed conv wants a weight [channels, 1, kernel]"))?;
    let TransposeConfig { stride, padding, output_padding, dilation } = cfg;
    if w_channels != channels || per_group != 1 || taps == 0 {
        bail!(
            "depthwise transposed conv: weight {:?} does not fit input {:?}; expected [{channels}, 1, kernel]",
            weight.dims(),
            x.dims()
        );
    }
    if let Some(b) = bias {
        if b.dims() != [channels] {
            bail!("depthwise transposed conv: bias {:?}, expected [{channels}]", b.dims());
        }
    }
    if stride == 0 || dilation == 0 || output_padding >= stride.max(dilation) || len == 0 {
        bail!(
            "depthwise transposed conv: needs stride and dilation >= 1, output_padding below both's maximum and a nonempty input; got {cfg:?}, input {:?}",
            x.dims()
        );
    }
    let full = (len - 1) * stride + dilation * (taps - 1) + 1 + output_padding;
    if full <= 2 * padding {
        bail!(
            "depthwise transposed conv: padding {padding} leaves no output from {len} samples ({cfg:?}, kernel {taps})"
        );
    }
    let out_len = full - 2 * padding;

    let spread_len = (len - 1) * stride + 1;
    let spread = if stride == 1 {
        x.clone()
    } else {
        let zeros = Tensor::zeros((batch, channels, len, stride - 1), x.dtype(), x.device())?;
        Tensor::cat(&[&x.unsqueeze(3)?, &zeros], 3)?
            .reshape((batch, channels, len * stride))?
            .narrow(2, 0, spread_len)?
    };
    // Output j (before trimming) = Σ_k w[k] · spread[j − k·dilation]; `reach` zeros on the left
    // make every index non-negative, and enough on the right keep every tap's slice in range.
    let reach = dilation * (taps - 1);
    let padded = spread.pad_with_zeros(2, reach, reach + output_padding)?;
    let weight = weight.to_dtype(x.dtype())?;
    let mut y: Option<Tensor> = None;
    for k in 0..taps {
        let w_k = weight.narrow(2, k, 1)?.reshape((1, channels, 1))?;
        let term = padded.narrow(2, padding + reach - k * dilation, out_len)?.broadcast_mul(&w_k)?;
        y = Some(match y {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    let y = y.expect("taps >= 1");
    match bias {
        Some(b) => y.broadcast_add(&b.to_dtype(x.dtype())?.reshape((1, channels, 1))?),
        None => Ok(y),
    }
}

/// A loaded depthwise `nn.ConvTranspose1d` (`groups == channels`), such as Kokoro's
/// `AdainResBlk1d.pool`.
#[derive(Debug, Clone)]
pub struct DepthwiseConvTranspose1d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: TransposeConfig,
}

impl DepthwiseConvTranspose1d {
    /// Loads `weight` `[channels, 1, kernel]` (plain, or folded from weight norm's `weight_g` and
    /// `weight_v`: see [`super::weight_norm_weight`]) and, when `bias`, `bias` `[channels]`.
    pub fn new(channels: usize, kernel: usize, cfg: TransposeConfig, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = super::weight_norm_weight(&vb, (channels, 1, kernel), 0)?;
        let bias = if bias { Some(vb.get(channels, "bias")?) } else { None };
        Ok(Self { weight, bias, cfg })
    }
}

impl Module for DepthwiseConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        depthwise_conv_transpose_1d(x, &self.weight, self.bias.as_ref(), self.cfg)
    }
}
