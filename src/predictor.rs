//! Estimates of the work a slot still has to do, for the predictive deadline abort.

use std::time::Duration;

use crate::stage::{PerStage, Stage};

/// The work still ahead of a slot, as the predictor is asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remaining {
    /// The whole slot: audio ∥ image (the larger of the two), then video, then clip.
    Slot,
    /// This stage and every stage after it on its path (audio or image: that stage, video, clip).
    From(Stage),
}

/// Estimates how long stages will take; the scheduler continues a slot only when the estimate of
/// its remaining work fits before the deadline less the buffer.
pub trait Predictor: Send + Sync {
    /// Expected latency of one stage.
    fn estimate(&self, stage: Stage) -> Duration;

    /// Learns from one finished attempt; the static predictor ignores it.
    fn observe(&self, _stage: Stage, _latency: Duration) {}

    /// Expected time for the given remaining work, built from [`Predictor::estimate`].
    fn remaining(&self, work: Remaining) -> Duration {
        let tail = |from: Stage| -> Duration {
            Stage::ALL[from.index().max(Stage::Video.index())..].iter().map(|&s| self.estimate(s)).sum()
        };
        match work {
            Remaining::Slot => self.estimate(Stage::Audio).max(self.estimate(Stage::Image)) + tail(Stage::Video),
            Remaining::From(stage @ (Stage::Audio | Stage::Image)) => self.estimate(stage) + tail(Stage::Video),
            Remaining::From(stage) => tail(stage),
        }
    }
}

/// The default predictor: each stage takes its configured target (`orchestration.targets`).
#[derive(Debug, Clone)]
pub struct StaticPredictor {
    targets: PerStage<Duration>,
}

impl StaticPredictor {
    /// A predictor that always answers the given targets.
    pub fn new(targets: PerStage<Duration>) -> Self {
        StaticPredictor { targets }
    }
}

impl Predictor for StaticPredictor {
    fn estimate(&self, stage: Stage) -> Duration {
        *self.targets.get(stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_the_parallel_pair_once_at_its_larger() {
        let secs = Duration::from_secs;
        let p = StaticPredictor::new(PerStage::new(secs(2), secs(12), secs(8), secs(1)));
        assert_eq!(p.remaining(Remaining::Slot), secs(21));
        assert_eq!(p.remaining(Remaining::From(Stage::Audio)), secs(11));
        assert_eq!(p.remaining(Remaining::From(Stage::Image)), secs(21));
        assert_eq!(p.remaining(Remaining::From(Stage::Video)), secs(9));
        assert_eq!(p.remaining(Remaining::From(Stage::Clip)), secs(1));
    }
}
