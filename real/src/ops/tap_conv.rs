//! Stride-1, ungrouped convolutions on the CPU as one accumulating matrix product per kernel
//! tap. The input is `(batch, in, length)` with its spatial dimensions flattened into columns;
//! each tap t has a column shift sₜ, and output column j gets Σₜ Wₜ · x[:, j + sₜ]. Each tap's
//! product reads the input in place at its shift (columns outside the input are zeros, which a
//! tap skips), and adds into the output, which starts as the bias: no im2col buffer and no
//! elementwise pass per tap. The output's columns are split into stripes spread over rayon's
//! threads.
//!
//! A 1-D convolution has shifts t·dilation − padding ([`tap_conv1d`]). A 3-D one
//! (`ops::Conv3d`) zero-pads the volume, flattens it to columns, and has shifts
//! td·Hp·Wp + th·Wp + tw; the output is computed over the padded grid and cropped.
//!
//! The products are OpenBLAS's `sgemm` with the `openblas` feature and the `gemm` crate (the one
//! candle uses) otherwise, both with β = 1, which candle's `matmul` does not expose.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_f32;

/// Output columns per rayon task at least: narrower products waste the micro-kernel.
const MIN_COLS: usize = 256;

/// `F.conv1d(x, weight, bias, stride=1, padding, dilation)` on the CPU for contiguous f32
/// `x` `(batch, in, length)`, with the weight laid out tap-first, `taps` `[kernel, out, in]`
/// (`weight.permute(2, 0, 1)`), and `bias` `[out]`. Returns `(batch, out, length + 2·padding −
/// dilation·(kernel − 1))`.
pub fn tap_conv1d(x: &Tensor, taps: &Tensor, bias: &Tensor, padding: usize, dilation: usize) -> Result<Tensor> {
    let &[_, _, len] = x.dims() else { bail!("tap-conv1d: x must be (batch, in, length)") };
    let &[kernel, _, _] = taps.dims() else { bail!("tap-conv1d: taps must be [kernel, out, in]") };
    let span = dilation * kernel.saturating_sub(1);
    let Some(out_len) = (len + 2 * padding).checked_sub(span).filter(|&n| n > 0) else {
        bail!("tap-conv1d: {len} samples padded by {padding} are shorter than the kernel's span {span}")
    };
    let shifts = (0..kernel).map(|t| (t * dilation) as isize - padding as isize).collect();
    tap_conv(x, taps, bias, TapConv { shifts, out_len, max_cols: usize::MAX })
}

/// A convolution's weight `[out, in, k…]` laid out tap-first, `[taps, out, in]` contiguous, and
/// its bias `[out]` contiguous (zeros without one): what [`tap_conv`] takes. `None` where the tap
/// path does not apply (not f32 on the CPU, a rank other than `rank`, a bias of another length).
fn tap_weights(weight: &Tensor, bias: Option<&Tensor>, rank: usize) -> Option<(Tensor, Tensor)> {
    let dims = weight.dims();
    if !weight.device().is_cpu() || weight.dtype() != candle_core::DType::F32 || dims.len() != rank || rank < 3 {
        return None;
    }
    let (out, c_in) = (dims[0], dims[1]);
    let taps: usize = dims[2..].iter().product();
    let order: Vec<usize> = (2..rank).chain([0, 1]).collect();
    let laid_out = || -> Result<(Tensor, Tensor)> {
        let taps = weight.permute(order)?.reshape((taps, out, c_in))?.contiguous()?;
        Ok((taps, bias_or_zeros(bias, out, weight)?))
    };
    laid_out().ok()
}

/// How a stride-1, ungrouped convolution runs on the CPU in f32, with its weights laid out for
/// that path.
#[derive(Debug, Clone)]
pub(crate) enum CpuConv {
    /// 3 × 3 in-plane kernels: Winograd's F(2 × 2, 3 × 3) (`winograd`), weights `[kd, 16, out,
    /// in]` and bias `[out]`.
    Winograd(Tensor, Tensor),
    /// Other kernels: the tap convolution, weights `[taps, out, in]` and bias `[out]`.
    Taps(Tensor, Tensor),
}

impl CpuConv {
    /// The path for a weight `[out, in, k…]` of `rank` dimensions and its bias; `None` where
    /// neither applies (not f32 on the CPU, another rank).
    pub(crate) fn new(weight: &Tensor, bias: Option<&Tensor>, rank: usize) -> Option<Self> {
        if weight.rank() != rank {
            return None;
        }
        if let Some((u, b)) = super::winograd::winograd_weights(weight, bias) {
            return Some(Self::Winograd(u, b));
        }
        tap_weights(weight, bias, rank).map(|(taps, b)| Self::Taps(taps, b))
    }
}

/// A CPU convolution's bias `[out]` contiguous, or zeros on `weight`'s device without one.
pub(crate) fn bias_or_zeros(bias: Option<&Tensor>, out: usize, weight: &Tensor) -> Result<Tensor> {
    match bias {
        Some(b) if b.dims() == [out] => b.contiguous(),
        Some(b) => bail!("bias of shape {:?} for {out} outputs", b.dims()),
        None => Tensor::zeros(out, candle_core::DType::F32, weight.device()),
    }
}

/// Runs the tap convolution `op` (its shifts, output length and stripe width) on x `(batch, in,
/// columns)`, `taps` `[shifts, out, in]` and `bias` `[out]`, all contiguous f32 on the CPU.
pub(crate) fn tap_conv(x: &Tensor, taps: &Tensor, bias: &Tensor, op: TapConv) -> Result<Tensor> {
    x.apply_op3_no_bwd(taps, bias, &op)
}

/// A tap convolution's geometry.
pub(crate) struct TapConv {
    /// The input column each tap reads for output column 0 (may be negative: padding).
    pub shifts: Vec<isize>,
    /// Output columns.
    pub out_len: usize,
    /// Output columns per rayon task at most, so that the columns the taps read stay in cache.
    pub max_cols: usize,
}

impl CustomOp3 for TapConv {
    fn name(&self) -> &'static str {
        "tap-conv"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, w, b) = (cpu_f32(x, x_l, op)?, cpu_f32(w, w_l, op)?, cpu_f32(b, b_l, op)?);
        let &[batch, c_in, len] = x_l.dims() else { bail!("tap-conv: x must be (batch, in, columns)") };
        let &[kernel, c_out, c_in2] = w_l.dims() else { bail!("tap-conv: taps must be [kernel, out, in]") };
        if c_in != c_in2 || b.len() != c_out || kernel == 0 || kernel != self.shifts.len() {
            bail!("tap-conv: x {:?}, taps {:?} and bias {:?} do not fit", x_l.dims(), w_l.dims(), b_l.dims());
        }
        let out_len = self.out_len;
        let mut y = Vec::with_capacity(batch * c_out * out_len);
        for _ in 0..batch {
            for &bias in b {
                y.extend(std::iter::repeat_n(bias, out_len));
            }
        }
        let threads = rayon::current_num_threads();
        let cols = out_len.div_ceil(threads).clamp(MIN_COLS, self.max_cols.max(MIN_COLS));
        let stripes: Vec<(usize, usize)> =
            (0..batch).flat_map(|n| (0..out_len).step_by(cols).map(move |s| (n, s))).collect();
        let y_ptr = y.as_mut_ptr() as usize;
        stripes.par_iter().for_each(|&(n, start)| {
            let end = (start + cols).min(out_len);
            let x = &x[n * c_in * len..(n + 1) * c_in * len];
            for (t, &shift) in self.shifts.iter().enumerate() {
                // Output column j reads input column j + shift; the columns outside the input
                // read the zero padding and get nothing from this tap.
                let first = start.max((-shift).max(0) as usize);
                let last = end.min((len as isize - shift).max(0) as usize);
                if first >= last {
                    continue;
                }
                let x_col = (first as isize + shift) as usize;
                // SAFETY: the tap's weights are c_out × c_in at t·c_out·c_in; the input block is
                // c_in rows of `len` from column x_col, and x_col + (last − first) ≤ len; the
                // output block is this task's own columns first..last (within start..end) of
                // batch entry n's c_out rows of out_len, which no other task writes.
                unsafe {
                    let y = (y_ptr as *mut f32).add(n * c_out * out_len + first);
                    let w = w.as_ptr().add(t * c_out * c_in);
                    add_product(c_out, last - first, c_in, w, x.as_ptr().add(x_col), len, y, out_len);
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((batch, c_out, out_len))))
    }
}

/// Row-major c (m×n, leading dimension ldc) += a (m×k, contiguous) · b (k×n, leading dimension
/// ldb), on the calling thread.
///
/// # Safety
/// The pointers must hold the matrices the sizes and leading dimensions describe.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn add_product(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    #[cfg(feature = "openblas")]
    crate::blas::sgemm_accumulate(m, n, k, a, k, b, ldb, c, ldc);
    #[cfg(not(feature = "openblas"))]
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        ldc as isize,
        true,
        a,
        1,
        k as isize,
        b,
        1,
        ldb as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}
