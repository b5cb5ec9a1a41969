//! The sweep's grammars: `--vary KEY=FROM..TO:STEP` (one axis of the grid) and `--objective`
//! (what to optimise, under which constraints). The grammar of `--objective`:
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

use vortex::yaml::quoted;

use super::{Point, MAX_POINTS};

/// The longest `--objective` accepted (a few constraints take a hundred characters).
pub const MAX_OBJECTIVE_CHARS: usize = 1000;

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
        let usage = || {
            format!("expected KEY=FROM..TO:STEP such as orchestration.deadline_buffer_s=0..10:0.5, got {}", quoted(s))
        };
        let (key, range) = s.split_once('=').ok_or_else(usage)?;
        let (span, step) = range.split_once(':').ok_or_else(usage)?;
        let (from, to) = span.split_once("..").ok_or_else(usage)?;
        let num = |t: &str| t.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(usage);
        let (from, to, step) = (num(from)?, num(to)?, num(step)?);
        if key.trim().is_empty() || step <= 0.0 || to < from {
            return Err(format!("{}: need FROM <= TO and STEP > 0, got {from}..{to}:{step}", quoted(key)));
        }
        // Counted in floating point first: a tiny step would overflow any integer.
        let count = ((to - from) / step + 1e-9).floor() + 1.0;
        if count > MAX_POINTS as f64 {
            let shown = if count < 1e15 { format!("{count:.0}") } else { "too many".into() };
            return Err(format!("{}: {shown} values; a sweep may have at most {MAX_POINTS} points", quoted(key)));
        }
        let n = count as usize;
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
            format!("unknown metric {}; expected one of {}", quoted(s), names.join(", "))
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(METRICS.iter().find(|(_, m)| m == self).map(|(n, _)| *n).unwrap_or("?"))
    }
}

impl Metric {
    /// The values the metric can take: a bound outside them is a mistake (a percentage written
    /// for a fraction, say).
    pub fn range(self) -> (f64, f64) {
        match self {
            Metric::P99Ms => (0.0, vortex::units::MAX_SECONDS * 1e3),
            Metric::WastedGpuS => (0.0, f64::MAX),
            _ => (0.0, 1.0),
        }
    }

    /// What the metric measures, in words (for errors).
    fn unit(self) -> &'static str {
        match self {
            Metric::P99Ms => "a latency in milliseconds",
            Metric::WastedGpuS => "a number of seconds",
            _ => "a fraction (0.01 is 1%)",
        }
    }

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
            head.split_once(':').ok_or_else(|| format!("expected max:METRIC or min:METRIC, got {}", quoted(head)))?;
        let maximise = match direction {
            "max" => true,
            "min" => false,
            other => return Err(format!("expected max or min, got {}", quoted(other))),
        };
        if s.len() > MAX_OBJECTIVE_CHARS {
            return Err(format!("an objective of {} characters; at most {MAX_OBJECTIVE_CHARS}", s.len()));
        }
        let mut constraints = Vec::new();
        for token in tokens {
            let list = token
                .strip_prefix("subject_to:")
                .ok_or_else(|| format!("expected subject_to:CONSTRAINT, got {}", quoted(token)))?;
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
            let metric: Metric = metric.parse()?;
            let bound = bound.parse::<f64>().ok().filter(|b| b.is_finite());
            let bound = bound.ok_or_else(|| format!("constraint {}: the bound is not a number", quoted(c)))?;
            let (lo, hi) = metric.range();
            if !(lo..=hi).contains(&bound) {
                return Err(format!(
                    "constraint {}: {metric} is {}, so its bound must be from {lo} to {hi}, got {bound}",
                    quoted(c),
                    metric.unit()
                ));
            }
            return Ok(Constraint { metric, op, bound });
        }
    }
    Err(format!("constraint {}: expected METRIC<=NUMBER (or >=, <, >)", quoted(c)))
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
        // A step so small that the count overflows any integer is refused, not an empty axis.
        let e = "x=0..1:1e-300".parse::<Vary>().unwrap_err();
        assert!(e.contains("too many values; a sweep may have at most"), "{e}");
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
        // Rates are fractions: a bound of 5 (meant as 5%) can never bind, so it is refused.
        let e = "max:on_time subject_to:false_abort<=5".parse::<Objective>().unwrap_err();
        assert!(e.contains("false_abort is a fraction (0.01 is 1%), so its bound must be from 0 to 1, got 5"), "{e}");
        assert!("min:p99_ms subject_to:p99_ms<-1".parse::<Objective>().is_err());
        assert!("max:on_time subject_to:p99_ms<40000".parse::<Objective>().is_ok());
    }
}
