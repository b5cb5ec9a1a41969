//! The simulation report: one data type, rendered as a table, as JSON (`--json`) and as an SVG
//! plot (`--plot`, see `plot.rs`). Field names are fixed: tools read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use vortex::{PerStage, Stage};

use crate::scenario::Scenario;
use crate::tally::{CheckpointKey, Latencies, SlotKind, Tally};

/// What a report says about the run besides its tally: enough to render a report, a table or a
/// plot without the scenario file (a merge of shards has only the shards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "the run information of a shard file")]
pub struct RunInfo {
    /// Scenario name.
    pub scenario: String,
    /// Scenario seed.
    pub seed: u64,
    /// Slots of the whole run.
    pub slots: u64,
    /// Each slot's deadline, seconds.
    pub deadline_s: f64,
    /// `orchestration.deadline_buffer_s`.
    pub buffer_s: f64,
    /// True for back-to-back slots (a `cadence`).
    pub cadence: bool,
    /// A digest of every setting that moves a result (the scenario after `--set`, its
    /// orchestration, its distributions), so that shards of different runs are never merged.
    pub fingerprint: String,
}

impl RunInfo {
    /// The run information of a loaded scenario.
    pub fn of(scenario: &Scenario) -> RunInfo {
        RunInfo {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            slots: scenario.slots,
            deadline_s: scenario.deadline.as_secs_f64(),
            buffer_s: scenario.orchestration.deadline_buffer_s.get(),
            cadence: scenario.cadence.is_some(),
            fingerprint: scenario.fingerprint(),
        }
    }
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario seed.
    pub seed: u64,
    /// Slots simulated.
    pub slots: u64,
    /// Slots per outcome.
    pub outcomes: Outcomes,
    /// Rates over all slots (see the field docs for the exceptions).
    pub rates: Rates,
    /// Retry attempts.
    pub retries: RetryTally,
    /// Latency summaries, milliseconds.
    pub latency_ms: LatencyMs,
    /// Stage time spent on slots that did not finish on time, seconds.
    pub wasted_gpu_s: f64,
    /// A few slot indices per outcome kind, for `vortex-sim replay`.
    pub examples: BTreeMap<String, Vec<u64>>,
    /// Back-to-back slots on one GPU: present only when the scenario has a `cadence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cadence: Option<CadenceReport>,
}

/// Queueing of back-to-back slots behind earlier ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CadenceReport {
    /// Time each slot waited for the GPU after its scheduled start, all slots.
    pub queue_delay_ms: Summary,
    /// Slots that started late because an earlier slot still held the GPU.
    pub delayed_slots: u64,
}

/// Slots per outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcomes {
    /// Completed by the deadline.
    pub on_time: u64,
    /// Completed after the deadline.
    pub late: u64,
    /// Aborted before audio and image.
    pub aborted_before_start: u64,
    /// Aborted before video.
    pub aborted_before_video: u64,
    /// Aborted before clip.
    pub aborted_before_clip: u64,
    /// Failed because the stage's last attempt ran into the stage's own timeout.
    pub timed_out: PerStage<u64>,
    /// Failed because the stage's last attempt ran into the slot's deadline (its timeout capped).
    pub deadline_capped: PerStage<u64>,
    /// Failed because the stage's last attempt returned an error.
    pub failed: PerStage<u64>,
    /// Completed slots whose self-check failed (also counted as on time or late).
    pub clip_rejected: u64,
}

impl Outcomes {
    /// Slots of one kind.
    pub fn count(&self, kind: SlotKind) -> u64 {
        match kind {
            SlotKind::OnTime => self.on_time,
            SlotKind::Late => self.late,
            SlotKind::Aborted(CheckpointKey::BeforeStart) => self.aborted_before_start,
            SlotKind::Aborted(CheckpointKey::BeforeVideo) => self.aborted_before_video,
            SlotKind::Aborted(CheckpointKey::BeforeClip) => self.aborted_before_clip,
            SlotKind::TimedOut(s) => *self.timed_out.get(s),
            SlotKind::DeadlineCapped(s) => *self.deadline_capped.get(s),
            SlotKind::Failed(s) => *self.failed.get(s),
        }
    }
}

/// Rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// On-time slots over all slots.
    pub on_time: f64,
    /// 1 − on_time.
    pub deadline_miss: f64,
    /// Aborted slots over all slots.
    pub abort: f64,
    /// Aborted slots that would have met the deadline had they continued, over all slots.
    pub false_abort: f64,
    /// Aborted slots that would indeed have missed, over aborted slots (null without aborts).
    pub abort_precision: Option<f64>,
    /// Retry attempts that succeeded, over retry attempts (null without retries).
    pub retry_recovery: Option<f64>,
}

/// Retry counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryTally {
    /// Retry attempts started.
    pub attempted: u64,
    /// Retry attempts that succeeded.
    pub recovered: u64,
}

/// Latency summaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Total slot latency of completed slots.
    pub total: Summary,
    /// Finished attempts (success or error) of each stage, keyed `audio`, `image`, `video`, `clip`.
    #[serde(flatten)]
    pub stages: PerStage<Summary>,
}

vortex::plain_stage_keys!(Summary);

/// Percentiles of a latency histogram (3 significant digits), in milliseconds; null when empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Values.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Largest value (exact).
    pub max: Option<f64>,
    /// Mean (exact).
    pub mean: Option<f64>,
    /// Distribution-free 95% interval of P99 from order statistics; a bound is null when there
    /// are too few values to place it.
    pub p99_ci95: [Option<f64>; 2],
}

impl Summary {
    /// Summarises one histogram.
    pub fn of(l: &Latencies) -> Summary {
        let n = l.count();
        if n == 0 {
            return Summary {
                count: 0,
                p50: None,
                p90: None,
                p99: None,
                p999: None,
                max: None,
                mean: None,
                p99_ci95: [None, None],
            };
        }
        // hdrhistogram answers the top of a bucket; the exact min and max bound the truth, so a
        // constant latency reads back exactly.
        let at = |q: f64| Some(us_to_ms(l.hist.value_at_quantile(q).clamp(l.min_us, l.max_us)));
        let rank = |k: u64| at((k as f64 - 0.5) / n as f64);
        let (lo, hi) = order_statistic_ci(n, 0.99);
        Summary {
            count: n,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Some(us_to_ms(l.max_us)),
            mean: Some(round3(l.sum_us as f64 / n as f64 / 1e3)),
            p99_ci95: [lo.and_then(rank), hi.and_then(rank)],
        }
    }
}

/// 1-based ranks (l, u) with P(X(l) <= quantile q <= X(u)) >= 95% for n samples, by the normal
/// approximation of the binomial; `None` where a rank falls outside 1..=n.
pub fn order_statistic_ci(n: u64, q: f64) -> (Option<u64>, Option<u64>) {
    let nf = n as f64;
    let half = 1.96 * (nf * q * (1.0 - q)).sqrt();
    let lo = (nf * q - half).floor();
    let hi = (nf * q + half).ceil() + 1.0;
    let in_range = |r: f64| (r >= 1.0 && r <= nf).then_some(r as u64);
    (in_range(lo), in_range(hi))
}

fn us_to_ms(us: u64) -> f64 {
    round3(us as f64 / 1e3)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| round6(num as f64 / den as f64))
}

impl Report {
    /// Builds the report from a run's tally.
    pub fn new(info: &RunInfo, tally: &Tally) -> Report {
        let slots = tally.slots;
        let on_time = tally.count(SlotKind::OnTime);
        let aborted = tally.aborted();
        let on_time_rate = ratio(on_time, slots).unwrap_or(0.0);
        Report {
            scenario: info.scenario.clone(),
            seed: info.seed,
            slots,
            outcomes: Outcomes {
                on_time,
                late: tally.count(SlotKind::Late),
                aborted_before_start: tally.count(SlotKind::Aborted(CheckpointKey::BeforeStart)),
                aborted_before_video: tally.count(SlotKind::Aborted(CheckpointKey::BeforeVideo)),
                aborted_before_clip: tally.count(SlotKind::Aborted(CheckpointKey::BeforeClip)),
                timed_out: PerStage::from_fn(|s| tally.count(SlotKind::TimedOut(s))),
                deadline_capped: PerStage::from_fn(|s| tally.count(SlotKind::DeadlineCapped(s))),
                failed: PerStage::from_fn(|s| tally.count(SlotKind::Failed(s))),
                clip_rejected: tally.clip_rejected,
            },
            rates: Rates {
                on_time: on_time_rate,
                deadline_miss: round6(1.0 - on_time_rate),
                abort: ratio(aborted, slots).unwrap_or(0.0),
                false_abort: ratio(tally.aborted_would_have_met, slots).unwrap_or(0.0),
                abort_precision: ratio(aborted - tally.aborted_would_have_met, aborted),
                retry_recovery: ratio(tally.retries_recovered, tally.retries_attempted),
            },
            retries: RetryTally { attempted: tally.retries_attempted, recovered: tally.retries_recovered },
            latency_ms: LatencyMs { total: Summary::of(&tally.total), stages: tally.stages.as_ref().map(Summary::of) },
            wasted_gpu_s: round3(tally.wasted_us as f64 / 1e6),
            examples: tally.examples.iter().map(|(k, v)| (k.name(), v.clone())).collect(),
            cadence: info
                .cadence
                .then(|| CadenceReport { queue_delay_ms: Summary::of(&tally.queue), delayed_slots: tally.delayed }),
        }
    }

    /// The report as pretty JSON (byte-identical for the same scenario and seed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes") + "\n"
    }

    /// The report as a table for a terminal.
    pub fn to_table(&self, info: &RunInfo) -> String {
        let o = &self.outcomes;
        let r = &self.rates;
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        let opt_pct = |x: Option<f64>| x.map_or("-".into(), pct);
        let mut t = String::new();
        let _ = writeln!(
            t,
            "scenario {}  seed {}  slots {}  deadline {} s  buffer {} s",
            self.scenario, self.seed, self.slots, info.deadline_s, info.buffer_s
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "outcome                     slots      share");
        let mut row = |name: &str, n: u64| {
            let _ = writeln!(t, "  {name:<24} {n:>7}  {:>9}", pct(n as f64 / self.slots.max(1) as f64));
        };
        row("on time", o.on_time);
        row("late", o.late);
        row("aborted before start", o.aborted_before_start);
        row("aborted before video", o.aborted_before_video);
        row("aborted before clip", o.aborted_before_clip);
        for s in Stage::ALL {
            row(&format!("timed out: {s}"), *o.timed_out.get(s));
        }
        for s in Stage::ALL {
            row(&format!("deadline capped: {s}"), *o.deadline_capped.get(s));
        }
        for s in Stage::ALL {
            row(&format!("failed: {s}"), *o.failed.get(s));
        }
        row("clip rejected (completed)", o.clip_rejected);
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "rates  on time {}  deadline miss {}  abort {}  false abort {}  abort precision {}",
            pct(r.on_time),
            pct(r.deadline_miss),
            pct(r.abort),
            pct(r.false_abort),
            opt_pct(r.abort_precision)
        );
        let _ = writeln!(
            t,
            "retries  attempted {}  recovered {}  recovery {}   wasted GPU {:.1} s",
            self.retries.attempted,
            self.retries.recovered,
            opt_pct(r.retry_recovery),
            self.wasted_gpu_s
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "latency ms      count       p50       p90       p99     p99.9       max      mean   p99 95% CI"
        );
        let l = &self.latency_ms;
        let stages = Stage::ALL.map(|s| (s.name(), l.stages.get(s)));
        for (name, s) in std::iter::once(("total", &l.total)).chain(stages) {
            let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                t,
                "  {name:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   [{}, {}]",
                s.count,
                f(s.p50),
                f(s.p90),
                f(s.p99),
                f(s.p999),
                f(s.max),
                f(s.mean),
                f(s.p99_ci95[0]),
                f(s.p99_ci95[1])
            );
        }
        if let Some(c) = &self.cadence {
            let q = &c.queue_delay_ms;
            let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                t,
                "\nqueueing (cadence)  delayed slots {}  delay ms p50 {}  p90 {}  p99 {}  max {}",
                c.delayed_slots,
                f(q.p50),
                f(q.p90),
                f(q.p99),
                f(q.max)
            );
        }
        if !self.examples.is_empty() {
            let _ = writeln!(t);
            let _ = writeln!(t, "example slots (vortex-sim replay SCENARIO --slot K):");
            for (kind, slots) in &self.examples {
                let list: Vec<String> = slots.iter().map(u64::to_string).collect();
                let _ = writeln!(t, "  {kind:<24} {}", list.join(" "));
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistic_interval_brackets_the_quantile() {
        // n = 10_000, q = 0.99: mean rank 9900, sd sqrt(99) ≈ 9.95, so about ±19.5 ranks.
        assert_eq!(order_statistic_ci(10_000, 0.99), (Some(9880), Some(9921)));
        // Too few values to bound P99 from above.
        assert_eq!(order_statistic_ci(100, 0.99).1, None);
    }
}
