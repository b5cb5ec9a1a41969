//! Latency distributions of the scenario format, in seconds.
//!
//! ```yaml
//! latency: { lognormal: { median: 2.0, p99: 2.9 }, max: 5.0 }
//! ```
//! One distribution key, and optionally `max` to clamp. Parameters are checked while they are
//! read, so an error names the key path and the bad value.
//!
//! Bounds (docs/reliability.md): every parameter in seconds is at most [`MAX_SECONDS`] (one day);
//! `cv` is from [`MIN_CV`] to [`MAX_CV`]; a mixture has at most [`MAX_MIXTURE_PARTS`] parts; an
//! empirical distribution at most [`MAX_SAMPLES`] samples, and a trace file at most
//! [`MAX_TRACE_BYTES`]. Draws are clamped to [`MAX_SECONDS`] too: a lognormal with a wide spread
//! can draw any magnitude, and a day is already far past every timeout.

use std::fmt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Normal};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use vortex::units::{fmt_f64, MAX_SECONDS};

/// z of the standard normal's 99th percentile: `sigma = ln(p99 / median) / Z99`.
pub const Z99: f64 = 2.3263;

/// The smallest `cv` of a gamma distribution (shape 10^8: already a constant for any purpose).
pub const MIN_CV: f64 = 1e-4;
/// The largest `cv` of a gamma distribution (shape 0.01: most draws near zero, a few huge).
pub const MAX_CV: f64 = 10.0;
/// The most parts of one mixture.
pub const MAX_MIXTURE_PARTS: usize = 64;
/// The most samples of one empirical distribution, inline or from a trace file.
pub const MAX_SAMPLES: usize = 1_000_000;
/// The largest trace file: a million samples of 16 characters each.
pub const MAX_TRACE_BYTES: u64 = 16 << 20;

/// The largest weight of a mixture part (weights are relative; this keeps their sum finite).
pub const MAX_WEIGHT: f64 = 1e6;

/// The distribution names the format accepts.
const KINDS: &[&str] = &["constant", "uniform", "normal", "lognormal", "gamma", "empirical", "mixture", "max"];

/// A latency distribution with an optional clamp.
#[derive(Debug, Clone)]
pub struct Latency {
    kind: Shape,
    max: Option<f64>,
}

#[derive(Debug, Clone)]
enum Shape {
    Constant(f64),
    Uniform(f64, f64),
    /// Normal truncated at 0 (negative draws are drawn again).
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>),
    Gamma(Gamma<f64>),
    Empirical(Empirical),
    Mixture {
        cumulative: Vec<f64>,
        parts: Vec<Latency>,
    },
}

/// Samples given inline, or a file still to be read relative to the scenario file.
#[derive(Debug, Clone)]
enum Empirical {
    Samples(Vec<f64>),
    File(PathBuf),
}

impl Latency {
    /// Draws one latency in seconds (finite, from 0 to [`MAX_SECONDS`]).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let value = match &self.kind {
            Shape::Constant(x) => *x,
            Shape::Uniform(lo, hi) => lo + (hi - lo) * rng.gen::<f64>(),
            Shape::Normal(normal) => {
                // Truncation at 0 by rejection; the mean is >= 0 so each try succeeds with p >= 1/2,
                // and the bound only guards against a pathological stream.
                (0..64).map(|_| normal.sample(rng)).find(|x| *x >= 0.0).unwrap_or(0.0)
            }
            Shape::LogNormal(d) => d.sample(rng),
            Shape::Gamma(d) => d.sample(rng),
            Shape::Empirical(Empirical::Samples(samples)) => samples[rng.gen_range(0..samples.len())],
            Shape::Empirical(Empirical::File(path)) => {
                unreachable!("empirical file {} was not resolved after loading", path.display())
            }
            Shape::Mixture { cumulative, parts } => {
                let u = rng.gen::<f64>() * cumulative.last().expect("a mixture has parts");
                let i = cumulative.partition_point(|&c| c <= u).min(parts.len() - 1);
                parts[i].sample(rng)
            }
        };
        // `!(v >= 0)` also catches NaN, which no shape should give but must never reach a timer.
        let value = if value >= 0.0 { value.min(MAX_SECONDS) } else { 0.0 };
        self.max.map_or(value, |m| value.min(m))
    }

    /// The number of samples of an `empirical` distribution (resolved), else `None`: the rows a
    /// joint draw may pick from.
    pub fn empirical_len(&self) -> Option<usize> {
        match &self.kind {
            Shape::Empirical(Empirical::Samples(samples)) => Some(samples.len()),
            _ => None,
        }
    }

    /// Sample `row` of an `empirical` distribution, clamped as a draw is; `None` for any other
    /// shape or a row past its end.
    pub fn row(&self, row: usize) -> Option<f64> {
        let Shape::Empirical(Empirical::Samples(samples)) = &self.kind else { return None };
        let value = *samples.get(row)?;
        let value = if value >= 0.0 { value.min(MAX_SECONDS) } else { 0.0 };
        Some(self.max.map_or(value, |m| value.min(m)))
    }

    /// Reads `{empirical: {file: ...}}` traces, relative to `base_dir`; `key` names this
    /// distribution in errors.
    pub fn resolve_files(&mut self, base_dir: &Path, key: &str) -> Result<(), String> {
        match &mut self.kind {
            Shape::Empirical(source @ Empirical::File(_)) => {
                let Empirical::File(file) = &*source else { unreachable!() };
                let path = base_dir.join(file);
                let samples = read_trace(&path).map_err(|e| format!("{key}.empirical.file: {e}"))?;
                *source = Empirical::Samples(samples);
            }
            Shape::Mixture { parts, .. } => {
                for (i, part) in parts.iter_mut().enumerate() {
                    part.resolve_files(base_dir, &format!("{key}.mixture[{i}].dist"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Reads a trace: one latency in seconds per line; blank lines and `#` comments are skipped.
fn read_trace(path: &Path) -> Result<Vec<f64>, String> {
    let text = vortex::yaml::read_text(path, MAX_TRACE_BYTES).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if samples.len() == MAX_SAMPLES {
            return Err(format!("{} line {}: more than {MAX_SAMPLES} samples", path.display(), n + 1));
        }
        match line.parse::<f64>() {
            Ok(v) if (0.0..=MAX_SECONDS).contains(&v) => samples.push(v),
            _ => {
                return Err(format!(
                    "{} line {}: expected a latency in seconds from 0 to {MAX_SECONDS}, got {}",
                    path.display(),
                    n + 1,
                    vortex::yaml::quoted(line)
                ));
            }
        }
    }
    if samples.is_empty() {
        return Err(format!("{}: no samples", path.display()));
    }
    Ok(samples)
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

fn non_negative(name: &str, v: f64) -> Result<(), String> {
    check((0.0..=MAX_SECONDS).contains(&v), || {
        format!("{name} must be a number of seconds from 0 to {MAX_SECONDS}, got {}", fmt_f64(v))
    })
}

fn positive(name: &str, v: f64) -> Result<(), String> {
    check(v > 0.0 && v <= MAX_SECONDS, || {
        format!("{name} must be a number of seconds above 0 and at most {MAX_SECONDS}, got {}", fmt_f64(v))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with mean and sd")]
struct NormalSpec {
    mean: f64,
    sd: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with median and p99")]
struct LogNormalSpec {
    median: f64,
    p99: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with mean and cv")]
struct GammaSpec {
    mean: f64,
    cv: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with weight and dist")]
struct MixturePart {
    weight: f64,
    dist: Latency,
}

/// `empirical:` holds either a list of samples or `{file: PATH}`.
struct EmpiricalSpec(Empirical);

impl<'de> Deserialize<'de> for EmpiricalSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSpec {
            file: PathBuf,
        }
        let value = serde_yaml_ng::Value::deserialize(d)?;
        let expected = "expected a list of latencies in seconds or {file: PATH}";
        let source = match value {
            serde_yaml_ng::Value::Sequence(_) => {
                let samples: Vec<f64> =
                    serde_yaml_ng::from_value(value).map_err(|e| de::Error::custom(format!("{expected}: {e}")))?;
                if samples.is_empty() {
                    return Err(de::Error::custom("an empirical distribution needs at least one sample"));
                }
                if samples.len() > MAX_SAMPLES {
                    return Err(de::Error::custom(format!(
                        "{} samples; an empirical distribution may have at most {MAX_SAMPLES}",
                        samples.len()
                    )));
                }
                for s in &samples {
                    non_negative("every sample", *s).map_err(de::Error::custom)?;
                }
                Empirical::Samples(samples)
            }
            serde_yaml_ng::Value::Mapping(_) => {
                let spec: FileSpec =
                    serde_yaml_ng::from_value(value).map_err(|e| de::Error::custom(format!("{expected}: {e}")))?;
                Empirical::File(spec.file)
            }
            other => return Err(de::Error::custom(format!("{expected}, got {other:?}"))),
        };
        Ok(EmpiricalSpec(source))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(LatencyVisitor)
    }
}

struct LatencyVisitor;

impl<'de> Visitor<'de> for LatencyVisitor {
    type Value = Latency;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a latency distribution such as {constant: 2.0} or {lognormal: {median: 2.0, p99: 2.9}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Latency, A::Error> {
        let mut kind = None;
        let mut max = None;
        while let Some(key) = map.next_key::<String>()? {
            let parsed = match key.as_str() {
                "max" => {
                    let m: f64 = map.next_value()?;
                    positive("max", m).map_err(de::Error::custom)?;
                    max = Some(m);
                    continue;
                }
                "constant" => {
                    let x: f64 = map.next_value()?;
                    non_negative("constant", x).map(|()| Shape::Constant(x))
                }
                "uniform" => {
                    let [lo, hi]: [f64; 2] = map.next_value()?;
                    non_negative("uniform min", lo)
                        .and_then(|()| non_negative("uniform max", hi))
                        .and_then(|()| {
                            check(hi >= lo, || format!("uniform needs [min, max] with min <= max, got [{lo}, {hi}]"))
                        })
                        .map(|()| Shape::Uniform(lo, hi))
                }
                "normal" => {
                    let s: NormalSpec = map.next_value()?;
                    non_negative("mean", s.mean)
                        .and_then(|()| non_negative("sd", s.sd))
                        .and_then(|()| Normal::new(s.mean, s.sd).map_err(|e| format!("normal: {e}")))
                        .map(Shape::Normal)
                }
                "lognormal" => {
                    let s: LogNormalSpec = map.next_value()?;
                    positive("median", s.median)
                        .and_then(|()| positive("p99", s.p99))
                        .and_then(|()| {
                            check(s.p99 >= s.median, || format!("p99 must be >= median ({}), got {}", s.median, s.p99))
                        })
                        .and_then(|()| {
                            let sigma = (s.p99 / s.median).ln() / Z99;
                            LogNormal::new(s.median.ln(), sigma).map_err(|e| format!("lognormal: {e}"))
                        })
                        .map(Shape::LogNormal)
                }
                "gamma" => {
                    let s: GammaSpec = map.next_value()?;
                    positive("mean", s.mean)
                        .and_then(|()| {
                            check((MIN_CV..=MAX_CV).contains(&s.cv), || {
                                format!("cv must be from {MIN_CV} to {MAX_CV}, got {}", fmt_f64(s.cv))
                            })
                        })
                        .and_then(|()| {
                            let shape = 1.0 / (s.cv * s.cv);
                            Gamma::new(shape, s.mean * s.cv * s.cv).map_err(|e| format!("gamma: {e}"))
                        })
                        .map(Shape::Gamma)
                }
                "empirical" => Ok(Shape::Empirical(map.next_value::<EmpiricalSpec>()?.0)),
                "mixture" => {
                    let parts: Vec<MixturePart> = map.next_value()?;
                    mixture(parts)
                }
                other => return Err(de::Error::unknown_field(other, KINDS)),
            };
            let parsed = parsed.map_err(de::Error::custom)?;
            if kind.replace(parsed).is_some() {
                return Err(de::Error::custom("give exactly one distribution (plus an optional `max`)"));
            }
        }
        let kind = kind.ok_or_else(|| {
            de::Error::custom(
                "missing the distribution: one of constant, uniform, normal, lognormal, gamma, empirical, mixture",
            )
        })?;
        Ok(Latency { kind, max })
    }
}

fn mixture(parts: Vec<MixturePart>) -> Result<Shape, String> {
    check(!parts.is_empty(), || "a mixture needs at least one part".into())?;
    check(parts.len() <= MAX_MIXTURE_PARTS, || {
        format!("{} parts; a mixture may have at most {MAX_MIXTURE_PARTS}", parts.len())
    })?;
    let mut total = 0.0;
    let mut cumulative = Vec::with_capacity(parts.len());
    for part in &parts {
        check(part.weight > 0.0 && part.weight <= MAX_WEIGHT, || {
            format!("weight must be above 0 and at most {MAX_WEIGHT}, got {}", fmt_f64(part.weight))
        })?;
        total += part.weight;
        cumulative.push(total);
    }
    Ok(Shape::Mixture { cumulative, parts: parts.into_iter().map(|p| p.dist).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn parse(yaml: &str) -> Result<Latency, String> {
        let de = serde_yaml_ng::Deserializer::from_str(yaml);
        serde_path_to_error::deserialize(de).map_err(|e| e.to_string())
    }

    fn draws(yaml: &str, n: usize) -> Vec<f64> {
        let d = parse(yaml).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut v: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
    }

    #[test]
    fn lognormal_hits_its_median_and_p99() {
        let v = draws("{lognormal: {median: 2.0, p99: 2.9}}", 200_000);
        assert!((quantile(&v, 0.5) - 2.0).abs() < 0.01, "median {}", quantile(&v, 0.5));
        assert!((quantile(&v, 0.99) - 2.9).abs() < 0.03, "p99 {}", quantile(&v, 0.99));
    }

    #[test]
    fn gamma_hits_its_mean_and_cv() {
        let v = draws("{gamma: {mean: 11.0, cv: 0.12}}", 200_000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((mean - 11.0).abs() < 0.02, "mean {mean}");
        assert!((sd / mean - 0.12).abs() < 0.002, "cv {}", sd / mean);
    }

    #[test]
    fn uniform_normal_clamp_empirical_and_mixture_stay_in_range() {
        let v = draws("{uniform: [0.8, 1.2]}", 10_000);
        assert!(v[0] >= 0.8 && v[v.len() - 1] <= 1.2);
        let v = draws("{normal: {mean: 0.5, sd: 1.0}}", 10_000);
        assert!(v[0] >= 0.0, "normal is truncated at 0");
        let v = draws("{normal: {mean: 8.0, sd: 0.8}, max: 8.5}", 10_000);
        assert_eq!(v[v.len() - 1], 8.5);
        let v = draws("{empirical: [1.0, 2.0, 3.0]}", 1_000);
        assert!(v.iter().all(|x| [1.0, 2.0, 3.0].contains(x)));
        let v = draws("{mixture: [{weight: 3, dist: {constant: 1.0}}, {weight: 1, dist: {constant: 10.0}}]}", 40_000);
        let share = v.iter().filter(|&&x| x == 10.0).count() as f64 / v.len() as f64;
        assert!((share - 0.25).abs() < 0.01, "share {share}");
    }

    #[test]
    fn bad_parameters_name_the_key_and_value() {
        let e = parse("{lognormal: {median: 2.0, p99: 1.0}}").unwrap_err();
        assert!(e.contains("p99 must be >= median (2), got 1"), "{e}");
        let e = parse("{gamma: {mean: 11.0, cv: -1}}").unwrap_err();
        assert!(e.contains("cv must be from 0.0001 to 10, got -1"), "{e}");
        let e = parse("{weibull: {k: 1}}").unwrap_err();
        assert!(e.contains("unknown field `weibull`"), "{e}");
        let e = parse("{constant: 1, uniform: [1, 2]}").unwrap_err();
        assert!(e.contains("exactly one distribution"), "{e}");
        let e = parse("{max: 3}").unwrap_err();
        assert!(e.contains("missing the distribution"), "{e}");
        let e = parse("{mixture: [{weight: 1, dist: {normal: {mean: 1, sd: -2}}}]}").unwrap_err();
        assert!(e.starts_with("mixture[0].dist.normal") || e.contains("sd must be"), "{e}");
    }

    #[test]
    fn rows_of_an_empirical_list_are_clamped_and_other_shapes_have_none() {
        let d = parse("{empirical: [1.0, 4.0, 2.5], max: 3.0}").unwrap();
        assert_eq!(d.empirical_len(), Some(3));
        assert_eq!([d.row(0), d.row(1), d.row(2), d.row(3)], [Some(1.0), Some(3.0), Some(2.5), None]);
        let d = parse("{uniform: [1.0, 2.0]}").unwrap();
        assert_eq!((d.empirical_len(), d.row(0)), (None, None));
    }

    #[test]
    fn empirical_files_are_read_relative_to_the_scenario() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("trace.csv"), "# seconds\n1.5\n\n2.5\n").unwrap();
        let mut d = parse("{empirical: {file: trace.csv}}").unwrap();
        d.resolve_files(dir.path(), "stages.audio.latency").unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert!((0..100).all(|_| [1.5, 2.5].contains(&d.sample(&mut rng))));
        std::fs::write(dir.path().join("bad.csv"), "1.0\nfast\n").unwrap();
        let mut d = parse("{empirical: {file: bad.csv}}").unwrap();
        let e = d.resolve_files(dir.path(), "stages.audio.latency").unwrap_err();
        assert!(e.starts_with("stages.audio.latency.empirical.file: ") && e.contains("bad.csv line 2"), "{e}");
    }
}
