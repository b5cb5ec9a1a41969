//! The self-check's verdict: the dual CLIP ensemble's two scores combined, and the keyframes it
//! scores. The models themselves are in [`crate::clip`].
//!
//! - Ensemble score = `b32_weight` × B + (1 − `b32_weight`) × L; the self-check passes when
//!   B ≥ `b32_min` and L ≥ `l14_min`; an outlier is flagged when |B − L| > `outlier_gap`.
//! - Consensus embedding: each model's mean keyframe embedding, L2-normalised, scaled by its
//!   ensemble weight, the two concatenated (B's first) and L2-normalised again.

use crate::clip::ModelScore;
use crate::config::VerificationConfig;
use crate::media::{Frame, Video};

/// The self-check's result.
#[derive(Debug, Clone)]
pub struct ClipVerdict {
    /// ViT-B/32 score.
    pub score_b32: f64,
    /// ViT-L/14 score.
    pub score_l14: f64,
    /// Weighted ensemble score.
    pub ensemble: f64,
    /// B ≥ b32_min and L ≥ l14_min.
    pub passed: bool,
    /// |B − L| > outlier_gap.
    pub outlier: bool,
    /// The consensus embedding (see the module docs), L2-normalised.
    pub embedding: Vec<f32>,
}

impl vortex::Verdict for ClipVerdict {
    fn passed(&self) -> bool {
        self.passed
    }
}

/// Combines the two models' scores into a verdict.
pub fn verdict(b32: &ModelScore, l14: &ModelScore, cfg: &VerificationConfig) -> ClipVerdict {
    let w = cfg.b32_weight.get();
    let ensemble = w * b32.score + (1.0 - w) * l14.score;
    let mut embedding: Vec<f32> = b32
        .mean_embedding
        .iter()
        .map(|x| x * w as f32)
        .chain(l14.mean_embedding.iter().map(|x| x * (1.0 - w) as f32))
        .collect();
    let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        embedding.iter_mut().for_each(|x| *x /= norm);
    }
    ClipVerdict {
        score_b32: b32.score,
        score_l14: l14.score,
        ensemble,
        passed: b32.score >= cfg.b32_min.get() && l14.score >= cfg.l14_min.get(),
        outlier: (b32.score - l14.score).abs() > cfg.outlier_gap.get(),
        embedding,
    }
}

/// The keyframes of a video the self-check scores.
pub fn keyframes(video: &Video, cfg: &VerificationConfig) -> Vec<Frame> {
    video.keyframe_indices(cfg.keyframes.get() as usize).into_iter().map(|i| video.frames[i].clone()).collect()
}
