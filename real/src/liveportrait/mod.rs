//! LivePortrait (KwaiVGI, about 130 M parameters in five networks), the video stage's model:
//! it animates the Flux actor image into a talking head whose lips follow the slot's audio.
//! Each network is one file with its config struct first, loaded from the published
//! checkpoints' own tensor names (`src/modules/*.py` and `src/config/models.yaml` of the
//! reference):
//!
//! - the appearance feature extractor F: the source image to a 32 × 16 × 64 × 64 feature volume;
//! - the motion extractor M (ConvNeXt-V2-tiny): 21 canonical keypoints, expression, head pose,
//!   translation and scale;
//! - the warping module W: a dense motion field from source and driving keypoints, applied to
//!   the feature volume;
//! - the SPADE generator G: the warped features to a 512 × 512 RGB frame;
//! - the stitching and the lip and eye retargeting MLPs S.
//!
//! [`architecture`] reads the networks' sizes from a file in the reference's `models.yaml`
//! layout. Besides the networks, [`driver`] turns the slot's audio into each frame's motion targets.

pub mod appearance;
pub mod architecture;
pub mod blocks;
pub mod dense_motion;
pub mod driver;
pub mod keypoints;
pub mod motion;
pub mod pipeline;
pub mod spade;
pub mod stitching;
pub mod warping;
