//! Tensor operations that candle 0.11 lacks and Kokoro-82M (StyleTTS 2 with an iSTFTNet vocoder)
//! or LivePortrait need, each with PyTorch's semantics and checked against PyTorch in
//! `real/tests/kokoro_ops.rs` and `real/tests/liveportrait_ops.rs`.
//!
//! Every op is built from whole-tensor candle operations (matrix products, convolutions,
//! elementwise maps, gathers), so it runs on any candle device, CUDA included: no op loops over
//! elements on the host. The LSTM loops over time steps, which a recurrence cannot avoid, but
//! each step is one batched product for both directions. Some ops have a CPU kernel besides,
//! because whole-tensor ops cost most of their CPU time in memory passes: [`tap_conv1d`] and
//! the fused [`AdaIn1d::forward_snake`] (Kokoro's vocoder), [`Conv2d`], [`Conv3d`], [`grid_sample_3d`] and
//! [`depthwise_conv2d`] (LivePortrait); on other devices the same results come from
//! whole-tensor ops.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vortex_real::ops::{Stft, reflect_pad_1d};
//!
//! let x = Tensor::arange(0f32, 4., &Device::Cpu)?.reshape((1, 1, 4))?;
//! assert_eq!(reflect_pad_1d(&x, 2, 1)?.flatten_all()?.to_vec1::<f32>()?, [2., 1., 0., 1., 2., 3., 2.]);
//!
//! let stft = Stft::new(20, 5, 20, &Device::Cpu)?; // Kokoro's decoder
//! let signal = Tensor::randn(0f32, 1., (1, 50), &Device::Cpu)?;
//! let (magnitude, phase) = stft.transform(&signal)?;
//! let back = stft.inverse(&magnitude, &phase, Some(50))?;
//! assert!((back - signal)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? < 1e-5);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! - [`BiLstm`]: bidirectional one-layer LSTM (`nn.LSTM(batch_first=True, bidirectional=True)`).
//! - [`InstanceNorm1d`], [`instance_norm_1d`], [`AdaIn1d`]: instance norm and StyleTTS 2's AdaIN.
//! - [`reflect_pad_1d`]: `F.pad(mode="reflect")` on the last dimension.
//! - [`atan2`]: `torch.atan2`, signed zeros and infinities included.
//! - [`interpolate_linear_1d`], [`interpolate_nearest_1d`]: `F.interpolate` modes `linear`
//!   (`align_corners=False`) and `nearest`, by size or by scale factor.
//! - [`Stft`]: `torch.stft` / `torch.istft` with a periodic Hann window, `center=True`.
//! - [`depthwise_conv_transpose_1d`], [`DepthwiseConvTranspose1d`]: `nn.ConvTranspose1d` with
//!   `groups == channels`, without candle's loop over groups.
//! - [`snake_1d`], [`AdaIn1d::forward_snake`]: iSTFTNet's Snake activation, alone or after AdaIN.
//! - [`tap_conv1d`]: a stride-1 `nn.Conv1d` on the CPU as one accumulating product per tap.
//! - [`fold_weight_norm`], [`weight_norm_weight`]: `torch.nn.utils.weight_norm`'s
//!   `weight_g` / `weight_v` folded into one weight.
//!
//! LivePortrait's:
//!
//! - [`instance_norm_2d`]: `nn.InstanceNorm2d` without affine parameters.
//! - [`BatchNorm`], [`BATCH_NORM_EPS`]: `nn.BatchNorm2d` / `nn.BatchNorm3d` in inference.
//! - [`spectral_norm_weight`]: `torch.nn.utils.spectral_norm`'s weight in `eval()`.
//! - [`Conv2d`], [`conv2d`]: `nn.Conv2d`; with stride 1 on the CPU Winograd's F(2 × 2, 3 × 3) for
//!   3 × 3 kernels and a tap convolution for others, both faster than candle's im2col tiles.
//! - [`Conv3d`], [`conv3d`]: a stride-1 `nn.Conv3d` with a cubic kernel; on the CPU Winograd's
//!   F(2 × 2, 3 × 3) per depth tap for 3 × 3 × 3 kernels and otherwise a tap convolution like
//!   [`tap_conv1d`] over the padded, flattened volume.
//! - [`grid_sample_3d`]: `F.grid_sample` on volumes (trilinear, zeros padding,
//!   `align_corners=False`).
//! - [`depthwise_conv2d`]: `nn.Conv2d` with `groups == channels` (ConvNeXt's 7×7), without
//!   candle's loop over groups.

mod atan2;
mod batch_norm;
mod conv;
mod conv2d;
mod conv3d;
mod depthwise;
mod grid_sample;
mod interpolate;
mod lstm;
mod norm;
mod pad;
mod spectral_norm;
mod stft;
mod tap_conv;
mod weight_norm;
mod winograd;

pub use atan2::atan2;
pub use batch_norm::{BatchNorm, BATCH_NORM_EPS};
pub use conv::{depthwise_conv_transpose_1d, DepthwiseConvTranspose1d, TransposeConfig};
pub use conv2d::{conv2d, Conv2d};
pub use conv3d::{conv3d, Conv3d};
pub use depthwise::depthwise_conv2d;
pub use grid_sample::grid_sample_3d;
pub use interpolate::{interpolate_linear_1d, interpolate_nearest_1d, Resize};
pub use lstm::BiLstm;
pub use norm::{instance_norm_1d, instance_norm_2d, snake_1d, AdaIn1d, InstanceNorm1d, INSTANCE_NORM_EPS};
pub use pad::reflect_pad_1d;
pub use spectral_norm::spectral_norm_weight;
pub use stft::Stft;
pub use tap_conv::tap_conv1d;
pub use weight_norm::{fold_weight_norm, weight_norm_weight};

/// Half-precision inputs are computed in f32: these ops sum many terms (norms, DFTs) or need
/// f32's range (atan2's reductions), and PyTorch's CPU kernels also accumulate halves in f32.
fn compute_dtype(dtype: candle_core::DType) -> candle_core::DType {
    use candle_core::DType;
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// The values of a contiguous f32 CPU tensor, for the CPU kernels of custom ops; `op` names the
/// op in the error.
pub(crate) fn cpu_f32<'a>(
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let candle_core::CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: f32 inputs only") };
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{op}: contiguous inputs only") };
    Ok(&data[start..end])
}
