//! `F.grid_sample` on volumes: trilinear, zeros padding, `align_corners=False`, as LivePortrait's
//! dense motion network (`create_deformed_feature`) and warping network (`deform_input`) sample
//! the appearance feature volume along a deformation.

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{compute_dtype, cpu_f32};

/// Points per rayon task of the CPU kernel.
const CHUNK: usize = 4096;

/// `F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)` for
/// 5-D tensors: input `(N, C, D, H, W)`, grid `(N, Do, Ho, Wo, 3)` holding (x, y, z) in [−1, 1]
/// (x along W, y along H, z along D; −1 and 1 are the outer faces of the edge voxels) →
/// `(N, C, Do, Ho, Wo)`. Each point mixes its 8 neighbouring voxels trilinearly; neighbours
/// outside the volume count as zeros, so a point past the faces fades out and one far outside
/// gives 0.
///
/// On the CPU in f32 it is one pass over the points ([`GridSample3d`]). Elsewhere it is
/// whole-tensor: the 8 corners' flat indices and weights for all points at once (a corner out of
/// range gets weight 0 and a clamped index), then one `index_select` of the voxels' channel rows
/// per corner, weighted and summed. Both follow PyTorch's CPU kernel's arithmetic and order of
/// summation.
pub fn grid_sample_3d(input: &Tensor, grid: &Tensor) -> Result<Tensor> {
    let &[n, c, d, h, w] = input.dims() else {
        bail!("grid_sample_3d wants input as (N, C, D, H, W), got shape {:?}", input.dims())
    };
    let &[gn, od, oh, ow, three] = grid.dims() else {
        bail!("grid_sample_3d wants grid as (N, Do, Ho, Wo, 3), got shape {:?}", grid.dims())
    };
    if gn != n || three != 3 {
        bail!(
            "grid_sample_3d: grid of shape {:?} does not fit input of shape {:?}; expected ({n}, Do, Ho, Wo, 3)",
            grid.dims(),
            input.dims()
        );
    }
    if d * h * w == 0 {
        bail!("grid_sample_3d: the input volume of shape {:?} is empty", input.dims());
    }
    if input.device().is_cpu() && input.dtype() == DType::F32 && grid.dtype() == DType::F32 {
        return input.contiguous()?.apply_op2_no_bwd(&grid.contiguous()?, &GridSample3d);
    }
    grid_sample_3d_whole(input, grid, [n, c, d, h, w], [od, oh, ow])
}

/// The whole-tensor path of [`grid_sample_3d`], for shapes it has checked.
fn grid_sample_3d_whole(
    input: &Tensor,
    grid: &Tensor,
    [n, c, d, h, w]: [usize; 5],
    [od, oh, ow]: [usize; 3],
) -> Result<Tensor> {
    let dtype = input.dtype();
    let cdtype = compute_dtype(dtype);
    let dev = input.device();
    let points = od * oh * ow;
    let voxels = d * h * w;
    // (N·D·H·W, C): one row of channels per voxel, the rows an index_select gathers.
    let rows = input.to_dtype(cdtype)?.reshape((n, c, voxels))?.transpose(1, 2)?.reshape((n * voxels, c))?;
    let grid = grid.to_dtype(cdtype)?.reshape((n, points, 3))?;

    // PyTorch's unnormalisation, ((coord + 1) · size − 1) / 2, in the same order of operations.
    let source = |axis: usize, size: usize| -> Result<Tensor> {
        grid.narrow(2, axis, 1)?.squeeze(2)?.affine(1., 1.)?.affine(size as f64, -1.)?.affine(0.5, 0.)
    };
    // Per axis: the lower and upper neighbour's clamped index (u32) and weight (zero out of range).
    let axis = |axis: usize, size: usize| -> Result<[(Tensor, Tensor); 2]> {
        let s = source(axis, size)?;
        let lo = s.floor()?;
        let hi = lo.affine(1., 1.)?;
        let zeros = lo.zeros_like()?;
        let corner = |at: &Tensor, weight: Tensor| -> Result<(Tensor, Tensor)> {
            let inside = at.ge(0.)?.mul(&at.le((size - 1) as f64)?)?;
            let index = at.clamp(0., (size - 1) as f64)?.to_dtype(DType::U32)?;
            Ok((index, inside.where_cond(&weight, &zeros)?))
        };
        Ok([corner(&lo, hi.sub(&s)?)?, corner(&hi, s.sub(&lo)?)?])
    };
    let [xs, ys, zs] = [axis(0, w)?, axis(1, h)?, axis(2, d)?];
    // Batch entry i's voxels start at row i·D·H·W.
    let base = (Tensor::arange(0u32, n as u32, dev)?.affine(voxels as f64, 0.)?).reshape((n, 1))?;

    let mut out: Option<Tensor> = None;
    // PyTorch's order: tnw, tne, tsw, tse, bnw, bne, bsw, bse (z outermost, then y, then x).
    for (zi, zw) in &zs {
        let z_index = zi.affine((h * w) as f64, 0.)?.broadcast_add(&base)?;
        for (yi, yw) in &ys {
            let zy_index = (&z_index + yi.affine(w as f64, 0.)?)?;
            for (xi, xw) in &xs {
                let index = (&zy_index + xi)?.flatten_all()?;
                let weight = xw.mul(yw)?.mul(zw)?.reshape((n * points, 1))?;
                let term = rows.index_select(&index, 0)?.broadcast_mul(&weight)?;
                out = Some(match out {
                    Some(acc) => (acc + term)?,
                    None => term,
                });
            }
        }
    }
    let out = out.expect("8 corners");
    out.reshape((n, od, oh, ow, c))?.permute((0, 4, 1, 2, 3))?.contiguous()?.to_dtype(dtype)
}

/// The CPU kernel of [`grid_sample_3d`] for contiguous f32 input `(N, C, D, H, W)` and grid
/// `(N, Do, Ho, Wo, 3)`: per point, PyTorch's unnormalisation, corner weights and in-bounds sum
/// (tnw, tne, tsw, tse, bnw, bne, bsw, bse), over every channel. Chunks of points are spread
/// over rayon's pool.
struct GridSample3d;

impl CustomOp2 for GridSample3d {
    fn name(&self) -> &'static str {
        "grid-sample-3d"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_l: &Layout, g: &CpuStorage, g_l: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, g) = (cpu_f32(x, x_l, op)?, cpu_f32(g, g_l, op)?);
        let (&[n, c, d, h, w], &[gn, od, oh, ow, 3]) = (x_l.dims(), g_l.dims()) else {
            bail!("grid-sample-3d: input {:?} and grid {:?} do not fit", x_l.dims(), g_l.dims())
        };
        if gn != n {
            bail!("grid-sample-3d: input {:?} and grid {:?} do not fit", x_l.dims(), g_l.dims());
        }
        let (points, voxels) = (od * oh * ow, d * h * w);
        let mut y = vec![0f32; n * c * points];
        let tasks: Vec<(usize, usize)> = (0..n).flat_map(|b| (0..points).step_by(CHUNK).map(move |p| (b, p))).collect();
        let y_ptr = y.as_mut_ptr() as usize;
        let unnormalise = |coord: f32, size: usize| ((coord + 1.) * size as f32 - 1.) / 2.;
        tasks.par_iter().for_each(|&(b, first)| {
            let x = &x[b * c * voxels..(b + 1) * c * voxels];
            for p in first..(first + CHUNK).min(points) {
                let at = &g[(b * points + p) * 3..(b * points + p) * 3 + 3];
                let (ix, iy, iz) = (unnormalise(at[0], w), unnormalise(at[1], h), unnormalise(at[2], d));
                let (x0, y0, z0) = (ix.floor(), iy.floor(), iz.floor());
                // (index, weight) of the lower and upper neighbour per axis; None out of range.
                let side = |lo: f32, s: f32, size: usize| {
                    let inside = |i: f32| (i >= 0. && i <= (size - 1) as f32).then_some(i as usize);
                    [(inside(lo), (lo + 1.) - s), (inside(lo + 1.), s - lo)]
                };
                let (xs, ys, zs) = (side(x0, ix, w), side(y0, iy, h), side(z0, iz, d));
                for (zi, zw) in zs {
                    let Some(zi) = zi else { continue };
                    for (yi, yw) in ys {
                        let Some(yi) = yi else { continue };
                        for (xi, xw) in xs {
                            let Some(xi) = xi else { continue };
                            let weight = xw * yw * zw;
                            let voxel = (zi * h + yi) * w + xi;
                            for ch in 0..c {
                                // SAFETY: y holds n·c·points values; this task alone writes the
                                // points first..first + CHUNK of batch entry b.
                                unsafe {
                                    *(y_ptr as *mut f32).add((b * c + ch) * points + p) +=
                                        x[ch * voxels + voxel] * weight;
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, od, oh, ow))))
    }
}
