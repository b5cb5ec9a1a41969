//! Sweeps: run a scenario over a grid of parameter values and recommend the best point under an
//! objective.
//!
//! - [`objective`]: the `--vary` and `--objective` grammars.
//! - [`grid`]: the points, each a scenario with its values applied, checked up front.
//! - [`render`]: the table, the config snippet, the JSON.
//! - here: running the points on the simulator's worker pool (a shard of them with `--shard`),
//!   the best point, the Pareto front, and merging shards.
//!
//! Every point runs the same slots with the same seed, so its slots see the same drawn latencies
//! (common random numbers): differences between points come from the parameters, not from noise.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::report::{CadenceReport, LatencyMs, Rates, Report, RunInfo};
use crate::scenario::Override;
use crate::simulator::{Shard, ShardFile, SHARD_FORMAT};
use crate::tally::Tally;

pub mod grid;
pub mod objective;
pub mod render;

pub use grid::{check_axes, grid, scenarios, Params};
pub use objective::{Constraint, Metric, Objective, Op, Vary};

/// The most points one sweep may run: bounds a typo'd step.
pub const MAX_POINTS: usize = 10_000;

/// The most slots one sweep may simulate over all its points: about an hour on one core, minutes
/// on a large machine or spread over shards. A larger sweep is refused before it starts.
pub const MAX_SWEEP_SLOTS: u64 = 1_000_000_000;

/// One grid point's results; `rates` and `latency_ms` are those of `vortex-sim run --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The varied keys and their values here, in `--vary` order.
    #[serde(serialize_with = "ordered_map")]
    pub params: Params,
    /// Slots simulated.
    pub slots: u64,
    /// Rates, as in the run report.
    pub rates: Rates,
    /// Latency summaries, as in the run report.
    pub latency_ms: LatencyMs,
    /// Stage time spent on slots that did not finish on time.
    pub wasted_gpu_s: f64,
    /// Queueing, for scenarios with a cadence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cadence: Option<CadenceReport>,
}

fn ordered_map<S: Serializer>(params: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(params.len()))?;
    for (k, v) in params {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The sweep's result (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// Every point, in grid order (the first `--vary` varies slowest).
    pub points: Vec<Point>,
    /// The recommended point, or null when no point meets the constraints.
    pub best: Option<Point>,
}

impl Point {
    /// A point from its parameters and its run's report.
    pub fn new(params: Params, r: Report) -> Point {
        Point {
            params,
            slots: r.slots,
            rates: r.rates,
            latency_ms: r.latency_ms,
            wasted_gpu_s: r.wasted_gpu_s,
            cadence: r.cadence,
        }
    }
}

/// The point that optimises the objective among those meeting every constraint; ties go to less
/// wasted GPU time, then to the earlier point.
pub fn best<'a>(points: &'a [Point], objective: &Objective) -> Option<&'a Point> {
    let score = |p: &Point| {
        let v = objective.metric.of(p).unwrap_or(f64::NAN);
        if objective.maximise {
            v
        } else {
            -v
        }
    };
    points.iter().filter(|p| objective.constraints.iter().all(|c| c.holds(p)) && !score(p).is_nan()).fold(
        None,
        |acc: Option<&Point>, p| match acc {
            Some(a) if (score(a), -a.wasted_gpu_s) >= (score(p), -p.wasted_gpu_s) => Some(a),
            _ => Some(p),
        },
    )
}

/// The points not dominated in (deadline miss, x), both minimised, sorted by x.
pub fn pareto_front(points: &[Point], x: impl Fn(&Point) -> f64) -> Vec<usize> {
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| {
            let (xi, yi) = (x(&points[i]), points[i].rates.deadline_miss);
            !points.iter().any(|q| {
                let (xq, yq) = (x(q), q.rates.deadline_miss);
                xq <= xi && yq <= yi && (xq < xi || yq < yi)
            })
        })
        .collect();
    front.sort_by(|&a, &b| x(&points[a]).total_cmp(&x(&points[b])));
    front
}

/// One point of a sweep shard: its index in the grid, its values, and its run's tally.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a sweep point of a shard file")]
pub struct ShardPoint {
    /// Index in the grid (grid order, the first `--vary` slowest).
    pub index: u64,
    /// The varied keys and their values.
    pub params: Params,
    /// What the point's report needs.
    pub info: RunInfo,
    /// The point's tally.
    pub tally: Tally,
}

impl ShardPoint {
    fn point(&self) -> Point {
        Point::new(self.params.clone(), Report::new(&self.info, &self.tally))
    }
}

/// The points of a sweep that one process ran: all of them, or one shard's.
#[derive(Debug)]
pub struct SweepRun {
    shard: Shard,
    grid_points: u64,
    points: Vec<ShardPoint>,
}

/// Runs the grid points of `shard` (every point for the whole sweep) on the worker pool: points in
/// parallel, each point's slots in order on one worker, so results do not depend on the number of
/// workers. `progress` shows one bar over every slot of the shard's points.
#[cfg(madsim)]
pub fn run(
    points: Vec<(Params, std::sync::Arc<crate::scenario::Scenario>)>,
    shard: Shard,
    workers: usize,
    progress: bool,
) -> SweepRun {
    let grid_points = points.len() as u64;
    let mine: Vec<(u64, Params, std::sync::Arc<crate::scenario::Scenario>)> =
        points.into_iter().enumerate().map(|(i, (p, s))| (i as u64, p, s)).filter(|(i, _, _)| shard.owns(*i)).collect();
    let total: u64 = mine.iter().map(|(_, _, s)| s.slots).sum();
    let bar = crate::pool::progress_bar(progress, total, &format!("{} points", mine.len()));
    let done = |n| bar.inc(n);
    let ran = crate::pool::for_each_job(mine.len() as u64, workers, Vec::new, |out: &mut Vec<ShardPoint>, i| {
        let (index, params, scenario) = &mine[i as usize];
        let tally = crate::runner::run_chunks(scenario, Shard::WHOLE, 1, &done);
        out.push(ShardPoint { index: *index, params: params.clone(), info: RunInfo::of(scenario), tally });
    });
    bar.finish_and_clear();
    let mut points: Vec<ShardPoint> = ran.into_iter().flatten().collect();
    points.sort_by_key(|p| p.index);
    SweepRun { shard, grid_points, points }
}

impl SweepRun {
    /// Which part of the sweep this is.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Slots simulated.
    pub fn slots(&self) -> u64 {
        self.points.iter().map(|p| p.tally.slots).sum()
    }

    /// The report over the points run (the whole sweep's report when unsharded).
    pub fn report(&self, objective: &Objective) -> SweepReport {
        report_of(&self.points, objective)
    }

    /// The shard file `merge` reads (JSON).
    pub fn to_shard_json(&self, objective: &Objective, set: &[Override]) -> String {
        let file = ShardFile::Sweep {
            format: SHARD_FORMAT.into(),
            shard: self.shard,
            objective: objective.to_string(),
            set: set.iter().map(Override::to_string).collect(),
            grid_points: self.grid_points,
            points: self.points.clone(),
        };
        serde_json::to_string(&file).expect("a shard always serializes") + "\n"
    }
}

fn report_of(points: &[ShardPoint], objective: &Objective) -> SweepReport {
    let points: Vec<Point> = points.iter().map(ShardPoint::point).collect();
    let best = best(&points, objective).cloned();
    SweepReport { points, best }
}

/// A whole sweep put back together from its shards.
#[derive(Debug)]
pub struct MergedSweep {
    /// The report, as the unsharded sweep gives it.
    pub report: SweepReport,
    /// The objective the shards ran under.
    pub objective: Objective,
    /// The `--set` overrides the shards ran under.
    pub set: Vec<Override>,
}

/// Merges sweep shard files (already checked to be one complete set of shard indices).
pub(crate) fn merge_shards(files: Vec<(String, ShardFile)>) -> Result<MergedSweep, String> {
    let mut head: Option<(String, Vec<String>, u64)> = None;
    let mut points = Vec::new();
    for (path, file) in files {
        let ShardFile::Sweep { objective, set, grid_points, points: mine, .. } = file else {
            return Err(format!("{path}: a run shard among sweep shards"));
        };
        match &head {
            None => head = Some((objective, set, grid_points)),
            Some(h) if *h != (objective.clone(), set.clone(), grid_points) => {
                return Err(format!("{path}: a shard of another sweep (objective, --set or grid differ)"));
            }
            Some(_) => {}
        }
        points.extend(mine);
    }
    let (objective, set, grid_points) = head.expect("at least one shard");
    points.sort_by_key(|p| p.index);
    let indices: Vec<u64> = points.iter().map(|p| p.index).collect();
    if indices != (0..grid_points).collect::<Vec<_>>() {
        return Err(format!("the shards hold grid points {indices:?}, not each of 0..{grid_points} once"));
    }
    let objective: Objective = objective.parse().map_err(|e| format!("the shards' objective: {e}"))?;
    let set: Vec<Override> = set.iter().map(|o| o.parse()).collect::<Result<_, _>>()?;
    Ok(MergedSweep { report: report_of(&points, &objective), objective, set })
}
