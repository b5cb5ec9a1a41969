//! The simulator's front door: [`Simulator`] runs a scenario (whole or one shard of it) and replays
//! single slots; [`merge`] joins shard files into the report of the unsharded run, byte for byte.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::report::{Report, RunInfo};
use crate::scenario::Scenario;
use crate::tally::Tally;

/// The most shards a run or sweep may be cut into.
pub const MAX_SHARDS: u32 = 10_000;

/// The format tag of shard files: a merge refuses any other.
pub const SHARD_FORMAT: &str = "vortex-sim shard v1";

/// `--shard K/N`: this process does part K (counting from 0) of N. A run's slots are cut into
/// chunks of 1,024 that each run alone, and shard K takes the chunks whose index is K modulo N; a
/// sweep's shard K takes the grid points whose index is K modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "a shard K/N")]
pub struct Shard {
    /// K, from 0 to N − 1.
    pub index: u32,
    /// N, from 1 to [`MAX_SHARDS`].
    pub count: u32,
}

impl Shard {
    /// The whole run: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// True for the whole run.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// True when job `job` (a chunk or a grid point) belongs to this shard.
    pub fn owns(self, job: u64) -> bool {
        job % u64::from(self.count) == u64::from(self.index)
    }

    /// Slots this shard runs out of `slots`, cut into chunks of `chunk` slots.
    pub fn slots_of(self, slots: u64, chunk: u64) -> u64 {
        (0..slots.div_ceil(chunk)).filter(|&c| self.owns(c)).map(|c| chunk.min(slots - c * chunk)).sum()
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "expected K/N with N from 1 to {MAX_SHARDS} and K from 0 to N-1 (a Kubernetes \
                 JOB_COMPLETION_INDEX or a Slurm SLURM_ARRAY_TASK_ID counted from 0), got {}",
                vortex::yaml::quoted(s)
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let (index, count) =
            (k.trim().parse::<u32>().map_err(|_| usage())?, n.trim().parse::<u32>().map_err(|_| usage())?);
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Runs one scenario in virtual time.
///
/// ```
/// # #[cfg(madsim)] {
/// use vortex_sim::{Scenario, Simulator};
/// let text = "name: doc\nslots: 100\nstages:\n  audio: { latency: { constant: 2 } }\n  image: { latency: { constant: 12 } }\n  video: { latency: { constant: 8 } }\n  clip: { latency: { constant: 1 } }\n";
/// let scenario = Scenario::from_yaml_str("doc.yaml", text, std::path::Path::new("."), &[]).unwrap();
/// let report = Simulator::new(scenario).run().report();
/// assert_eq!(report.outcomes.on_time, 100);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Simulator {
    scenario: Arc<Scenario>,
    workers: usize,
    progress: bool,
}

/// The tally of a run, or of one shard of it, with what its report needs.
#[derive(Debug, Clone)]
pub struct Run {
    info: RunInfo,
    shard: Shard,
    tally: Tally,
}

impl Simulator {
    /// A simulator for `scenario`, on every core, without a progress bar.
    pub fn new(scenario: impl Into<Arc<Scenario>>) -> Simulator {
        Simulator { scenario: scenario.into(), workers: 0, progress: false }
    }

    /// Worker threads (0: one per core). Reports do not depend on it.
    pub fn workers(mut self, workers: usize) -> Simulator {
        self.workers = workers;
        self
    }

    /// Shows a progress bar on standard error when it is a terminal.
    pub fn progress(mut self, progress: bool) -> Simulator {
        self.progress = progress;
        self
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs every slot.
    #[cfg(madsim)]
    pub fn run(&self) -> Run {
        self.run_shard(Shard::WHOLE).expect("the whole run needs no sharding")
    }

    /// Runs one shard of the slots. Back-to-back slots (a `cadence`) and the adaptive predictor
    /// make each slot depend on the ones before it, so those runs refuse to shard: shard a sweep
    /// over them instead, which cuts along grid points.
    #[cfg(madsim)]
    pub fn run_shard(&self, shard: Shard) -> Result<Run, String> {
        let s = &self.scenario;
        if !shard.is_whole() && s.sequential() {
            return Err(format!(
                "scenario {} cannot be sharded: its slots run back to back (a cadence, or the adaptive \
                 predictor), so each depends on the ones before it. Run it whole, or shard a sweep over it \
                 (sweeps shard by grid point)",
                s.name
            ));
        }
        let slots = shard.slots_of(s.slots, crate::runner::CHUNK_SLOTS);
        let bar = crate::pool::progress_bar(self.progress, slots, "");
        let tally = crate::runner::run_chunks(s, shard, self.workers, &|n| bar.inc(n));
        bar.finish_and_clear();
        Ok(Run { info: RunInfo::of(s), shard, tally })
    }

    /// Re-runs slot `slot` alone and captures its event timeline (its outcome is the one it has
    /// in the full run). Back-to-back scenarios re-run the slots before it first, since its GPU
    /// backlog and predictor depend on them; that takes about `slot` slots of work (milliseconds
    /// per thousand).
    #[cfg(madsim)]
    pub fn replay(&self, slot: u64) -> Result<crate::runner::Replay, String> {
        let s = &self.scenario;
        if slot >= s.slots {
            return Err(format!("--slot {slot} is out of range: scenario {} has slots 0..{}", s.name, s.slots));
        }
        // Back to back, slot K depends on every slot before it, so they all run first (at the
        // simulator's full speed, but K may be large): the bar says how long that takes.
        let before = if s.sequential() { slot } else { 0 };
        let bar = crate::pool::progress_bar(self.progress && before > 0, before, "the slots before it");
        let replay = crate::runner::replay(s, slot, |n| bar.inc(n));
        bar.finish_and_clear();
        Ok(replay)
    }

    /// Runs the scenario over a grid of `--vary` axes (each point the scenario file reloaded with
    /// its values as overrides, all checked before any runs), or the points of one shard of it.
    /// Needs a scenario loaded from a file.
    #[cfg(madsim)]
    pub fn sweep(&self, axes: &[crate::sweep::Vary], shard: Shard) -> Result<crate::sweep::SweepRun, String> {
        let Some((path, overrides)) = &self.scenario.source else {
            return Err(format!("scenario {} was not loaded from a file, so it cannot be swept", self.scenario.name));
        };
        let points = crate::sweep::scenarios(path, overrides, axes).map_err(|e| e.to_string())?;
        Ok(crate::sweep::run(points, shard, self.workers, self.progress))
    }

    /// A replay as text: the event timeline, the attempt log and the outcome.
    #[cfg(madsim)]
    pub fn render_replay(&self, slot: u64, replay: &crate::runner::Replay) -> String {
        crate::runner::render_replay(&self.scenario, slot, replay)
    }
}

impl Run {
    /// What the report says about the run.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// Which part of the run this is.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The report (of this shard's slots only, for a shard).
    pub fn report(&self) -> Report {
        Report::new(&self.info, &self.tally)
    }

    /// The longest slot of any outcome, from its start to its end.
    pub fn longest_slot(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.tally.longest_us)
    }

    /// The total latency plot as SVG.
    pub fn latency_svg(&self) -> Result<String, String> {
        crate::plot::latency_svg(&self.info, &self.tally)
    }

    /// The shard file `merge` reads (JSON).
    pub fn to_shard_json(&self) -> String {
        let file = ShardFile::Run {
            format: SHARD_FORMAT.into(),
            shard: self.shard,
            info: self.info.clone(),
            tally: Box::new(self.tally.clone()),
        };
        serde_json::to_string(&file).expect("a shard always serializes") + "\n"
    }

    pub(crate) fn from_parts(info: RunInfo, shard: Shard, tally: Tally) -> Run {
        Run { info, shard, tally }
    }
}

/// A shard file: a run's tally, or a sweep's points' tallies.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[serde(expecting = "a shard file written by `vortex-sim run|sweep --shard K/N --json`")]
pub(crate) enum ShardFile {
    /// `run --shard`.
    Run { format: String, shard: Shard, info: RunInfo, tally: Box<Tally> },
    /// `sweep --shard`.
    Sweep {
        format: String,
        shard: Shard,
        /// The objective, as given.
        objective: String,
        /// The `--set` overrides, as given (`KEY=VALUE`).
        set: Vec<String>,
        /// Grid points in the whole sweep.
        grid_points: u64,
        /// This shard's points.
        points: Vec<crate::sweep::ShardPoint>,
    },
}

/// What a merge of shard files gives.
#[derive(Debug)]
pub enum Merged {
    /// The whole run.
    Run(Run),
    /// The whole sweep, with the objective and `--set` overrides it ran under.
    Sweep(crate::sweep::MergedSweep),
}

/// The largest shard file a merge reads.
pub const MAX_SHARD_FILE_BYTES: u64 = 256 << 20;

/// Joins the shard files of one run or one sweep (given as `(path, text)`) into the result of the
/// unsharded run: its report and JSON are byte-identical. Refuses shards of different runs,
/// missing or repeated shards, and files that are not shards.
pub fn merge(files: &[(String, String)]) -> Result<Merged, String> {
    let parsed: Vec<(String, ShardFile)> = files
        .iter()
        .map(|(path, text)| {
            let file: ShardFile =
                serde_json::from_str(text).map_err(|e| format!("{path}: not a vortex-sim shard file: {e}"))?;
            let format = match &file {
                ShardFile::Run { format, .. } | ShardFile::Sweep { format, .. } => format,
            };
            if format != SHARD_FORMAT {
                return Err(format!("{path}: shard format {format:?}; this vortex-sim reads {SHARD_FORMAT:?}"));
            }
            Ok((path.clone(), file))
        })
        .collect::<Result<_, String>>()?;
    let Some((first_path, first)) = parsed.first() else { return Err("no shard files given".into()) };
    let count = match first {
        ShardFile::Run { shard, .. } | ShardFile::Sweep { shard, .. } => shard.count,
    };
    let mut seen = vec![None::<&str>; count as usize];
    for (path, file) in &parsed {
        let shard = match file {
            ShardFile::Run { shard, .. } | ShardFile::Sweep { shard, .. } => *shard,
        };
        if shard.count != count {
            return Err(format!(
                "{path}: shard {shard} belongs to a run cut into {} parts, {first_path} to one cut into {count}",
                shard.count
            ));
        }
        if let Some(other) = seen[shard.index as usize].replace(path) {
            return Err(format!("{path}: shard {shard} was given twice (also {other})"));
        }
    }
    let missing: Vec<String> =
        seen.iter().enumerate().filter(|(_, p)| p.is_none()).map(|(k, _)| format!("{k}/{count}")).collect();
    if !missing.is_empty() {
        return Err(format!("missing shard(s) {}: a merge needs all {count}", missing.join(", ")));
    }
    match first {
        ShardFile::Run { info, .. } => {
            let mut tally = Tally::default();
            for (path, file) in &parsed {
                let ShardFile::Run { info: other, tally: part, .. } = file else {
                    return Err(format!("{path}: a sweep shard, but {first_path} is a run shard"));
                };
                if other != info {
                    return Err(format!(
                        "{path}: a shard of another run than {first_path} (scenario, seed, slots or settings differ)"
                    ));
                }
                tally.merge(part);
            }
            if tally.slots != info.slots {
                return Err(format!("the shards hold {} slots, the run has {}", tally.slots, info.slots));
            }
            Ok(Merged::Run(Run::from_parts(info.clone(), Shard::WHOLE, tally)))
        }
        ShardFile::Sweep { .. } => crate::sweep::merge_shards(parsed).map(Merged::Sweep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_chunks_evenly() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        assert!("3/3".parse::<Shard>().unwrap_err().contains("K from 0 to N-1"));
        assert!("0/0".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
        // 2,500 slots in chunks of 1,024: chunks 0 (1,024), 1 (1,024), 2 (452).
        let parts: Vec<u64> = (0..3).map(|k| Shard { index: k, count: 3 }.slots_of(2_500, 1_024)).collect();
        assert_eq!(parts, [1_024, 1_024, 452]);
        assert_eq!(Shard { index: 0, count: 2 }.slots_of(2_500, 1_024), 1_476);
    }
}
