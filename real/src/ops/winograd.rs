//! Stride-1 3 × 3 convolutions on the CPU by Winograd's minimal filtering, F(2 × 2, 3 × 3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2 × 2 block
//! of outputs comes from a 4 × 4 input tile through 16 products instead of 36, so the matrix
//! products, most of LivePortrait's CPU time, shrink 2.25-fold.
//!
//! For a tile d (4 × 4) and a kernel g (3 × 3), Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A is the 2 × 2
//! cross-correlation PyTorch's convolution computes. Over channels the elementwise product
//! becomes 16 matrix products, one per tile position e: M[e] = U[e] · V[e], with U[e] `[out,
//! in]` the transformed kernels (computed once, at load, in f64) and V[e] `[in, tiles]` the
//! transformed input tiles.
//!
//! Volumes (`ops::Conv3d`'s 3 × 3 × 3 kernels) are the same in-plane transform with the depth
//! taps summed in the transformed domain: output tile j of depth tap td reads input tile j +
//! shift(td), as `tap_conv` reads columns.
//!
//! Why F(2 × 2) and not F(4 × 4, 3 × 3) (36 products per 16 outputs, 4× fewer): F(4 × 4)'s
//! transforms scale values by up to 5 and 8, and on the SPADE generator's parity fixture (whose
//! folded spectral norms amplify every rounding) it erred 4× more than PyTorch's own f32 sum
//! (3.2e-4 against 7.9e-5 on `middle_0`). F(2 × 2)'s transforms add and subtract only, and it
//! errs less than PyTorch there (5.4e-5); docs/decisions.md D18.

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_f32;
use super::tap_conv::{add_product, bias_or_zeros};

/// The in-plane kernel this transform is for.
const KERNEL: usize = 3;
/// Outputs per tile edge.
const M: usize = 2;
/// Input tile edge: M + KERNEL − 1.
const A: usize = M + KERNEL - 1;
/// Positions in a transformed tile, one matrix product each.
const E: usize = A * A;

/// Output tiles per rayon task at least and at most: fewer waste the products' micro-kernel;
/// more push a task's transformed tiles (16 × (in + out) × tiles) out of the cache.
const MIN_TILES: usize = 32;
const MAX_TILES: usize = 128;

/// G g for one row or column of a kernel.
fn kernel_1d(g: [f64; KERNEL]) -> [f64; A] {
    [g[0], (g[0] + g[1] + g[2]) / 2.0, (g[0] - g[1] + g[2]) / 2.0, g[2]]
}

/// The weight of a stride-1 convolution with 3 × 3 in-plane kernels, `[out, in, 3, 3]` or
/// `[out, in, kd, 3, 3]`, transformed for [`winograd_conv`]: `[kd, 16, out, in]` contiguous,
/// and its bias `[out]` (zeros without one). `None` where this path does not apply (not f32 on
/// the CPU, another shape).
pub(crate) fn winograd_weights(weight: &Tensor, bias: Option<&Tensor>) -> Option<(Tensor, Tensor)> {
    if !weight.device().is_cpu() || weight.dtype() != DType::F32 {
        return None;
    }
    let (out, c_in, kd) = match *weight.dims() {
        [out, c_in, KERNEL, KERNEL] => (out, c_in, 1),
        [out, c_in, kd, KERNEL, KERNEL] => (out, c_in, kd),
        _ => return None,
    };
    let laid_out = || -> Result<(Tensor, Tensor)> {
        let g = weight.flatten_all()?.to_vec1::<f32>()?;
        let mut u = vec![0f32; kd * E * out * c_in];
        for o in 0..out {
            for c in 0..c_in {
                for td in 0..kd {
                    let at = |i: usize, j: usize| g[(((o * c_in + c) * kd + td) * KERNEL + i) * KERNEL + j] as f64;
                    // G g Gᵀ: the rows' transforms, then the columns'.
                    let rows: [[f64; A]; KERNEL] = std::array::from_fn(|i| kernel_1d([at(i, 0), at(i, 1), at(i, 2)]));
                    for b in 0..A {
                        let column = kernel_1d([rows[0][b], rows[1][b], rows[2][b]]);
                        for (a, &value) in column.iter().enumerate() {
                            u[((td * E + a * A + b) * out + o) * c_in + c] = value as f32;
                        }
                    }
                }
            }
        }
        let u = Tensor::from_vec(u, (kd, E, out, c_in), weight.device())?;
        Ok((u, bias_or_zeros(bias, out, weight)?))
    };
    laid_out().ok()
}

/// Runs the convolution on x `(batch, in, depth, height, width)`, contiguous f32 on the CPU,
/// with `u` and `bias` from [`winograd_weights`]: in-plane padding `padding` and depth padding
/// `depth_padding`, zeros. Returns `(batch, out, depth', height', width')`.
pub(crate) fn winograd_conv(
    x: &Tensor,
    u: &Tensor,
    bias: &Tensor,
    padding: usize,
    depth_padding: usize,
) -> Result<Tensor> {
    x.apply_op3_no_bwd(u, bias, &WinogradConv { padding, depth_padding })
}

/// The convolution's zero padding, in the plane and along the depth.
struct WinogradConv {
    padding: usize,
    depth_padding: usize,
}

/// Where the tiles lie: the input's and output's sizes and the tile grid. Tiles are numbered
/// depth · tiles per plane + tile row · tile columns + tile column, the same for the input's
/// tiles (tile (i, j) starts at row M·i − padding, column M·j − padding) and the output's.
#[derive(Clone, Copy)]
struct Grid {
    c_in: usize,
    c_out: usize,
    /// Input depth, height, width.
    d: usize,
    h: usize,
    w: usize,
    /// Output depth, height, width.
    od: usize,
    oh: usize,
    ow: usize,
    /// Tile rows and columns per plane.
    th: usize,
    tw: usize,
    padding: usize,
}

impl Grid {
    /// Tiles per plane.
    fn plane(&self) -> usize {
        self.th * self.tw
    }

    /// Splits tiles first..first + n into runs along one tile row: (depth, tile row, first tile
    /// column, tiles, offset from `first`).
    fn runs(&self, first: usize, n: usize) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> + '_ {
        let mut at = first;
        std::iter::from_fn(move || {
            if at >= first + n {
                return None;
            }
            let (z, t) = (at / self.plane(), at % self.plane());
            let (ti, tj) = (t / self.tw, t % self.tw);
            let len = (self.tw - tj).min(first + n - at);
            let run = (z, ti, tj, len, at - first);
            at += len;
            Some(run)
        })
    }
}

impl CustomOp3 for WinogradConv {
    fn name(&self) -> &'static str {
        "winograd-conv"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        u: &CpuStorage,
        u_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, u, b) = (cpu_f32(x, x_l, op)?, cpu_f32(u, u_l, op)?, cpu_f32(b, b_l, op)?);
        let &[batch, c_in, d, h, w] = x_l.dims() else { bail!("{op}: x must be (batch, in, depth, height, width)") };
        let &[kd, E, c_out, c_in2] = u_l.dims() else { bail!("{op}: weights must be [depth taps, {E}, out, in]") };
        if c_in != c_in2 || b.len() != c_out || kd == 0 {
            bail!("{op}: x {:?}, weights {:?} and bias {:?} do not fit", x_l.dims(), u_l.dims(), b_l.dims());
        }
        let (p, pd) = (self.padding, self.depth_padding);
        let size = |n: usize, p: usize, k: usize| (n + 2 * p).checked_sub(k - 1).filter(|&o| o > 0);
        let (Some(od), Some(oh), Some(ow)) = (size(d, pd, kd), size(h, p, KERNEL), size(w, p, KERNEL)) else {
            bail!("{op}: x of shape {:?} padded by {p} is smaller than the kernel", x_l.dims())
        };
        let grid = Grid { c_in, c_out, d, h, w, od, oh, ow, th: oh.div_ceil(M), tw: ow.div_ceil(M), padding: p };
        let shifts: Vec<isize> = (0..kd).map(|td| (td as isize - pd as isize) * grid.plane() as isize).collect();
        let out_volume = od * oh * ow;
        let in_volume = c_in * d * h * w;
        let mut y = vec![0f32; batch * c_out * out_volume];
        for (n, y) in y.chunks_exact_mut(c_out * out_volume).enumerate() {
            convolve(&x[n * in_volume..(n + 1) * in_volume], u, b, &shifts, &grid, y);
        }
        Ok((CpuStorage::F32(y), Shape::from((batch, c_out, od, oh, ow))))
    }
}

/// One batch entry: x `(in, depth, height, width)` into y `(out, depth', height', width')`.
///
/// The output's tiles go in stripes spread over rayon's threads. A stripe transforms the input
/// tiles it reads, adds the 16 products per depth tap, and transforms its outputs: everything
/// it touches stays in cache, and no transformed volume is ever whole in memory.
fn convolve(x: &[f32], u: &[f32], bias: &[f32], shifts: &[isize], g: &Grid, y: &mut [f32]) {
    let in_tiles = g.d * g.plane();
    let out_tiles = g.od * g.plane();
    let threads = rayon::current_num_threads();
    let stripe = out_tiles.div_ceil(4 * threads).clamp(MIN_TILES, MAX_TILES);
    let y_ptr = y.as_mut_ptr() as usize;
    let (c_in, c_out) = (g.c_in, g.c_out);
    (0..out_tiles).step_by(stripe).collect::<Vec<_>>().into_par_iter().for_each(|start| {
        let end = (start + stripe).min(out_tiles);
        let width = end - start;
        let mut v = vec![0f32; E * c_in * width];
        let mut m = vec![0f32; E * c_out * width];
        let mut rows = vec![0f32; (2 * A + E) * (width + 1)];
        for (td, &shift) in shifts.iter().enumerate() {
            // Output tile j reads input tile j + shift; those outside the input are the depth
            // padding and add nothing.
            let first = start.max((-shift).max(0) as usize);
            let last = end.min((in_tiles as isize - shift).max(0) as usize);
            if first >= last {
                continue;
            }
            let n = last - first;
            transform_input(x, g, (first as isize + shift) as usize, n, &mut v[..E * c_in * n], &mut rows);
            for e in 0..E {
                // SAFETY: U[td][e] is out × in at (td·16 + e)·out·in; V[e] is in rows of n at
                // e·in·n; M[e] is out rows of `width` from column first − start, and last ≤ end.
                unsafe {
                    add_product(
                        c_out,
                        n,
                        c_in,
                        u.as_ptr().add((td * E + e) * c_out * c_in),
                        v.as_ptr().add(e * c_in * n),
                        n,
                        m.as_mut_ptr().add(e * c_out * width + first - start),
                        width,
                    );
                }
            }
        }
        // SAFETY: this stripe's output tiles are its own; see transform_output.
        unsafe { transform_output(&m, bias, g, start, width, y_ptr as *mut f32, &mut rows) };
    });
}

/// V[e][c][k] = (Bᵀ d B)[e] for the input tiles first..first + n of x `(in, depth, height,
/// width)`, every channel c; `v` is 16 · in · n long. `rows` is scratch of 24 · (n + 1) at
/// least.
///
/// Along a tile row the tiles overlap by two columns: each of a tile row's four input rows is
/// split once into its even and odd columns (zeros over the padding), and tile k's columns are
/// then even[k], odd[k], even[k + 1], odd[k + 1], so the transform is unit-stride arithmetic
/// the compiler vectorises.
fn transform_input(x: &[f32], g: &Grid, first: usize, n: usize, v: &mut [f32], rows: &mut [f32]) {
    let plane = g.h * g.w;
    let stride = g.c_in * n;
    assert_eq!(v.len(), E * stride, "16 rows of in × n transformed tiles");
    for (z, ti, tj, len, k0) in g.runs(first, n) {
        let (even, rest) = rows.split_at_mut(A * (len + 1));
        let (odd, rest) = rest.split_at_mut(A * (len + 1));
        let top = (ti * M) as isize - g.padding as isize;
        let left = (tj * M) as isize - g.padding as isize;
        for c in 0..g.c_in {
            let x = &x[(c * g.d + z) * plane..(c * g.d + z + 1) * plane];
            for a in 0..A {
                let (even, odd) =
                    (&mut even[a * (len + 1)..(a + 1) * (len + 1)], &mut odd[a * (len + 1)..(a + 1) * (len + 1)]);
                let r = top + a as isize;
                if r < 0 || r as usize >= g.h {
                    even.fill(0.0);
                    odd.fill(0.0);
                    continue;
                }
                let row = &x[r as usize * g.w..(r as usize + 1) * g.w];
                let span = M * (len + 1);
                if left >= 0 && left as usize + span <= g.w {
                    // Inside the plane: a straight split.
                    let pairs = row[left as usize..left as usize + span].chunks_exact(M);
                    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                        (*e, *o) = (pair[0], pair[1]);
                    }
                } else {
                    let at = |s: isize| if s >= 0 && (s as usize) < g.w { row[s as usize] } else { 0.0 };
                    for k in 0..=len {
                        let s = left + (M * k) as isize;
                        even[k] = at(s);
                        odd[k] = at(s + 1);
                    }
                }
            }
            // Bᵀ d per input row a: t[a] = (d0 − d2, d1 + d2, d2 − d1, d1 − d3), each a
            // unit-stride line over the run's tiles.
            let (t, _) = rest.split_at_mut(E * len);
            for a in 0..A {
                let (e, o) = (&even[a * (len + 1)..(a + 1) * (len + 1)], &odd[a * (len + 1)..(a + 1) * (len + 1)]);
                let (e0, e1, o0, o1) = (&e[..len], &e[1..], &o[..len], &o[1..]);
                let line = &mut t[a * A * len..(a + 1) * A * len];
                let (t0, line) = line.split_at_mut(len);
                let (t1, line) = line.split_at_mut(len);
                let (t2, t3) = line.split_at_mut(len);
                for k in 0..len {
                    t0[k] = e0[k] - e1[k];
                    t1[k] = o0[k] + e1[k];
                    t2[k] = e1[k] - o0[k];
                    t3[k] = o0[k] - o1[k];
                }
            }
            // … and per column: V[a·4 + b] from rows t[·][b].
            let at = c * n + k0;
            let row = |a: usize, b: usize| &t[(a * A + b) * len..(a * A + b + 1) * len];
            for (e, dst) in v.chunks_exact_mut(stride).enumerate() {
                let (a, b) = (e / A, e % A);
                let dst = &mut dst[at..at + len];
                let (p, q, sign) = match a {
                    0 => (row(0, b), row(2, b), -1.0),
                    1 => (row(1, b), row(2, b), 1.0),
                    2 => (row(2, b), row(1, b), -1.0),
                    _ => (row(1, b), row(3, b), -1.0),
                };
                for k in 0..len {
                    dst[k] = p[k] + sign * q[k];
                }
            }
        }
    }
}

/// Aᵀ M A + bias for the output tiles start..start + width, M `[16, out, width]`, into y.
/// `rows` is scratch of 12 · width at least.
///
/// # Safety
/// `y` must hold the `(out, depth', height', width')` output `g` describes, and no other thread
/// may write these tiles' outputs.
unsafe fn transform_output(
    m: &[f32],
    bias: &[f32],
    g: &Grid,
    start: usize,
    width: usize,
    y: *mut f32,
    rows: &mut [f32],
) {
    let plane = g.oh * g.ow;
    let c_out = g.c_out;
    for (o, &bias) in bias.iter().enumerate() {
        for (z, ti, tj, len, k0) in g.runs(start, width) {
            let src: [&[f32]; E] = std::array::from_fn(|e| &m[(e * c_out + o) * width + k0..][..len]);
            // Aᵀ M per column b of M: c[b] = (m0b + m1b + m2b, m1b − m2b − m3b), each a
            // unit-stride line over the run's tiles …
            let (lines, rest) = rows.split_at_mut(2 * A * len);
            for b in 0..A {
                let (m0, m1, m2, m3) = (src[b], src[A + b], src[2 * A + b], src[3 * A + b]);
                let (c0, c1) = lines[2 * b * len..(2 * b + 2) * len].split_at_mut(len);
                for k in 0..len {
                    c0[k] = m0[k] + m1[k] + m2[k];
                    c1[k] = m1[k] - m2[k] - m3[k];
                }
            }
            // … then · A per output row r, interleaving each tile's two columns.
            let (top, bottom) = rest[..2 * M * len].split_at_mut(M * len);
            for (r, out) in [&mut *top, &mut *bottom].into_iter().enumerate() {
                let line = |b: usize| &lines[(2 * b + r) * len..(2 * b + r + 1) * len];
                let (l0, l1, l2, l3) = (line(0), line(1), line(2), line(3));
                for k in 0..len {
                    out[M * k] = l0[k] + l1[k] + l2[k] + bias;
                    out[M * k + 1] = l1[k] - l2[k] - l3[k] + bias;
                }
            }
            let (row, col) = (ti * M, tj * M);
            let cols = (g.ow - col).min(M * len);
            for (dr, values) in [&*top, &*bottom].into_iter().enumerate() {
                if row + dr < g.oh {
                    // SAFETY: (o, z, row + dr, col..col + cols) lies inside y (cols ≤ ow − col),
                    // and only this stripe holds these tiles.
                    let dst = y.add(o * g.od * plane + z * plane + (row + dr) * g.ow + col);
                    std::ptr::copy_nonoverlapping(values.as_ptr(), dst, cols);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};
    use candle_nn::Conv2dConfig;

    fn max_error(got: &Tensor, want: &Tensor) -> f32 {
        let err = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        err / scale.max(1.0)
    }

    /// Against candle's conv2d, over paddings 0–2 and sizes that leave partial tiles at the
    /// bottom and right.
    #[test]
    fn matches_candles_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        for (padding, h, w) in [(1, 9, 7), (0, 6, 6), (1, 4, 4), (2, 5, 11), (1, 16, 16), (0, 3, 3)] {
            let x = Tensor::randn(0f32, 1., (2, 6, h, w), &dev)?;
            let weight = Tensor::randn(0f32, 1., (5, 6, 3, 3), &dev)?;
            let bias = Tensor::randn(0f32, 1., 5, &dev)?;
            let (u, b) = winograd_weights(&weight, Some(&bias)).expect("a 3 × 3 f32 CPU weight");
            let got = winograd_conv(&x.unsqueeze(2)?, &u, &b, padding, 0)?.squeeze(2)?;
            let cfg = Conv2dConfig { padding, ..Default::default() };
            let want = candle_nn::Conv2d::new(weight, Some(bias), cfg).forward(&x)?;
            assert_eq!(got.dims(), want.dims(), "padding {padding}, {h} × {w}");
            let err = max_error(&got, &want);
            assert!(err <= 1e-5, "padding {padding}, {h} × {w}: error {err}");
        }
        Ok(())
    }

    /// Depth taps against a direct sum of candle's conv2d per depth tap.
    #[test]
    fn depth_taps_sum_per_plane_convolutions() -> Result<()> {
        let dev = Device::Cpu;
        let (c_in, c_out, d, h, w) = (4, 3, 5, 7, 6);
        let x = Tensor::randn(0f32, 1., (1, c_in, d, h, w), &dev)?;
        let weight = Tensor::randn(0f32, 1., (c_out, c_in, 3, 3, 3), &dev)?;
        let (u, b) = winograd_weights(&weight, None).expect("a 3 × 3 × 3 f32 CPU weight");
        let got = winograd_conv(&x, &u, &b, 1, 1)?;
        assert_eq!(got.dims(), [1, c_out, d, h, w]);
        let padded = x.pad_with_zeros(2, 1, 1)?;
        for z in 0..d {
            let mut want = Tensor::zeros((1, c_out, h, w), DType::F32, &dev)?;
            for td in 0..3 {
                let plane = padded.narrow(2, z + td, 1)?.squeeze(2)?;
                let kernel = weight.narrow(2, td, 1)?.squeeze(2)?.contiguous()?;
                want = (want + plane.conv2d(&kernel, 1, 1, 1, 1)?)?;
            }
            let err = max_error(&got.narrow(2, z, 1)?.squeeze(2)?, &want);
            assert!(err <= 1e-5, "depth {z}: error {err}");
        }
        Ok(())
    }

    #[test]
    fn other_kernels_and_dtypes_are_not_taken() {
        let dev = Device::Cpu;
        let five = Tensor::zeros((2, 2, 5, 5), DType::F32, &dev).unwrap();
        assert!(winograd_weights(&five, None).is_none());
        let half = Tensor::zeros((2, 2, 3, 3), DType::F16, &dev).unwrap();
        assert!(winograd_weights(&half, None).is_none());
    }
}
