//! LivePortrait's keypoint math, batched over frames: the tensor functions of the reference's
//! `src/utils/camera.py` (`headpose_pred_to_degree`, `get_rotation_matrix`) and of
//! `LivePortraitWrapper` in `src/live_portrait_wrapper.py` (`transform_keypoint`, `stitching`,
//! `retarget_lip`, `retarget_eye`, with `concat_feat` of `src/utils/helper.py`).
//!
//! Shapes: `B` frames, `N` keypoints (21 in the published model). Keypoints are `(B, N, 3)`,
//! angles are degrees `(B,)` (or `(B, 1)`), rotations `(B, 3, 3)` acting on row vectors
//! (`x · R`), as the reference has them.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vortex_real::liveportrait::keypoints::{get_rotation_matrix, transform_keypoint};
//!
//! let dev = Device::Cpu;
//! let zero = Tensor::zeros(2, candle_core::DType::F32, &dev)?; // 2 frames, no rotation
//! let rotation = get_rotation_matrix(&zero, &zero, &zero)?;
//! let kp = Tensor::ones((2, 21, 3), candle_core::DType::F32, &dev)?;
//! let exp = kp.zeros_like()?;
//! let scale = Tensor::new(&[2f32, 3.], &dev)?;
//! let t = Tensor::new(&[[0.5f32, 0., 9.], [0., 0., 9.]], &dev)?; // tz is dropped
//! let moved = transform_keypoint(&kp, &rotation, &exp, &scale, &t)?;
//! assert_eq!(moved.get(0)?.get(0)?.to_vec1::<f32>()?, [2.5, 2., 2.]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor};

use super::stitching::StitchingRetargeting;

/// Bins of each head-pose angle the motion extractor predicts (3° apart, from −97.5°).
pub const POSE_BINS: usize = 66;
/// Degrees per pose bin.
const BIN_DEGREES: f64 = 3.;
/// The degrees of bin 0's lower edge, as the reference shifts the expectation ("the average is
/// modified to 97.5").
const BIN_OFFSET_DEGREES: f64 = 97.5;

/// `headpose_pred_to_degree`: the expected angle in degrees under the softmax of `pred`
/// `(B, 66)` logits, `(B,)`.
pub fn headpose_pred_to_degree(pred: &Tensor) -> Result<Tensor> {
    match pred.dims() {
        [_, POSE_BINS] => {}
        dims => bail!("head pose logits of shape {dims:?}; need (batch, {POSE_BINS})"),
    }
    let p = candle_nn::ops::softmax_last_dim(pred)?;
    let bins = Tensor::arange(0u32, POSE_BINS as u32, pred.device())?.to_dtype(pred.dtype())?;
    p.broadcast_mul(&bins.unsqueeze(0)?)?.sum(1)?.affine(BIN_DEGREES, -BIN_OFFSET_DEGREES)
}

/// Angles `(B,)` or `(B, 1)` as `(B, 1)`, in radians.
fn radians(degrees: &Tensor, name: &str) -> Result<Tensor> {
    let column = match degrees.dims() {
        [b] => degrees.reshape((*b, 1))?,
        [_, 1] => degrees.clone(),
        dims => bail!("{name} of shape {dims:?}; need (batch,) or (batch, 1) degrees"),
    };
    // The reference divides by 180 and then multiplies by π, each rounded.
    (column / 180.)? * std::f64::consts::PI
}

/// `get_rotation_matrix`: angles in degrees, `(B,)` or `(B, 1)` each, to `(Rz · Ry · Rx)ᵀ`
/// `(B, 3, 3)` (pitch about x, yaw about y, roll about z), which rotates row vectors.
pub fn get_rotation_matrix(pitch: &Tensor, yaw: &Tensor, roll: &Tensor) -> Result<Tensor> {
    let (x, y, z) = (radians(pitch, "pitch")?, radians(yaw, "yaw")?, radians(roll, "roll")?);
    let b = x.dim(0)?;
    if y.dim(0)? != b || z.dim(0)? != b {
        bail!("rotation angles for {b}, {} and {} frames; need the same number", y.dim(0)?, z.dim(0)?);
    }
    let ones = x.ones_like()?;
    let zeros = x.zeros_like()?;
    let matrix = |entries: [&Tensor; 9]| Tensor::cat(&entries, 1)?.reshape((b, 3, 3));
    let (cx, sx, nsx) = (x.cos()?, x.sin()?, x.sin()?.neg()?);
    let (cy, sy, nsy) = (y.cos()?, y.sin()?, y.sin()?.neg()?);
    let (cz, sz, nsz) = (z.cos()?, z.sin()?, z.sin()?.neg()?);
    let rot_x = matrix([&ones, &zeros, &zeros, &zeros, &cx, &nsx, &zeros, &sx, &cx])?;
    let rot_y = matrix([&cy, &zeros, &sy, &zeros, &ones, &zeros, &nsy, &zeros, &cy])?;
    let rot_z = matrix([&cz, &nsz, &zeros, &sz, &cz, &zeros, &zeros, &zeros, &ones])?;
    rot_z.matmul(&rot_y)?.matmul(&rot_x)?.transpose(1, 2)?.contiguous()
}

/// Keypoints `(B, N, 3)` or flat `(B, 3N)` as `(B, N, 3)`.
fn keypoints(kp: &Tensor, name: &str) -> Result<Tensor> {
    match kp.dims() {
        [_, _, 3] => Ok(kp.clone()),
        [b, n3] if n3 % 3 == 0 && *n3 > 0 => kp.reshape((*b, n3 / 3, 3)),
        dims => bail!("{name} of shape {dims:?}; need (batch, keypoints, 3) or (batch, 3 · keypoints)"),
    }
}

/// `transform_keypoint` (the paper's Eqn. 2): `scale · (kp · rotation + exp) + t` with t's z
/// dropped, for canonical keypoints `kp` and expression deltas `exp` `(B, N, 3)` (or flat
/// `(B, 3N)`), `rotation` `(B, 3, 3)` from [`get_rotation_matrix`], `scale` `(B,)` or `(B, 1)`
/// and `t` `(B, 3)`; `(B, N, 3)`. The pipeline's `scale_new · (x_c_s @ R_new + delta_new) +
/// t_new` with `t_new[..., 2] = 0` is the same sum.
pub fn transform_keypoint(kp: &Tensor, rotation: &Tensor, exp: &Tensor, scale: &Tensor, t: &Tensor) -> Result<Tensor> {
    let (kp, exp) = (keypoints(kp, "keypoints")?, keypoints(exp, "expression")?);
    let (b, _, _) = kp.dims3()?;
    if exp.dims() != kp.dims() {
        bail!("expression of shape {:?} for keypoints of shape {:?}; need the same", exp.dims(), kp.dims());
    }
    if rotation.dims() != [b, 3, 3] {
        bail!("rotation of shape {:?} for {b} frames; need ({b}, 3, 3)", rotation.dims());
    }
    let scale = match scale.dims() {
        [s] | [s, 1] if *s == b => scale.reshape((b, 1, 1))?,
        dims => bail!("scale of shape {dims:?} for {b} frames; need ({b},) or ({b}, 1)"),
    };
    if t.dims() != [b, 3] {
        bail!("translation of shape {:?} for {b} frames; need ({b}, 3)", t.dims());
    }
    let t_xy = Tensor::cat(&[t.narrow(1, 0, 2)?, Tensor::zeros((b, 1), t.dtype(), t.device())?], 1)?;
    kp.matmul(rotation)?.add(&exp)?.broadcast_mul(&scale)?.broadcast_add(&t_xy.unsqueeze(1)?)
}

/// `concat_feat`: each frame's features flattened and side by side, `(B, A…)` and `(B, C…)` to
/// `(B, |A| + |C|)`. A batch of 1 in `a` is repeated for every frame of `b` (one source image
/// driven by many frames).
pub fn concat_feat(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (Some(&ba), Some(&bb)) = (a.dims().first(), b.dims().first()) else {
        bail!("concat_feat: inputs of shapes {:?} and {:?}; need a batch dimension", a.dims(), b.dims())
    };
    if ba != bb && ba != 1 {
        bail!("concat_feat: batches of {ba} and {bb}; need the same, or 1 for the first");
    }
    let a = a.reshape((ba, ()))?;
    let a = if ba == bb { a } else { a.broadcast_as((bb, a.dim(1)?))? };
    Tensor::cat(&[a.to_dtype(b.dtype())?, b.reshape((bb, ()))?], 1)
}

/// The number of keypoints of `(B, N, 3)` source keypoints.
fn source_keypoints(kp_source: &Tensor) -> Result<usize> {
    match kp_source.dims() {
        [_, n, 3] => Ok(*n),
        dims => bail!("source keypoints of shape {dims:?}; need (batch, keypoints, 3)"),
    }
}

/// `LivePortraitWrapper.stitching`: the driving keypoints `(B, N, 3)` moved by the stitching
/// network's delta (its first 3N outputs per keypoint, its last two to x and y of every
/// keypoint), given the source keypoints `(B, N, 3)` or `(1, N, 3)`.
pub fn stitching(s: &StitchingRetargeting, kp_source: &Tensor, kp_driving: &Tensor) -> Result<Tensor> {
    let n = source_keypoints(kp_source)?;
    let b = match kp_driving.dims() {
        [b, m, 3] if *m == n => *b,
        dims => bail!("driving keypoints of shape {dims:?}; need (batch, {n}, 3) like the source"),
    };
    let delta = s.stitching.forward(&concat_feat(kp_source, kp_driving)?)?;
    if delta.dim(1)? != 3 * n + 2 {
        bail!("the stitching network gives {} values; {n} keypoints need {}", delta.dim(1)?, 3 * n + 2);
    }
    let delta_exp = delta.narrow(1, 0, 3 * n)?.reshape((b, n, 3))?;
    let delta_xy = delta.narrow(1, 3 * n, 2)?;
    let delta_xy = Tensor::cat(&[delta_xy, Tensor::zeros((b, 1), delta.dtype(), delta.device())?], 1)?;
    // The reference adds the keypoint delta, then the shift, each rounded.
    kp_driving.add(&delta_exp)?.broadcast_add(&delta_xy.unsqueeze(1)?)
}

/// A retargeting network's delta `(B, N, 3)` from source keypoints and per-frame ratios.
fn retarget(
    net: &super::stitching::StitchingRetargetingNetwork,
    kp_source: &Tensor,
    ratio: &Tensor,
    ratios: usize,
    name: &str,
) -> Result<Tensor> {
    let n = source_keypoints(kp_source)?;
    let b = match ratio.dims() {
        [b, r] if *r == ratios => *b,
        dims => bail!("{name} close ratios of shape {dims:?}; need (batch, {ratios})"),
    };
    let delta = net.forward(&concat_feat(kp_source, ratio)?)?;
    if delta.dim(1)? != 3 * n {
        bail!("the {name} retargeting network gives {} values; {n} keypoints need {}", delta.dim(1)?, 3 * n);
    }
    delta.reshape((b, n, 3))
}

/// `LivePortraitWrapper.retarget_lip`: the lip network's keypoint delta `(B, N, 3)` from the
/// source keypoints `(B, N, 3)` or `(1, N, 3)` and `lip_close_ratio` `(B, 2)` (the source's and
/// the target's).
pub fn retarget_lip(s: &StitchingRetargeting, kp_source: &Tensor, lip_close_ratio: &Tensor) -> Result<Tensor> {
    retarget(&s.lip, kp_source, lip_close_ratio, 2, "lip")
}

/// `LivePortraitWrapper.retarget_eye`: the eye network's keypoint delta `(B, N, 3)` from the
/// source keypoints `(B, N, 3)` or `(1, N, 3)` and `eye_close_ratio` `(B, 3)` (the source's two
/// eyes and the target).
pub fn retarget_eye(s: &StitchingRetargeting, kp_source: &Tensor, eye_close_ratio: &Tensor) -> Result<Tensor> {
    retarget(&s.eye, kp_source, eye_close_ratio, 3, "eye")
}

/// Frames' angles in degrees from the motion extractor's logits, `(B, 66)` each, as
/// `get_kp_info(flag_refine_info=True)` gives them: `(pitch, yaw, roll)`, `(B,)` each.
pub fn pose_degrees(pitch: &Tensor, yaw: &Tensor, roll: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((headpose_pred_to_degree(pitch)?, headpose_pred_to_degree(yaw)?, headpose_pred_to_degree(roll)?))
}
