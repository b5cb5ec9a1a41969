//! Counting slot results as they come, in integer microseconds so that merging tallies in any
//! grouping gives identical totals.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vortex::{AttemptResult, Checkpoint, FailureKind, Outcome, PerStage, SlotResult, Stage};

/// Example slot indices kept per outcome kind.
pub const EXAMPLES_PER_KIND: usize = 5;

/// Highest latency the histograms hold: one hour, far past any deadline.
const HIST_MAX_US: u64 = 3_600_000_000;

/// A latency histogram (hdrhistogram, 3 significant digits) with the exact sum, min and max.
///
/// Serialized (in shard files) as its recorded buckets, `[value_us, count]` pairs: recording them
/// again rebuilds the very same histogram, so a merge of shards equals the unsharded run.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// The histogram, in microseconds.
    pub hist: Histogram<u64>,
    /// Exact sum, for the mean. At most `MAX_SLOTS` (1e8) values of at most `HIST_MAX_US`
    /// (3.6e9) each: 3.6e17, well inside a u64 (1.8e19).
    pub sum_us: u64,
    /// Exact smallest value.
    pub min_us: u64,
    /// Exact largest value.
    pub max_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            hist: Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds"),
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "the latency histograms of a shard file")]
struct LatenciesFile {
    buckets: Vec<[u64; 2]>,
    sum_us: u64,
    min_us: u64,
    max_us: u64,
}

impl Serialize for Latencies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buckets = self.hist.iter_recorded().map(|v| [v.value_iterated_to(), v.count_at_value()]).collect();
        LatenciesFile { buckets, sum_us: self.sum_us, min_us: self.min_us, max_us: self.max_us }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Latencies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = LatenciesFile::deserialize(d)?;
        let mut l = Latencies { sum_us: file.sum_us, min_us: file.min_us, max_us: file.max_us, ..Default::default() };
        for [value, count] in file.buckets {
            if value > HIST_MAX_US {
                return Err(serde::de::Error::custom(format!("latency {value} µs is above the histogram's range")));
            }
            l.hist.record_n(value, count).map_err(|e| serde::de::Error::custom(format!("bucket {value}: {e}")))?;
        }
        Ok(l)
    }
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = micros(d).min(HIST_MAX_US);
        self.hist.record(us).expect("value within the histogram's bounds");
        self.sum_us += us;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds another tally's values.
    pub fn merge(&mut self, other: &Latencies) {
        self.hist.add(&other.hist).expect("histograms of equal bounds");
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }
}

/// Microseconds, rounded to nearest (the simulator's scheduling jitter is nanoseconds).
pub fn micros(d: Duration) -> u64 {
    ((d.as_nanos() + 500) / 1000) as u64
}

/// How a slot ended, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// Completed by the deadline.
    OnTime,
    /// Completed after the deadline.
    Late,
    /// Aborted at a checkpoint.
    Aborted(CheckpointKey),
    /// A stage's last attempt ran into the stage's own timeout.
    TimedOut(Stage),
    /// A stage's last attempt ran into the slot's deadline, before the stage's timeout.
    DeadlineCapped(Stage),
    /// A stage's last attempt failed with an error.
    Failed(Stage),
}

/// What the report keeps example slot indices of: each slot kind, and rejected self-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKey {
    /// Slots of one kind.
    Slot(SlotKind),
    /// Completed slots whose self-check failed.
    ClipRejected,
}

impl ExampleKey {
    /// The report's name for it.
    pub fn name(self) -> String {
        match self {
            ExampleKey::Slot(kind) => kind.name(),
            ExampleKey::ClipRejected => "clip_rejected".into(),
        }
    }
}

/// `Checkpoint`, ordered for use as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // the checkpoints' own names
pub enum CheckpointKey {
    /// Before audio and image.
    BeforeStart,
    /// Before video.
    BeforeVideo,
    /// Before clip.
    BeforeClip,
}

impl From<Checkpoint> for CheckpointKey {
    fn from(c: Checkpoint) -> Self {
        match c {
            Checkpoint::BeforeStart => CheckpointKey::BeforeStart,
            Checkpoint::BeforeVideo => CheckpointKey::BeforeVideo,
            Checkpoint::BeforeClip => CheckpointKey::BeforeClip,
        }
    }
}

impl SlotKind {
    /// Classifies a slot result.
    pub fn of<O>(result: &SlotResult<O>) -> SlotKind {
        match &result.outcome {
            Outcome::Completed(c) if c.deadline_met => SlotKind::OnTime,
            Outcome::Completed(_) => SlotKind::Late,
            Outcome::Aborted(a) => SlotKind::Aborted(a.checkpoint.into()),
            Outcome::Failed(f) => match f.reason.kind() {
                FailureKind::TimedOut => SlotKind::TimedOut(f.stage),
                FailureKind::DeadlineCapped => SlotKind::DeadlineCapped(f.stage),
                _ => SlotKind::Failed(f.stage),
            },
        }
    }

    /// The report's name for this kind (`on_time`, `aborted_before_video`, `timed_out_image`...).
    pub fn name(self) -> String {
        match self {
            SlotKind::OnTime => "on_time".into(),
            SlotKind::Late => "late".into(),
            SlotKind::Aborted(CheckpointKey::BeforeStart) => "aborted_before_start".into(),
            SlotKind::Aborted(CheckpointKey::BeforeVideo) => "aborted_before_video".into(),
            SlotKind::Aborted(CheckpointKey::BeforeClip) => "aborted_before_clip".into(),
            SlotKind::TimedOut(s) => format!("timed_out_{s}"),
            SlotKind::DeadlineCapped(s) => format!("deadline_capped_{s}"),
            SlotKind::Failed(s) => format!("failed_{s}"),
        }
    }
}

/// Everything a report needs, accumulated slot by slot. Serialized in shard files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "the tally of a shard file")]
pub struct Tally {
    /// Slots counted.
    pub slots: u64,
    /// Slots per outcome kind.
    #[serde(with = "pairs")]
    pub kinds: BTreeMap<SlotKind, u64>,
    /// Completed slots whose CLIP self-check failed.
    pub clip_rejected: u64,
    /// Aborted slots that would have completed by the deadline had they continued.
    pub aborted_would_have_met: u64,
    /// Retry attempts started.
    pub retries_attempted: u64,
    /// Retry attempts that succeeded.
    pub retries_recovered: u64,
    /// Total latency of completed slots.
    pub total: Latencies,
    /// Latency of finished attempts (success or error), per stage.
    pub stages: PerStage<Latencies>,
    /// Attempt time (every attempt, cancelled ones included) on slots that did not finish on time.
    pub wasted_us: u64,
    /// The first few slot indices of each kind (and `clip_rejected`).
    #[serde(with = "pairs")]
    pub examples: BTreeMap<ExampleKey, Vec<u64>>,
    /// With a cadence: how long each slot waited for the GPU after its scheduled start.
    pub queue: Latencies,
    /// With a cadence: slots that waited at all.
    pub delayed: u64,
    /// The longest slot of any outcome, from its start to its end (the reliability property: no
    /// slot outlives its deadline by more than one cancellation step).
    #[serde(default)]
    pub longest_us: u64,
}

impl Tally {
    /// Counts one slot; `would_have_met` is the counterfactual of an aborted slot, and
    /// `cancelled_tails` the GPU time its cancelled attempts ran on after cancellation.
    pub fn record<O>(
        &mut self,
        index: u64,
        result: &SlotResult<O>,
        would_have_met: Option<bool>,
        cancelled_tails: Duration,
    ) {
        let kind = SlotKind::of(result);
        self.slots += 1;
        self.longest_us = self.longest_us.max(micros(result.meta.end));
        *self.kinds.entry(kind).or_default() += 1;
        self.example(ExampleKey::Slot(kind), index);
        if let Some(c) = result.completed() {
            self.total.record(result.meta.end);
            if !c.clip_passed {
                self.clip_rejected += 1;
                self.example(ExampleKey::ClipRejected, index);
            }
        }
        if would_have_met == Some(true) {
            self.aborted_would_have_met += 1;
        }
        for a in &result.log {
            if a.attempt > 0 {
                self.retries_attempted += 1;
                self.retries_recovered += u64::from(a.result == AttemptResult::Ok);
            }
            // Finished attempts only: a timed-out or cancelled attempt's latency is unknown.
            if matches!(a.result, AttemptResult::Ok) || matches!(a.result, AttemptResult::Failed(k) if !k.is_timeout())
            {
                self.stages.get_mut(a.stage).record(a.duration);
            }
            if kind != SlotKind::OnTime {
                self.wasted_us = self.wasted_us.saturating_add(micros(a.duration));
            }
        }
        if kind != SlotKind::OnTime {
            self.wasted_us = self.wasted_us.saturating_add(micros(cancelled_tails));
        }
    }

    /// Counts one slot's wait for the GPU (with a cadence).
    pub fn record_queue(&mut self, delay: Duration) {
        self.queue.record(delay);
        self.delayed += u64::from(!delay.is_zero());
    }

    /// Keeps the smallest indices seen, whatever order slots arrive in.
    fn example(&mut self, key: ExampleKey, index: u64) {
        let list = self.examples.entry(key).or_default();
        if list.len() == EXAMPLES_PER_KIND && list.last().is_some_and(|&last| index > last) {
            return;
        }
        let at = list.partition_point(|&i| i < index);
        list.insert(at, index);
        list.truncate(EXAMPLES_PER_KIND);
    }

    /// Adds another tally; the result does not depend on the order of merging.
    pub fn merge(&mut self, other: &Tally) {
        self.slots += other.slots;
        for (k, n) in &other.kinds {
            *self.kinds.entry(*k).or_default() += n;
        }
        self.clip_rejected += other.clip_rejected;
        self.aborted_would_have_met += other.aborted_would_have_met;
        self.retries_attempted += other.retries_attempted;
        self.retries_recovered += other.retries_recovered;
        self.total.merge(&other.total);
        for s in Stage::ALL {
            self.stages.get_mut(s).merge(other.stages.get(s));
        }
        self.wasted_us = self.wasted_us.saturating_add(other.wasted_us);
        self.queue.merge(&other.queue);
        self.delayed += other.delayed;
        self.longest_us = self.longest_us.max(other.longest_us);
        for (&key, list) in &other.examples {
            for &index in list {
                self.example(key, index);
            }
        }
    }

    /// Slots of one kind.
    pub fn count(&self, kind: SlotKind) -> u64 {
        self.kinds.get(&kind).copied().unwrap_or(0)
    }

    /// Aborted slots at any checkpoint.
    pub fn aborted(&self) -> u64 {
        self.kinds.iter().filter(|(k, _)| matches!(k, SlotKind::Aborted(_))).map(|(_, n)| n).sum()
    }
}

vortex::plain_stage_keys!(Latencies);

/// A map whose keys are not strings, as a list of `[key, value]` pairs (JSON keys are strings).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let pairs = Vec::<(K, V)>::deserialize(d)?;
        let n = pairs.len();
        let map: BTreeMap<K, V> = pairs.into_iter().collect();
        if map.len() != n {
            return Err(serde::de::Error::custom("a key appears twice"));
        }
        Ok(map)
    }
}
