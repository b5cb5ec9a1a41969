//! Media passed between real stages.

/// An RGB image, 8 bits per channel.
pub type Frame = image::RgbImage;

/// A video: frames at a frame rate. Produced by the video stage (LivePortrait, not built yet).
#[derive(Debug, Clone)]
pub struct Video {
    /// Frames in order.
    pub frames: Vec<Frame>,
    /// Frames per second.
    pub fps: f32,
}

impl Video {
    /// `k` frame indices spread evenly from the first frame to the last (all frames when fewer).
    pub fn keyframe_indices(&self, k: usize) -> Vec<usize> {
        let n = self.frames.len();
        if n <= k {
            return (0..n).collect();
        }
        if k == 1 {
            return vec![n / 2];
        }
        (0..k).map(|j| (j * (n - 1) + (k - 1) / 2) / (k - 1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_spread_evenly_and_include_both_ends() {
        let video = Video { frames: vec![Frame::new(1, 1); 101], fps: 25.0 };
        assert_eq!(video.keyframe_indices(5), [0, 25, 50, 75, 100]);
        assert_eq!(video.keyframe_indices(1), [50]);
        let short = Video { frames: vec![Frame::new(1, 1); 3], fps: 25.0 };
        assert_eq!(short.keyframe_indices(5), [0, 1, 2]);
    }
}
