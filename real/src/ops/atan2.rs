//! Elementwise two-argument arctangent.

use candle_core::{bail, Result, Tensor};
use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// tan(π/8): above it the argument is reduced with atan(a) = π/4 + atan((a - 1) / (a + 1)).
const TAN_PI_8: f64 = 0.414_213_562_373_095_05;

/// Minimax coefficients of atan(t) ≈ t + t·z·(c₁ + c₂z + c₃z² + c₄z³), z = t², on
/// |t| ≤ tan(π/8), from Cephes' single-precision `atanf` (S. L. Moshier): about 2e-7 relative,
/// f32's own precision.
const ATAN_COEFFS: [f64; 4] = [-3.333_294_915_39e-1, 1.997_771_064_78e-1, -1.387_768_560_32e-1, 8.053_744_495_38e-2];

/// The angle of the point (x, y) in radians, in [-π, π], elementwise, as `torch.atan2(y, x)`:
/// quadrants from both signs, signed zeros (atan2(±0, +0) = ±0, atan2(±0, -0) = ±π),
/// infinities (atan2(∞, -∞) = 3π/4) and NaN propagation included.
///
/// candle has no arctangent at all, so it is computed from elementwise operations (a rational
/// reduction to |t| ≤ tan(π/8) and a polynomial) to about 2e-7, f32's precision, in f32 for
/// half-precision inputs and in the input's dtype otherwise (f64 inputs get f32 accuracy).
pub fn atan2(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    if y.shape() != x.shape() {
        bail!("atan2: y and x must have the same shape, got {:?} and {:?}", y.dims(), x.dims());
    }
    if y.dtype() != x.dtype() || !y.dtype().is_float() {
        bail!("atan2: y and x must have the same float dtype, got {:?} and {:?}", y.dtype(), x.dtype());
    }
    let out_dtype = y.dtype();
    let dtype = super::compute_dtype(out_dtype);
    let (y, x) = (y.to_dtype(dtype)?, x.to_dtype(dtype)?);
    let (ay, ax) = (y.abs()?, x.abs()?);
    let big = ay.maximum(&ax)?;
    let small = ay.minimum(&ax)?;
    let zeros = big.zeros_like()?;
    // a = small / big in [0, 1]; 0/0 (the origin) is 0 and ∞/∞ is 1, as C's atan2 takes them.
    let ratio = (&small / &big)?;
    let ratio = small.eq(f64::INFINITY)?.where_cond(&zeros.affine(0., 1.)?, &ratio)?;
    let a = big.eq(0.)?.where_cond(&zeros, &ratio)?;

    let reduce = a.gt(TAN_PI_8)?;
    let t = reduce.where_cond(&((a.affine(1., -1.)? / a.affine(1., 1.)?)?), &a)?;
    let z = t.sqr()?;
    let [c1, c2, c3, c4] = ATAN_COEFFS;
    let poly = z.affine(c4, c3)?.mul(&z)?.affine(1., c2)?.mul(&z)?.affine(1., c1)?;
    let atan_t = (t.mul(&z)?.mul(&poly)? + &t)?;
    let r = reduce.where_cond(&atan_t.affine(1., FRAC_PI_4)?, &atan_t)?;

    // Octants: steeper than 45° reflects about π/2, a negative x about π, a negative y flips.
    let r = ay.gt(&ax)?.where_cond(&r.affine(-1., FRAC_PI_2)?, &r)?;
    let r = sign_bit(&x)?.where_cond(&r.affine(-1., PI)?, &r)?;
    // `neg`, not `0 - r`: atan2(-0, +0) is -0.
    let r = sign_bit(&y)?.where_cond(&r.neg()?, &r)?;
    let nan = x.ne(&x)?.maximum(&y.ne(&y)?)?;
    let r = nan.where_cond(&zeros.affine(0., f64::NAN)?, &r)?;
    r.to_dtype(out_dtype)
}

/// 1 where the sign bit is set (negative numbers, -0 and -∞), else 0. candle cannot reinterpret
/// bits, so -0 is told from +0 by its reciprocal, -∞.
fn sign_bit(v: &Tensor) -> Result<Tensor> {
    v.lt(0.)?.maximum(&v.recip()?.lt(0.)?)
}
