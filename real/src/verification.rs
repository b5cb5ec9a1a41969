//! The self-check's verdict: the dual CLIP ensemble's two scores combined, and the keyframes it
//! scores. The models themselves are in [`crate::clip`].
//!
//! - Each model's score is CLIPScore (Hessel et al., 2021, *CLIPScore: A Reference-free
//!   Evaluation Metric for Image Captioning*): per keyframe 2.5 × max(cosine, 0), averaged over
//!   the keyframes. Raw cosines of a matching image and caption are about 0.25 to 0.35; the 2.5
//!   stretches them towards [0, 1] so that thresholds read like the paper's figures
//!   (docs/decisions.md D16). The mean raw cosine is kept beside it for published raw figures.
//! - Ensemble score = `b32_weight` × B + (1 − `b32_weight`) × L, in CLIPScore; the self-check
//!   passes when B ≥ `b32_min` and L ≥ `l14_min`; an outlier is flagged when |B − L| >
//!   `outlier_gap`.
//! - Consensus embedding: each model's mean keyframe embedding, L2-normalised, scaled by its
//!   ensemble weight, the two concatenated (B's first) and L2-normalised again.

use crate::clip::ModelScore;
use crate::config::VerificationConfig;
use crate::media::{Frame, Video};

/// CLIPScore's rescaling weight w (Hessel et al., 2021): scores run from 0 to 2.5.
pub const CLIP_SCORE_W: f64 = 2.5;

/// The self-check's result, as `result.json` holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipVerdict {
    /// ViT-B/32 CLIPScore, 0 to 2.5.
    pub score_b32: f64,
    /// ViT-L/14 CLIPScore, 0 to 2.5.
    pub score_l14: f64,
    /// ViT-B/32 mean raw cosine similarity of the keyframes and the prompt, -1 to 1.
    pub cosine_b32: f64,
    /// ViT-L/14 mean raw cosine similarity, -1 to 1.
    pub cosine_l14: f64,
    /// Weighted ensemble of the two CLIPScores.
    pub ensemble: f64,
    /// B ≥ b32_min and L ≥ l14_min (CLIPScores).
    pub passed: bool,
    /// |B − L| > outlier_gap (CLIPScores).
    pub outlier: bool,
    /// The consensus embedding (see the module docs), L2-normalised.
    pub embedding: Vec<f32>,
}

impl vortex::Verdict for ClipVerdict {
    fn passed(&self) -> bool {
        self.passed
    }
}

/// CLIPScore of one image–text cosine similarity: 2.5 × max(cosine, 0). A negative cosine counts
/// as no match at all rather than as a penalty, as in the paper.
pub fn clip_score(cosine: f64) -> f64 {
    CLIP_SCORE_W * cosine.max(0.0)
}

/// A model's CLIPScore over keyframes: the mean of each keyframe's CLIPScore (clamped per frame,
/// as the paper averages per pair). No keyframes score 0, which fails any threshold above 0.
pub fn mean_clip_score(cosines: &[f64]) -> f64 {
    if cosines.is_empty() {
        return 0.0;
    }
    cosines.iter().map(|&c| clip_score(c)).sum::<f64>() / cosines.len() as f64
}

fn mean_cosine(cosines: &[f64]) -> f64 {
    if cosines.is_empty() {
        return 0.0;
    }
    cosines.iter().sum::<f64>() / cosines.len() as f64
}

/// Combines the two models' scores into a verdict.
pub fn verdict(b32: &ModelScore, l14: &ModelScore, cfg: &VerificationConfig) -> ClipVerdict {
    let w = cfg.b32_weight.get();
    let (score_b32, score_l14) = (mean_clip_score(&b32.cosines), mean_clip_score(&l14.cosines));
    let ensemble = w * score_b32 + (1.0 - w) * score_l14;
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
        score_b32,
        score_l14,
        cosine_b32: mean_cosine(&b32.cosines),
        cosine_l14: mean_cosine(&l14.cosines),
        ensemble,
        passed: score_b32 >= cfg.b32_min.get() && score_l14 >= cfg.l14_min.get(),
        outlier: (score_b32 - score_l14).abs() > cfg.outlier_gap.get(),
        embedding,
    }
}

/// The keyframes of a video the self-check scores.
pub fn keyframes(video: &Video, cfg: &VerificationConfig) -> Vec<Frame> {
    video.keyframe_indices(cfg.keyframes.get() as usize).into_iter().map(|i| video.frames[i].clone()).collect()
}
