//! Estimates of the work a slot still has to do, for the predictive deadline abort.

use std::sync::Mutex;
use std::time::Duration;

use crate::config::{Orchestration, PredictorKind};
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

    /// Told once per stage a slot never started (an abort, a failure upstream). A learning
    /// predictor must not freeze when slots stop producing observations.
    fn skipped(&self, _stage: Stage) {}

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

/// Estimates each stage as a quantile of its most recent observed latencies, so abort decisions
/// follow a GPU that slows down or speeds up.
///
/// Each stage keeps a window of `history` latencies that starts full of the stage's target: the
/// first estimates are the targets, and after `history` observations none of them is left. Only
/// successful attempts are observed (a timed-out attempt's latency is unknown), so the window
/// under-represents latencies beyond the timeout.
///
/// A stage a slot never started adds its target as a pseudo-observation. Without it, pessimistic
/// estimates abort slots before they run, aborted slots observe nothing, and the estimates never
/// come down again (measured on the `drift` scenario: 94% of slots aborted once the slow phase
/// had passed). With it, a run of aborts pulls the estimates back towards the targets.
///
/// ```
/// use std::time::Duration;
/// use vortex::{AdaptivePredictor, PerStage, Predictor, Stage};
/// let secs = Duration::from_secs;
/// let p = AdaptivePredictor::new(PerStage::new(secs(2), secs(12), secs(8), secs(1)), 0.5, 4);
/// assert_eq!(p.estimate(Stage::Image), secs(12));
/// for _ in 0..3 {
///     p.observe(Stage::Image, secs(16));
/// }
/// assert_eq!(p.estimate(Stage::Image), secs(16)); // the median of [12, 16, 16, 16]
/// ```
#[derive(Debug)]
pub struct AdaptivePredictor {
    quantile: f64,
    targets: PerStage<Duration>,
    windows: Mutex<PerStage<Window>>,
}

/// One stage's ring of recent latencies and its current estimate.
#[derive(Debug, Clone)]
struct Window {
    samples: Vec<Duration>,
    next: usize,
    estimate: Duration,
    /// Preallocated so that observing never allocates.
    scratch: Vec<Duration>,
}

impl AdaptivePredictor {
    /// A predictor taking `quantile` (in (0, 1]) of the last `history` (>= 1) latencies per stage.
    pub fn new(targets: PerStage<Duration>, quantile: f64, history: usize) -> Self {
        assert!(quantile > 0.0 && quantile <= 1.0, "quantile {quantile} outside (0, 1]");
        assert!(history >= 1, "history must hold at least one latency");
        let windows = PerStage::from_fn(|stage| {
            let target = *targets.get(stage);
            Window { samples: vec![target; history], next: 0, estimate: target, scratch: Vec::with_capacity(history) }
        });
        AdaptivePredictor { quantile, targets, windows: Mutex::new(windows) }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, PerStage<Window>> {
        self.windows.lock().expect("predictor state poisoned")
    }
}

impl Clone for AdaptivePredictor {
    fn clone(&self) -> Self {
        AdaptivePredictor {
            quantile: self.quantile,
            targets: self.targets,
            windows: Mutex::new(self.windows().clone()),
        }
    }
}

impl Predictor for AdaptivePredictor {
    fn estimate(&self, stage: Stage) -> Duration {
        self.windows().get(stage).estimate
    }

    fn observe(&self, stage: Stage, latency: Duration) {
        let mut windows = self.windows();
        let w = windows.get_mut(stage);
        let n = w.samples.len();
        w.samples[w.next] = latency;
        w.next = (w.next + 1) % n;
        w.scratch.clear();
        w.scratch.extend_from_slice(&w.samples);
        // The smallest value with at least `quantile` of the window at or below it.
        let rank = ((self.quantile * n as f64).ceil() as usize).clamp(1, n) - 1;
        w.estimate = *w.scratch.select_nth_unstable(rank).1;
    }

    fn skipped(&self, stage: Stage) {
        self.observe(stage, *self.targets.get(stage));
    }
}

/// The predictor `orchestration.predictor` selects.
#[derive(Debug, Clone)]
pub enum ConfiguredPredictor {
    /// `static`.
    Static(StaticPredictor),
    /// `adaptive`.
    Adaptive(Box<AdaptivePredictor>),
}

impl ConfiguredPredictor {
    /// Builds the predictor the config names, warm-started from its targets.
    pub fn from_config(orchestration: &Orchestration) -> Self {
        let targets = orchestration.target_durations();
        match orchestration.predictor {
            PredictorKind::Static => ConfiguredPredictor::Static(StaticPredictor::new(targets)),
            PredictorKind::Adaptive => {
                let a = orchestration.adaptive;
                ConfiguredPredictor::Adaptive(Box::new(AdaptivePredictor::new(
                    targets,
                    a.quantile.get(),
                    a.history.get() as usize,
                )))
            }
        }
    }
}

impl Predictor for ConfiguredPredictor {
    fn estimate(&self, stage: Stage) -> Duration {
        match self {
            ConfiguredPredictor::Static(p) => p.estimate(stage),
            ConfiguredPredictor::Adaptive(p) => p.estimate(stage),
        }
    }

    fn observe(&self, stage: Stage, latency: Duration) {
        match self {
            ConfiguredPredictor::Static(p) => p.observe(stage, latency),
            ConfiguredPredictor::Adaptive(p) => p.observe(stage, latency),
        }
    }

    fn skipped(&self, stage: Stage) {
        match self {
            ConfiguredPredictor::Static(p) => p.skipped(stage),
            ConfiguredPredictor::Adaptive(p) => p.skipped(stage),
        }
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

    #[test]
    fn adaptive_estimate_follows_a_slowdown_and_a_recovery() {
        let secs = Duration::from_secs;
        let p = AdaptivePredictor::new(PerStage::new(secs(2), secs(12), secs(8), secs(1)), 0.9, 10);
        assert_eq!(p.remaining(Remaining::Slot), secs(21));
        for _ in 0..10 {
            p.observe(Stage::Video, secs(11));
        }
        assert_eq!(p.estimate(Stage::Video), secs(11));
        assert_eq!(p.remaining(Remaining::From(Stage::Video)), secs(12));
        // One fast observation among ten slow ones does not move the 0.9 quantile ...
        p.observe(Stage::Video, secs(6));
        assert_eq!(p.estimate(Stage::Video), secs(11));
        // ... nine do: the window is then nine 6 s and one 11 s; the 9th smallest is 6 s.
        for _ in 0..8 {
            p.observe(Stage::Video, secs(6));
        }
        assert_eq!(p.estimate(Stage::Video), secs(6));
        // Other stages are untouched and a clone is independent.
        assert_eq!(p.estimate(Stage::Image), secs(12));
        let snapshot = p.clone();
        p.observe(Stage::Clip, secs(5));
        assert_eq!(snapshot.estimate(Stage::Clip), secs(1));
    }

    #[test]
    fn skipped_stages_pull_the_adaptive_estimate_back_to_the_target() {
        let secs = Duration::from_secs;
        let p = AdaptivePredictor::new(PerStage::new(secs(2), secs(12), secs(8), secs(1)), 0.9, 4);
        for _ in 0..4 {
            p.observe(Stage::Image, secs(20));
        }
        assert_eq!(p.estimate(Stage::Image), secs(20));
        for _ in 0..4 {
            p.skipped(Stage::Image);
        }
        assert_eq!(p.estimate(Stage::Image), secs(12));
    }
}
