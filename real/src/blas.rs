//! Matrix products through OpenBLAS (feature `openblas`), for the CPU path of the models' linear
//! layers: on this project's 2-core development machine its sgemm runs at about 147 GFLOPS where
//! the `gemm` crate that candle uses reaches about 90 and PyTorch about 129 (docs/benchmarks.md).
//! Linked statically from Debian's `libopenblas-dev`, so the binary needs no BLAS at run time.
//!
//! OpenBLAS runs single-threaded here, and the rows of the left side are split across rayon's
//! pool (candle's own CPU threads): two thread pools on the same cores would spin against each
//! other between calls.

use std::sync::Once;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::cpu_f32;

/// Rows per rayon task at least: below this a split costs more than it saves.
const MIN_ROWS: usize = 64;

#[allow(non_camel_case_types)]
type blasint = i32;

const CBLAS_ROW_MAJOR: i32 = 101;
const CBLAS_NO_TRANS: i32 = 111;
const CBLAS_TRANS: i32 = 112;

#[link(name = "openblas", kind = "static")]
extern "C" {
    fn openblas_set_num_threads(n: i32);

    fn cblas_sgemm(
        order: i32,
        trans_a: i32,
        trans_b: i32,
        m: blasint,
        n: blasint,
        k: blasint,
        alpha: f32,
        a: *const f32,
        lda: blasint,
        b: *const f32,
        ldb: blasint,
        beta: f32,
        c: *mut f32,
        ldc: blasint,
    );
}

/// `x · w + bias` for x (…, k), w (k, n) and an optional bias (n), contiguous f32 on the CPU:
/// (…, n). The bias is the product's starting value, so it costs no pass of its own.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(bias) => x.apply_op3_no_bwd(w, bias, &Sgemm),
        None => x.apply_op2_no_bwd(w, &Sgemm),
    }
}

struct Sgemm;

impl Sgemm {
    fn run(a: &[f32], a_l: &Layout, b: &[f32], b_l: &Layout, bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let a_dims = a_l.dims();
        let &[k2, n] = b_l.dims() else { candle_core::bail!("openblas-sgemm: the right side must be a matrix") };
        let k = *a_dims.last().expect("a tensor with dimensions");
        if k != k2 || bias.is_some_and(|b| b.len() != n) {
            candle_core::bail!(
                "openblas-sgemm: shapes {a_dims:?} and {:?} (bias {:?}) do not fit",
                b_l.dims(),
                bias.map(<[f32]>::len)
            );
        }
        let m = a_dims.iter().rev().skip(1).product::<usize>();
        fits_blasint(m, n, k)?;
        single_threaded();
        let mut c = match bias {
            Some(bias) => bias.repeat(m),
            None => vec![0f32; m * n],
        };
        let beta = if bias.is_some() { 1.0 } else { 0.0 };
        let threads = rayon::current_num_threads();
        if m >= MIN_ROWS * threads {
            // Tall: rows to each task.
            let rows = m.div_ceil(threads);
            c.par_chunks_mut(rows * n).zip(a.par_chunks(rows * k)).for_each(|(c, a)| {
                // SAFETY: a holds (rows)·k values, b k·n, c rows·n, row-major and contiguous.
                unsafe { sgemm(a.len() / k, n, k, a.as_ptr(), k, b.as_ptr(), n, false, beta, c.as_mut_ptr(), n) }
            });
        } else {
            // Short (a text of 77 tokens): columns to each task, each writing its own stripe.
            let cols = n.div_ceil(threads).max(16);
            let stripes: Vec<usize> = (0..n).step_by(cols).collect();
            let c_ptr = c.as_mut_ptr() as usize;
            stripes.par_iter().for_each(|&j| {
                let width = cols.min(n - j);
                // SAFETY: each task writes the columns j..j+width of c's m rows, disjoint from the
                // other tasks'; a holds m·k values and b k·n; leading dimensions k, n, n.
                unsafe {
                    sgemm(m, width, k, a.as_ptr(), k, b.as_ptr().add(j), n, false, beta, (c_ptr as *mut f32).add(j), n)
                }
            });
        }
        let mut dims = a_dims.to_vec();
        *dims.last_mut().expect("a tensor with dimensions") = n;
        Ok((CpuStorage::F32(c), Shape::from(dims)))
    }
}

/// Row-major c (m×n, leading dimension ldc) += a (m×k, leading dimension lda) · b (k×n,
/// leading dimension ldb), single-threaded: for callers that split the work over rayon
/// themselves (`ops::tap_conv1d`).
///
/// # Safety
/// The pointers must hold the matrices their sizes and leading dimensions describe.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_accumulate(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    single_threaded();
    sgemm(m, n, k, a, lda, b, ldb, false, 1.0, c, ldc)
}

/// Row-major: c (m×n, leading dimension ldc) = a (m×k) · b + beta · c, where b is (k×n), or
/// (n×k) read transposed with `transpose_b`.
///
/// # Safety
/// The pointers must hold the matrices their sizes and leading dimensions describe.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    transpose_b: bool,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    cblas_sgemm(
        CBLAS_ROW_MAJOR,
        CBLAS_NO_TRANS,
        if transpose_b { CBLAS_TRANS } else { CBLAS_NO_TRANS },
        m as blasint,
        n as blasint,
        k as blasint,
        1.0,
        a,
        lda as blasint,
        b,
        ldb as blasint,
        beta,
        c,
        ldc as blasint,
    )
}

/// Refuses sizes OpenBLAS's 32-bit integers cannot hold.
fn fits_blasint(m: usize, n: usize, k: usize) -> Result<()> {
    let limit = blasint::MAX as usize;
    if m > limit || n > limit || k > limit {
        candle_core::bail!("openblas-sgemm: a side above {limit}");
    }
    Ok(())
}

impl CustomOp2 for Sgemm {
    fn name(&self) -> &'static str {
        "openblas-sgemm"
    }

    fn cpu_fwd(&self, a: &CpuStorage, a_l: &Layout, b: &CpuStorage, b_l: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = CustomOp2::name(self);
        Sgemm::run(cpu_f32(a, a_l, op)?, a_l, cpu_f32(b, b_l, op)?, b_l, None)
    }
}

impl CustomOp3 for Sgemm {
    fn name(&self) -> &'static str {
        "openblas-sgemm-bias"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        a_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
        bias: &CpuStorage,
        bias_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = CustomOp3::name(self);
        Sgemm::run(cpu_f32(a, a_l, op)?, a_l, cpu_f32(b, b_l, op)?, b_l, Some(cpu_f32(bias, bias_l, op)?))
    }
}

/// One product per batch entry, entries spread over rayon's pool: a (B, m, k) times b (B, k, n),
/// or times bᵀ for b (B, n, k) with `transpose_b`; both contiguous f32 on the CPU. For
/// attention, whose products are many and small.
pub fn batched_matmul(a: &Tensor, b: &Tensor, transpose_b: bool) -> Result<Tensor> {
    a.apply_op2_no_bwd(b, &BatchedSgemm { transpose_b })
}

struct BatchedSgemm {
    transpose_b: bool,
}

impl CustomOp2 for BatchedSgemm {
    fn name(&self) -> &'static str {
        "openblas-batched-sgemm"
    }

    fn cpu_fwd(&self, a: &CpuStorage, a_l: &Layout, b: &CpuStorage, b_l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (cpu_f32(a, a_l, self.name())?, cpu_f32(b, b_l, self.name())?);
        let (&[batch, m, k], &[batch_b, b1_dim, b2_dim]) = (a_l.dims(), b_l.dims()) else {
            candle_core::bail!("batched sgemm: (batch, rows, columns) inputs only")
        };
        let (k_b, n) = if self.transpose_b { (b2_dim, b1_dim) } else { (b1_dim, b2_dim) };
        if batch != batch_b || k != k_b {
            candle_core::bail!("batched sgemm: shapes {:?} and {:?} do not multiply", a_l.dims(), b_l.dims());
        }
        fits_blasint(m, n, k)?;
        single_threaded();
        let mut c = vec![0f32; batch * m * n];
        let ldb = if self.transpose_b { k } else { n };
        c.par_chunks_mut(m * n).zip(a.par_chunks(m * k)).zip(b.par_chunks(k * n)).for_each(|((c, a), b)| {
            // SAFETY: each entry's a holds m·k values, b k·n and c m·n, row-major and contiguous
            // (checked above); the sizes fit OpenBLAS's integers.
            unsafe { sgemm(m, n, k, a.as_ptr(), k, b.as_ptr(), ldb, self.transpose_b, 0.0, c.as_mut_ptr(), n) }
        });
        Ok((CpuStorage::F32(c), Shape::from((batch, m, n))))
    }
}

/// OpenBLAS's own threads off, once, before its first product.
fn single_threaded() {
    static ONCE: Once = Once::new();
    // SAFETY: sets a global of OpenBLAS; called before any product runs.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}
