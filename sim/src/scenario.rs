//! Scenario files: the conditions a simulation runs under (latency and failure distributions per
//! stage, slot count, seed, deadline) and the orchestration policy under test.
//!
//! Every field is documented in `docs/scenarios.md`. Loading is strict: unknown keys are refused,
//! and every error names the file, the key path and the bad value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_yaml_ng::{Mapping, Value};
use vortex::units::{fmt_f64, Probability, Seconds};
use vortex::yaml::{self, invalid};
use vortex::{ConfigError, Orchestration, PerStage, Stage};

use crate::dist::Latency;

/// The most slots one run may simulate: bounds memory and run time of a typo'd `slots`.
pub const MAX_SLOTS: u64 = 100_000_000;

/// The largest `gpu.parallel_slowdown`: a GPU that runs two jobs a hundred times slower than one.
pub const MAX_PARALLEL_SLOWDOWN: f64 = 100.0;

/// The largest drift factor: a stage a thousand times slower than its distribution.
pub const MAX_DRIFT_FACTOR: f64 = 1000.0;

/// The most drift keyframes.
pub const MAX_KEYFRAMES: usize = 10_000;

/// A loaded, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What situation it models.
    pub description: Option<String>,
    /// Seed of every random stream.
    pub seed: u64,
    /// Slots to simulate.
    pub slots: u64,
    /// Each slot's deadline, relative to its start.
    pub deadline: Duration,
    /// The policy under test: the base config's `orchestration` section with the scenario's own
    /// `orchestration` keys merged over it.
    pub orchestration: Orchestration,
    /// Latency and failure model per stage.
    pub stages: PerStage<StageModel>,
    /// GPU sharing between audio and image.
    pub gpu: GpuModel,
    /// Latency multipliers that change over the run, if any.
    pub drift: Option<Drift>,
    /// Back-to-back slots on one GPU, if set; without it slots are independent.
    pub cadence: Option<Cadence>,
    /// With `joint_latency`: the rows N shared by the four `empirical` lists, so that a slot's
    /// first attempts take one recorded slot's latencies together; `None` draws stages apart.
    pub joint_rows: Option<usize>,
    /// The file it came from (`<inline>` for text).
    pub origin: String,
    /// The file and `--set` overrides it was loaded from (none for text): a sweep reloads it
    /// with each grid point's values added.
    pub source: Option<(PathBuf, Vec<Override>)>,
}

/// How one stage behaves.
#[derive(Debug, Clone)]
pub struct StageModel {
    /// Latency of an attempt, in seconds.
    pub latency: Latency,
    /// Probability that an attempt fails after a uniform fraction of its latency.
    pub transient_failure: f64,
    /// Probability that an attempt never finishes.
    pub hang: f64,
    /// Probability that the CLIP self-check rejects (verification stage only).
    pub reject: f64,
}

/// Section `gpu`.
#[derive(Debug, Clone, Copy)]
pub struct GpuModel {
    /// While audio and image both run, each progresses at 1/parallel_slowdown of its solo speed.
    pub parallel_slowdown: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a scenario: a map with name, stages and optional keys (docs/scenarios.md)")]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_slots", deserialize_with = "slot_count")]
    slots: u64,
    #[serde(default = "default_deadline")]
    deadline_s: Seconds,
    #[serde(default)]
    config: Option<PathBuf>,
    #[serde(default)]
    orchestration: Option<Mapping>,
    stages: PerStage<StageFile>,
    #[serde(default)]
    gpu: GpuFile,
    #[serde(default)]
    drift: Option<DriftFile>,
    #[serde(default)]
    cadence: Option<CadenceFile>,
    #[serde(default)]
    joint_latency: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with factor (a list of [slot, factor]) and optional stages")]
struct DriftFile {
    #[serde(default = "all_stages")]
    stages: Vec<Stage>,
    factor: Vec<[f64; 2]>,
}

fn all_stages() -> Vec<Stage> {
    Stage::ALL.to_vec()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with interval_s and cancel_granularity_s")]
struct CadenceFile {
    interval_s: Seconds,
    // Keyed by plain stage names under a `_s` section, as the shipped scenarios write it.
    #[serde(deserialize_with = "plain_seconds")]
    cancel_granularity_s: PerStage<Seconds>,
}

/// Seconds keyed by plain stage names (the section's own name carries the unit).
fn plain_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<PerStage<Seconds>, D::Error> {
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Plain(Seconds);
    vortex::plain_stage_keys!(Plain);
    Ok(PerStage::<Plain>::deserialize(d)?.map(|p| p.0))
}

/// Section `drift`: the drawn latency of the listed stages is multiplied by a factor that moves
/// with the slot index, linearly between keyframes and flat outside them.
#[derive(Debug, Clone)]
pub struct Drift {
    /// Stages whose latency drifts.
    pub stages: PerStage<bool>,
    /// `(slot, factor)` keyframes, slots strictly increasing.
    pub keyframes: Vec<(f64, f64)>,
}

impl Drift {
    /// The multiplier at `slot`.
    pub fn factor(&self, slot: u64) -> f64 {
        let x = slot as f64;
        let k = &self.keyframes;
        let after = k.partition_point(|&(s, _)| s <= x);
        match after {
            0 => k[0].1,
            n if n == k.len() => k[n - 1].1,
            n => {
                let ((x0, y0), (x1, y1)) = (k[n - 1], k[n]);
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
    }
}

/// Section `cadence`: a new slot every `interval`, all on one GPU.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Time between slot starts.
    pub interval: Duration,
    /// How long a stage's unit of work lasts: a cancelled stage keeps the GPU busy until its next
    /// multiple of this, counted from the attempt's start.
    pub cancel_granularity: PerStage<Duration>,
}

fn default_slots() -> u64 {
    10_000
}

fn default_deadline() -> Seconds {
    Seconds::of(45.0)
}

fn slot_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = i64::deserialize(d)?;
    match u64::try_from(n) {
        Ok(n) if (1..=MAX_SLOTS).contains(&n) => Ok(n),
        _ => Err(serde::de::Error::custom(format!("expected a slot count from 1 to {MAX_SLOTS}, got {n}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with latency and optional transient_failure, hang, reject")]
struct StageFile {
    latency: Latency,
    #[serde(default)]
    transient_failure: Probability,
    #[serde(default)]
    hang: Probability,
    #[serde(default)]
    reject: Option<Probability>,
}

vortex::plain_stage_keys!(StageFile);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a map with parallel_slowdown")]
struct GpuFile {
    #[serde(default = "one")]
    parallel_slowdown: f64,
}

impl Default for GpuFile {
    fn default() -> Self {
        GpuFile { parallel_slowdown: 1.0 }
    }
}

fn one() -> f64 {
    1.0
}

/// One `--set KEY=VALUE` override, applied to the scenario file before it is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key path, e.g. `orchestration.deadline_buffer_s`.
    pub key: String,
    /// The value, parsed as YAML (`4` is a number, `abc` a string).
    pub value: Value,
    /// The command-line flag and value as the user wrote them (`--set KEY=VALUE`, `--slots 5`,
    /// `--vary KEY=VALUE` for one grid point): an error in the value is blamed on it, not on the
    /// scenario file.
    pub given: String,
}

impl Override {
    /// An override from `flag` (`--seed`, `--slots`, `--vary`) rather than `--set`.
    pub fn from_flag(flag: &str, key: &str, value: impl Into<Value>) -> Override {
        let value = value.into();
        let shown = serde_yaml_ng::to_string(&value).unwrap_or_default();
        let given = match flag {
            "--set" | "--vary" => format!("{flag} {key}={}", shown.trim_end()),
            _ => format!("{flag} {}", shown.trim_end()),
        };
        Override { key: key.to_string(), value, given }
    }

    /// How the user wrote it.
    pub fn as_given(&self) -> &str {
        &self.given
    }
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = serde_yaml_ng::to_string(&self.value).map_err(|_| std::fmt::Error)?;
        write!(f, "{}={}", self.key, value.trim_end())
    }
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {}", yaml::quoted(s)))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!(
                "expected a dotted key such as orchestration.deadline_buffer_s, got {}",
                yaml::quoted(key)
            ));
        }
        let value = yaml::parse_value(key, value).map_err(|e| match e {
            ConfigError::Invalid { message, .. } => message,
            other => other.to_string(),
        })?;
        Ok(Override { key: key.to_string(), value, given: format!("--set {s}") })
    }
}

impl Scenario {
    /// Loads a scenario file, applying `overrides` (from `--set`) first.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Scenario, ConfigError> {
        let origin = path.display().to_string();
        let text = yaml::read_text(path, yaml::MAX_YAML_BYTES)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut scenario = Scenario::from_yaml_str(&origin, &text, base_dir, overrides)?;
        scenario.source = Some((path.to_path_buf(), overrides.to_vec()));
        Ok(scenario)
    }

    /// Parses scenario text; relative paths in it are taken from `base_dir`.
    pub fn from_yaml_str(
        origin: &str,
        text: &str,
        base_dir: &Path,
        overrides: &[Override],
    ) -> Result<Scenario, ConfigError> {
        let file: ScenarioFile = if overrides.is_empty() {
            yaml::parse(origin, text)? // straight from text: errors keep their line numbers
        } else {
            let mut value = yaml::parse_value(origin, text)?;
            for o in overrides {
                set_path(&mut value, &o.key, o.value.clone()).map_err(|m| invalid(o.as_given(), &o.key, m))?;
            }
            yaml::from_value(origin, value).map_err(|e| blame(e, origin, overrides))?
        };
        Scenario::build(origin, file, base_dir).map_err(|e| blame(e, origin, overrides))
    }

    fn build(origin: &str, file: ScenarioFile, base_dir: &Path) -> Result<Scenario, ConfigError> {
        let orchestration = match (&file.config, file.orchestration) {
            (None, None) => Orchestration::default(),
            (None, Some(own)) => {
                yaml::from_value(origin, Value::Mapping(own)).map_err(|e| within(e, "orchestration"))?
            }
            (Some(p), own) => {
                let path = base_dir.join(p);
                // Checked alone first, so that a bad value in the config file is blamed on it.
                let (base, mut merged) = Orchestration::load_with_value(&path)?;
                match own {
                    None => base,
                    Some(own) => {
                        yaml::merge(&mut merged, Value::Mapping(own));
                        yaml::from_value(origin, merged).map_err(|e| within(e, "orchestration"))?
                    }
                }
            }
        };
        let gpu = GpuModel { parallel_slowdown: file.gpu.parallel_slowdown };
        if !(1.0..=MAX_PARALLEL_SLOWDOWN).contains(&gpu.parallel_slowdown) {
            return Err(invalid(
                origin,
                "gpu.parallel_slowdown",
                format!(
                    "expected a number from 1 (perfect overlap) to {MAX_PARALLEL_SLOWDOWN}, got {}",
                    fmt_f64(gpu.parallel_slowdown)
                ),
            ));
        }
        let deadline = file.deadline_s.get();
        let buffer = orchestration.deadline_buffer_s.get();
        if buffer >= deadline {
            // Every slot would abort before it starts: certainly a typo, never a policy.
            return Err(invalid(
                origin,
                "orchestration.deadline_buffer_s",
                format!("{buffer} s leaves no time before the {deadline} s deadline (deadline_s); it must be shorter"),
            ));
        }
        let mut stages = file.stages;
        let mut models = Vec::with_capacity(4);
        for stage in Stage::ALL {
            let f = stages.get_mut(stage);
            let key = format!("stages.{stage}");
            if stage != Stage::Clip && f.reject.is_some() {
                return Err(invalid(
                    origin,
                    &format!("{key}.reject"),
                    "only the clip stage has a self-check to reject",
                ));
            }
            f.latency.resolve_files(base_dir, &format!("{key}.latency")).map_err(|m| {
                let (k, msg) = m.split_once(": ").unwrap_or((&key, &m));
                invalid(origin, k, msg)
            })?;
            models.push(StageModel {
                latency: f.latency.clone(),
                transient_failure: f.transient_failure.get(),
                hang: f.hang.get(),
                reject: f.reject.unwrap_or_default().get(),
            });
        }
        let mut models = models.into_iter();
        let stages = PerStage::from_fn(|_| models.next().expect("four stage models"));
        let joint_rows = if file.joint_latency { Some(joint_rows(origin, &stages)?) } else { None };
        let drift = file.drift.map(|d| check_drift(origin, d)).transpose()?;
        let cadence = file.cadence.map(|c| Cadence {
            interval: c.interval_s.duration(),
            cancel_granularity: c.cancel_granularity_s.map(Seconds::duration),
        });
        Ok(Scenario {
            name: file.name,
            description: file.description,
            seed: file.seed,
            slots: file.slots,
            deadline: file.deadline_s.duration(),
            orchestration,
            stages,
            gpu,
            drift,
            cadence,
            joint_rows,
            origin: origin.to_string(),
            source: None,
        })
    }

    /// A digest of every setting that moves a result: two runs with equal fingerprints give equal
    /// reports. The file's path is left out, so shards run from different checkouts still match.
    pub fn fingerprint(&self) -> String {
        let mut settings = format!(
            "{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.name,
            self.seed,
            self.slots,
            self.deadline,
            self.orchestration,
            self.stages,
            self.gpu,
            self.drift,
            self.cadence
        );
        if let Some(rows) = self.joint_rows {
            // Appended only when set, so that every other scenario keeps its fingerprint.
            settings.push_str(&format!("|joint_rows={rows}"));
        }
        // Two independent 64-bit FNV-1a hashes: a 128-bit digest, stable across machines and
        // Rust versions (unlike `DefaultHasher`).
        let fnv =
            |basis: u64| settings.bytes().fold(basis, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
    }

    /// True when slots must run one after another: the GPU carries over between slots (cadence)
    /// or the predictor learns from earlier slots.
    pub fn sequential(&self) -> bool {
        self.cadence.is_some() || self.orchestration.predictor == vortex::config::PredictorKind::Adaptive
    }
}

/// Checks `joint_latency: true`: every stage's latency is an `empirical` list, all of one length.
fn joint_rows(origin: &str, stages: &PerStage<StageModel>) -> Result<usize, ConfigError> {
    let mut first: Option<(Stage, usize)> = None;
    for stage in Stage::ALL {
        let key = format!("stages.{stage}.latency");
        let Some(n) = stages.get(stage).latency.empirical_len() else {
            return Err(invalid(
                origin,
                &key,
                "joint_latency: true needs every stage's latency to be an empirical list (one recorded slot \
                 per row), and this one is another distribution",
            ));
        };
        match first {
            None => first = Some((stage, n)),
            Some((s, rows)) if rows != n => {
                return Err(invalid(
                    origin,
                    &key,
                    format!(
                        "joint_latency: true needs the four empirical lists to have the same length (one \
                         recorded slot per row); {s} has {rows} samples, {stage} has {n}"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(first.expect("four stages").1)
}

fn check_drift(origin: &str, d: DriftFile) -> Result<Drift, ConfigError> {
    if d.factor.is_empty() || d.factor.len() > MAX_KEYFRAMES {
        return Err(invalid(
            origin,
            "drift.factor",
            format!("needs from 1 to {MAX_KEYFRAMES} [slot, factor] keyframes, got {}", d.factor.len()),
        ));
    }
    for (i, &[slot, factor]) in d.factor.iter().enumerate() {
        let key = format!("drift.factor[{i}]");
        if !(0.0..=MAX_SLOTS as f64).contains(&slot) {
            return Err(invalid(origin, &key, format!("slot must be from 0 to {MAX_SLOTS}, got {}", fmt_f64(slot))));
        }
        if !(factor > 0.0 && factor <= MAX_DRIFT_FACTOR) {
            return Err(invalid(
                origin,
                &key,
                format!("factor must be above 0 and at most {MAX_DRIFT_FACTOR}, got {}", fmt_f64(factor)),
            ));
        }
        if i > 0 && slot <= d.factor[i - 1][0] {
            return Err(invalid(origin, &key, format!("slots must increase, got {slot} after {}", d.factor[i - 1][0])));
        }
    }
    let stages = PerStage::from_fn(|s| d.stages.contains(&s));
    Ok(Drift { stages, keyframes: d.factor.iter().map(|&[s, f]| (s, f)).collect() })
}

/// Sets `a.b.c` in a YAML tree, creating maps on the way.
fn set_path(root: &mut Value, key: &str, value: Value) -> Result<(), String> {
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!("cannot set {key}: {} is not a map", parts[..i].join(".")));
        };
        let entry = map.entry(Value::String(part.to_string())).or_insert(Value::Null);
        if i + 1 == parts.len() {
            *entry = value;
            return Ok(());
        }
        node = entry;
    }
    unreachable!("a key has at least one part")
}

/// Blames an error in the scenario on the command line when the bad key came from a flag: an
/// error at or under an overridden key names that flag alone; one above it (an overridden key
/// inside a distribution that is now wrong as a whole) names the file and the flag.
fn blame(e: ConfigError, origin: &str, overrides: &[Override]) -> ConfigError {
    let ConfigError::Invalid { file, key, message } = e else { return e };
    if file != origin {
        return ConfigError::Invalid { file, key, message }; // the base config file's own error
    }
    let under = |parent: &str, child: &str| {
        child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    // The last override of a key wins, so it is the one to blame.
    let file = if let Some(o) = overrides.iter().rev().find(|o| under(&o.key, &key)) {
        o.as_given().to_string()
    } else if let Some(o) = overrides.iter().rev().find(|o| under(&key, &o.key)) {
        format!("{origin} with {}", o.as_given())
    } else {
        file
    };
    yaml::invalid(&file, &key, message)
}

/// Puts an error found in a section back under the section's key (`orchestration.timeouts...`).
fn within(e: ConfigError, section: &str) -> ConfigError {
    match e {
        ConfigError::Invalid { file, key, message } if key == "(top level)" => invalid(&file, section, message),
        ConfigError::Invalid { file, key, message } => invalid(&file, &format!("{section}.{key}"), message),
        other => other,
    }
}
