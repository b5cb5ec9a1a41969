//! Sweeps: run a scenario over a grid of parameter values and recommend the best point under an
//! objective.
//!
//! Every point runs the same slots with the same seed, so its slots see the same drawn latencies
//! (common random numbers): differences between points come from the parameters, not from noise.
//!
//! The objective grammar (`--objective`):
//!
//! ```text
//! objective  := direction ":" metric [ " subject_to:" constraint ( "," constraint )* ]
//! direction  := "max" | "min"
//! constraint := metric ( "<=" | ">=" | "<" | ">" ) number
//! metric     := on_time | deadline_miss | abort | false_abort | abort_precision | retry_recovery
//!             | p99_ms | wasted_gpu_s
//! ```
//!
//! e.g. `max:on_time subject_to:false_abort<=0.01`. Rates are fractions (0.01 is 1%); `p99_ms` is
//! the P99 of total slot latency. A metric that is undefined at a point (`abort_precision` with no
//! aborts, `p99_ms` with no completed slot) fails every constraint on it and ranks last.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_yaml_ng::Value;
use vortex::ConfigError;

use crate::report::{CadenceReport, LatencyMs, Rates, Report};
use crate::scenario::{Override, Scenario};

/// The most points one sweep may run: bounds a typo'd step.
pub const MAX_POINTS: usize = 10_000;

/// `--vary KEY=FROM..TO:STEP`: one axis of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    /// Dotted key, as for `--set`.
    pub key: String,
    /// The values, from FROM up to TO inclusive.
    pub values: Vec<f64>,
}

impl FromStr for Vary {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage =
            || format!("expected KEY=FROM..TO:STEP such as orchestration.deadline_buffer_s=0..10:0.5, got {s:?}");
        let (key, range) = s.split_once('=').ok_or_else(usage)?;
        let (span, step) = range.split_once(':').ok_or_else(usage)?;
        let (from, to) = span.split_once("..").ok_or_else(usage)?;
        let num = |t: &str| t.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(usage);
        let (from, to, step) = (num(from)?, num(to)?, num(step)?);
        if key.trim().is_empty() || step <= 0.0 || to < from {
            return Err(format!("{key}: need FROM <= TO and STEP > 0, got {from}..{to}:{step}"));
        }
        let n = ((to - from) / step + 1e-9).floor() as usize + 1;
        if n > MAX_POINTS {
            return Err(format!("{key}: {n} values; a sweep may have at most {MAX_POINTS} points"));
        }
        // Rounded so that 0.1-steps print as 0.3, not 0.30000000000000004.
        let values = (0..n).map(|i| ((from + i as f64 * step) * 1e9).round() / 1e9).collect();
        Ok(Vary { key: key.trim().to_string(), values })
    }
}

/// A metric the objective can read from a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `rates.on_time`.
    OnTime,
    /// `rates.deadline_miss`.
    DeadlineMiss,
    /// `rates.abort`.
    Abort,
    /// `rates.false_abort`.
    FalseAbort,
    /// `rates.abort_precision`.
    AbortPrecision,
    /// `rates.retry_recovery`.
    RetryRecovery,
    /// `latency_ms.total.p99`.
    P99Ms,
    /// `wasted_gpu_s`.
    WastedGpuS,
}

const METRICS: [(&str, Metric); 8] = [
    ("on_time", Metric::OnTime),
    ("deadline_miss", Metric::DeadlineMiss),
    ("abort", Metric::Abort),
    ("false_abort", Metric::FalseAbort),
    ("abort_precision", Metric::AbortPrecision),
    ("retry_recovery", Metric::RetryRecovery),
    ("p99_ms", Metric::P99Ms),
    ("wasted_gpu_s", Metric::WastedGpuS),
];

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        METRICS.iter().find(|(name, _)| *name == s).map(|(_, m)| *m).ok_or_else(|| {
            let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
            format!("unknown metric {s:?}; expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(METRICS.iter().find(|(_, m)| m == self).map(|(n, _)| *n).unwrap_or("?"))
    }
}

impl Metric {
    /// The metric's value at a point, if defined.
    pub fn of(self, p: &Point) -> Option<f64> {
        match self {
            Metric::OnTime => Some(p.rates.on_time),
            Metric::DeadlineMiss => Some(p.rates.deadline_miss),
            Metric::Abort => Some(p.rates.abort),
            Metric::FalseAbort => Some(p.rates.false_abort),
            Metric::AbortPrecision => p.rates.abort_precision,
            Metric::RetryRecovery => p.rates.retry_recovery,
            Metric::P99Ms => p.latency_ms.total.p99,
            Metric::WastedGpuS => Some(p.wasted_gpu_s),
        }
    }
}

/// A comparison in a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `>`
    Gt,
}

/// `metric op bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constraint {
    /// What is constrained.
    pub metric: Metric,
    /// How.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

impl Constraint {
    /// True when the point satisfies it (never for an undefined metric).
    pub fn holds(&self, p: &Point) -> bool {
        self.metric.of(p).is_some_and(|v| match self.op {
            Op::Le => v <= self.bound,
            Op::Ge => v >= self.bound,
            Op::Lt => v < self.bound,
            Op::Gt => v > self.bound,
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Gt => ">",
        };
        write!(f, "{}{op}{}", self.metric, self.bound)
    }
}

/// What to optimise, under which constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// True to maximise, false to minimise.
    pub maximise: bool,
    /// The metric optimised.
    pub metric: Metric,
    /// Constraints every candidate must meet.
    pub constraints: Vec<Constraint>,
}

impl FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut tokens = s.split_whitespace();
        let head = tokens.next().ok_or("an empty objective; expected e.g. max:on_time")?;
        let (direction, metric) =
            head.split_once(':').ok_or_else(|| format!("expected max:METRIC or min:METRIC, got {head:?}"))?;
        let maximise = match direction {
            "max" => true,
            "min" => false,
            other => return Err(format!("expected max or min, got {other:?}")),
        };
        let mut constraints = Vec::new();
        for token in tokens {
            let list = token
                .strip_prefix("subject_to:")
                .ok_or_else(|| format!("expected subject_to:CONSTRAINT, got {token:?}"))?;
            for c in list.split(',').filter(|c| !c.is_empty()) {
                constraints.push(parse_constraint(c)?);
            }
        }
        Ok(Objective { maximise, metric: metric.parse()?, constraints })
    }
}

fn parse_constraint(c: &str) -> Result<Constraint, String> {
    for (text, op) in [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)] {
        if let Some((metric, bound)) = c.split_once(text) {
            let bound = bound.parse::<f64>().ok().filter(|b| b.is_finite());
            let bound = bound.ok_or_else(|| format!("constraint {c:?}: the bound is not a number"))?;
            return Ok(Constraint { metric: metric.parse()?, op, bound });
        }
    }
    Err(format!("constraint {c:?}: expected METRIC<=NUMBER (or >=, <, >)"))
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", if self.maximise { "max" } else { "min" }, self.metric)?;
        if !self.constraints.is_empty() {
            let list: Vec<String> = self.constraints.iter().map(Constraint::to_string).collect();
            write!(f, " subject_to:{}", list.join(","))?;
        }
        Ok(())
    }
}

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

/// One grid point's parameter values, in `--vary` order.
pub type Params = Vec<(String, f64)>;

/// The grid: every combination of the axes' values.
pub fn grid(axes: &[Vary]) -> Vec<Params> {
    let mut points = vec![Vec::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| axis.values.iter().map(move |&v| [p.clone(), vec![(axis.key.clone(), v)]].concat()))
            .collect();
    }
    points
}

/// Loads the scenario for every grid point up front, so a bad key or value fails before any run.
pub fn scenarios(
    path: &std::path::Path,
    base: &[Override],
    axes: &[Vary],
) -> Result<Vec<(Params, Arc<Scenario>)>, ConfigError> {
    let points = grid(axes);
    if points.len() > MAX_POINTS {
        return Err(vortex::yaml::invalid(
            &path.display().to_string(),
            "--vary",
            format!("{} points; a sweep may have at most {MAX_POINTS}", points.len()),
        ));
    }
    points
        .into_iter()
        .map(|params| {
            let mut overrides = base.to_vec();
            overrides.extend(params.iter().map(|(k, v)| Override { key: k.clone(), value: yaml_number(*v) }));
            Ok((params, Arc::new(Scenario::load(path, &overrides)?)))
        })
        .collect()
}

/// A whole number as a YAML integer (so integer keys such as `adaptive.history` can vary too),
/// anything else as a float.
fn yaml_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// Runs every point (points in parallel, each point's slots in order on one worker, so results
/// do not depend on the number of workers) and picks the best.
#[cfg(madsim)]
pub fn run(
    points: Vec<(Params, Arc<Scenario>)>,
    objective: &Objective,
    workers: usize,
    done: &(dyn Fn(u64) + Sync),
) -> SweepReport {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Point>>> = points.iter().map(|_| Mutex::new(None)).collect();
    let workers = crate::runner::worker_count(workers).min(points.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((params, scenario)) = points.get(i) else { break };
                let tally = crate::runner::run_with(scenario, 1, done);
                let report = Report::new(scenario, &tally);
                *results[i].lock().expect("result slot poisoned") = Some(Point::new(params.clone(), report));
            });
        }
    });
    let points: Vec<Point> =
        results.into_iter().map(|r| r.into_inner().expect("result slot poisoned").expect("every point ran")).collect();
    let best = best(&points, objective).cloned();
    SweepReport { points, best }
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

/// The best point's orchestration keys, with the `--set` orchestration keys the sweep ran under,
/// as a ready-to-paste `orchestration:` YAML snippet; and the varied keys that are not config keys.
pub fn config_snippet(best: &Point, set: &[Override]) -> (String, Vec<String>) {
    let mut root = Value::Mapping(Default::default());
    let mut other = Vec::new();
    let fixed = set.iter().map(|o| (o.key.as_str(), o.value.clone()));
    let varied = best.params.iter().map(|(k, v)| (k.as_str(), yaml_number(*v)));
    let mut any = false;
    for (key, value) in fixed.chain(varied) {
        let Some(path) = key.strip_prefix("orchestration.") else {
            if let Some((_, v)) = best.params.iter().find(|(k, _)| k == key) {
                other.push(format!("{key}={v}"));
            }
            continue;
        };
        any = true;
        let mut node = &mut root;
        for part in std::iter::once("orchestration").chain(path.split('.')) {
            let Value::Mapping(map) = node else { unreachable!("only maps are created on the way") };
            node = map.entry(Value::from(part)).or_insert_with(|| Value::Mapping(Default::default()));
        }
        *node = value;
    }
    let yaml = if any { serde_yaml_ng::to_string(&root).expect("plain YAML") } else { String::new() };
    (yaml, other)
}

impl SweepReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a sweep report always serializes") + "\n"
    }

    /// One row per point, then the recommendation.
    pub fn to_table(&self, objective: &Objective, set: &[Override]) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let Some(first) = self.points.first() else { return t };
        let keys: Vec<&str> = first.params.iter().map(|(k, _)| k.rsplit('.').next().unwrap_or(k)).collect();
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
        let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
        for k in &keys {
            let _ = write!(t, "{k:>18} ");
        }
        let _ = writeln!(
            t,
            "{:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>17} {:>10}",
            "on_time", "miss", "abort", "f_abort", "precision", "p99_ms", "p99 95% CI", "wasted_s"
        );
        for p in &self.points {
            for (_, v) in &p.params {
                let _ = write!(t, "{v:>18} ");
            }
            let total = &p.latency_ms.total;
            let marker = if self.best.as_ref() == Some(p) { "  <- best" } else { "" };
            let _ = writeln!(
                t,
                "{:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>17} {:>10.1}{marker}",
                pct(Some(p.rates.on_time)),
                pct(Some(p.rates.deadline_miss)),
                pct(Some(p.rates.abort)),
                pct(Some(p.rates.false_abort)),
                pct(p.rates.abort_precision),
                ms(total.p99),
                format!("[{}, {}]", ms(total.p99_ci95[0]), ms(total.p99_ci95[1])),
                p.wasted_gpu_s
            );
        }
        let _ = writeln!(t);
        match &self.best {
            None => {
                let _ =
                    writeln!(t, "objective {objective}: no point meets the constraints; widen the grid or relax them.");
            }
            Some(best) => {
                let params: Vec<String> = best.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let value = objective.metric.of(best).map_or("-".into(), |v| format!("{v}"));
                let _ = writeln!(
                    t,
                    "objective {objective}: best point {} ({} = {value})",
                    params.join(" "),
                    objective.metric
                );
                let (yaml, other) = config_snippet(best, set);
                if !yaml.is_empty() {
                    let _ = writeln!(t, "\n# paste into config.yaml (or a scenario's orchestration section):\n{yaml}");
                }
                if !other.is_empty() {
                    let _ = writeln!(t, "# scenario keys of the best point (not config): {}", other.join(" "));
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parses_ranges_and_refuses_bad_ones() {
        let v: Vary = "orchestration.deadline_buffer_s=0..1:0.25".parse().unwrap();
        assert_eq!(v.key, "orchestration.deadline_buffer_s");
        assert_eq!(v.values, [0.0, 0.25, 0.5, 0.75, 1.0]);
        let v: Vary = "x=0..0.3:0.1".parse().unwrap();
        assert_eq!(v.values, [0.0, 0.1, 0.2, 0.3]);
        assert!("x=1..0:1".parse::<Vary>().unwrap_err().contains("FROM <= TO"));
        assert!("x=0..1:0".parse::<Vary>().unwrap_err().contains("STEP > 0"));
        assert!("x=0..1".parse::<Vary>().unwrap_err().contains("KEY=FROM..TO:STEP"));
        assert!("x=0..1000000:1".parse::<Vary>().unwrap_err().contains("at most"));
    }

    #[test]
    fn objective_grammar() {
        let o: Objective = "max:on_time subject_to:false_abort<=0.01,p99_ms<40000".parse().unwrap();
        assert!(o.maximise);
        assert_eq!(o.metric, Metric::OnTime);
        assert_eq!(o.constraints[0], Constraint { metric: Metric::FalseAbort, op: Op::Le, bound: 0.01 });
        assert_eq!(o.constraints[1], Constraint { metric: Metric::P99Ms, op: Op::Lt, bound: 40000.0 });
        assert_eq!(o.to_string(), "max:on_time subject_to:false_abort<=0.01,p99_ms<40000");
        assert!("min:wasted_gpu_s".parse::<Objective>().is_ok());
        assert!("max:speed".parse::<Objective>().unwrap_err().contains("unknown metric \"speed\""));
        assert!("best:on_time".parse::<Objective>().unwrap_err().contains("max or min"));
        assert!("max:on_time false_abort<=1".parse::<Objective>().unwrap_err().contains("subject_to:"));
        assert!("max:on_time subject_to:abort=1".parse::<Objective>().unwrap_err().contains("METRIC<=NUMBER"));
    }

    #[test]
    fn grid_is_the_cartesian_product_first_axis_slowest() {
        let a = Vary { key: "a".into(), values: vec![1.0, 2.0] };
        let b = Vary { key: "b".into(), values: vec![10.0, 20.0, 30.0] };
        let g = grid(&[a, b]);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], [("a".to_string(), 1.0), ("b".to_string(), 10.0)]);
        assert_eq!(g[5], [("a".to_string(), 2.0), ("b".to_string(), 30.0)]);
    }
}
