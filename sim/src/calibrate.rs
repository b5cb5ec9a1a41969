//! `vortex-sim calibrate`: recorded slots (event logs) turned into a scenario whose stages draw
//! from what was observed, so that buffers and timeouts are tuned on the director's own GPU.
//!
//! What a log can tell, per stage (docs/tuning.md, "Calibrating from real slots"):
//! - a successful attempt's latency: from its start (the stage's start, `*_complete.elapsed_ms −
//!   stage_ms`, or the `stage_retry` that started it) to `*_complete.elapsed_ms`;
//! - a failed attempt's reason and end: the next `stage_retry` (its `elapsed_ms − backoff_ms`,
//!   its `reason`) or the slot's `slot_failed`;
//! - nothing about an attempt that a sibling's failure, a deadline cap or a cancellation cut
//!   short (censored), nor about stages an abort kept from running.
//!
//! `timed_out` attempts become the `hang` rate (the calibrated stage reproduces, under the same
//! timeouts, what was seen), error attempts the `transient_failure` rate, rejected self-checks
//! the clip `reject` rate; successful latencies become an inline `empirical` distribution.
//!
//! Bounds (docs/reliability.md): [`MAX_LOG_BYTES`] per log, [`MAX_TOTAL_LOG_BYTES`] in all,
//! [`MAX_LOG_FILES`] logs, [`MAX_OPEN_SLOTS`] slots started and not finished at once in a log,
//! lines of at most [`MAX_JSON_LINE_BYTES`], [`MAX_KEPT_SAMPLES`] samples written per stage.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use vortex::events::{RecordedEvent, MAX_JSON_LINE_BYTES};
use vortex::units::{fmt_f64, MAX_SECONDS};
use vortex::yaml::quoted;
use vortex::{FailureKind, Orchestration, PerStage, Stage};

use crate::scenario::{Scenario, MAX_SLOTS};

/// The largest event log read: a service's log of about a million slots.
pub const MAX_LOG_BYTES: u64 = 256 << 20;
/// The most bytes of logs one calibration reads, all files together.
pub const MAX_TOTAL_LOG_BYTES: u64 = 1 << 30;
/// The most event logs one calibration reads.
pub const MAX_LOG_FILES: usize = 100_000;
/// The most slots of one log started and not yet finished at once (a director runs one slot per
/// GPU at a time; this bounds the memory a log of unfinished slots can take).
pub const MAX_OPEN_SLOTS: usize = 10_000;
/// The most samples written per stage: four stages of them keep the scenario well under the
/// 1 MiB a scenario file may have. Above it, evenly spaced order statistics are kept.
pub const MAX_KEPT_SAMPLES: usize = 10_000;
/// Log files named one by one in the output's header; the rest are counted.
const NAMED_FILES: usize = 50;
/// Samples per line of the written `empirical` list.
const PER_LINE: usize = 10;

const _: () = assert!(MAX_KEPT_SAMPLES <= crate::dist::MAX_SAMPLES);

/// What `calibrate` takes besides the logs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A scenario whose name, seed, slot count, deadline, orchestration and cadence are kept.
    pub base: Option<PathBuf>,
    /// The slot count of the output (default: the base's, else 10,000).
    pub slots: Option<u64>,
    /// The seed of the output (default: the base's, else 1).
    pub seed: Option<u64>,
    /// Write `joint_latency: true`, each list's row r being one recorded slot (`--joint`).
    pub joint: bool,
}

/// Reads the event logs and returns the calibrated scenario's YAML text; writes nothing.
///
/// The same logs in any order give the same text, byte for byte.
pub fn calibrate(logs: &[PathBuf], options: &Options) -> Result<String, String> {
    if logs.is_empty() {
        return Err("give at least one event log".into());
    }
    if logs.len() > MAX_LOG_FILES {
        return Err(format!("{} event logs; one calibration reads at most {MAX_LOG_FILES}", logs.len()));
    }
    if let Some(slots) = options.slots {
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(format!("--slots {slots}: expected a slot count from 1 to {MAX_SLOTS}"));
        }
    }
    let base =
        options.base.as_deref().map(|p| Scenario::load(p, &[]).map_err(|e| format!("--base: {e}"))).transpose()?;
    let mut names: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
    names.sort();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("{} is given twice; its slots would count double", twice[0]));
    }
    let mut totals = Totals { rows: options.joint.then(Rows::default), ..Totals::default() };
    let mut budget = MAX_TOTAL_LOG_BYTES;
    // Sorted order, so that a float sum (failed attempts' time) does not depend on the order given.
    for name in &names {
        let finished = read_log(Path::new(name), &mut budget, &mut totals)?;
        if finished == 0 {
            return Err(format!(
                "{name}: no slot reached an outcome (slot_complete, slot_aborted or slot_failed); nothing to calibrate from"
            ));
        }
    }
    for stage in Stage::ALL {
        if totals.stages.get(stage).samples.is_empty() {
            return Err(format!(
                "no successful {stage} attempt in the {} of {}: the {stage} stage has no latency sample \
                 (did every slot abort or fail before it?)",
                counted(totals.outcomes.finished(), "slot"),
                files_phrase(&names)
            ));
        }
    }
    if totals.rows.as_ref().is_some_and(|r| r.full.is_empty()) {
        return Err(format!(
            "--joint: no slot in the {} of {} completed all four stages at their first attempt, so there \
             is no recorded slot to keep together (calibrate without --joint)",
            counted(totals.outcomes.finished(), "slot"),
            files_phrase(&names)
        ));
    }
    let text = render(&names, &totals, base.as_ref(), options);
    // The output must load as it is: check it the way `vortex-sim run` will.
    if text.len() as u64 > vortex::yaml::MAX_YAML_BYTES {
        return Err(format!("the calibrated scenario would be {} bytes, over the scenario limit", text.len()));
    }
    Scenario::from_yaml_str("the calibrated scenario", &text, Path::new("."), &[])
        .map_err(|e| format!("internal error, the calibrated scenario does not load: {e}"))?;
    Ok(text)
}

fn files_phrase(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        _ => counted(names.len() as u64, "event log"),
    }
}

/// A path as a comment shows it: one line (control characters escaped, as in errors).
fn in_comment(path: &str) -> String {
    if path.chars().any(char::is_control) {
        vortex::yaml::quoted(path)
    } else {
        path.to_string()
    }
}

/// `1 slot`, `2 slots`.
fn counted(n: u64, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// Everything observed, over all logs.
#[derive(Default)]
struct Totals {
    stages: PerStage<StageCounts>,
    outcomes: Outcomes,
    /// Slot deadlines in µs, smallest and largest.
    deadline_us: Option<(u64, u64)>,
    /// With `--joint`: the slots that become rows.
    rows: Option<Rows>,
}

/// The rows of `--joint`, latencies in µs in the order audio, image, video, clip.
#[derive(Default)]
struct Rows {
    /// Slots whose four stages completed at their first attempt.
    full: Vec<[u64; 4]>,
    /// Slots aborted, or failed by the deadline cutting an attempt, after audio and image
    /// completed at their first attempt (no retry anywhere): what is known of them.
    partial: Vec<Partial>,
}

/// A slot with stages missing: `known` latencies, and how long a cut attempt ran before its cut.
struct Partial {
    known: [Option<u64>; 4],
    cut: [Option<u64>; 4],
}

impl Rows {
    /// Adds `slot` as a full or partial row when it qualifies.
    fn add(&mut self, slot: &OpenSlot, end: &End) {
        if Stage::ALL.iter().any(|&s| !slot.retries.get(s).is_empty()) {
            return; // a retried stage: its first attempt's latency is not known
        }
        // The sample a first attempt gives in `finish` (from `at − took` to `at`).
        let known = Stage::ALL.map(|s| slot.complete.get(s).map(|(at, took)| at - at.saturating_sub(took)));
        let end_of = |s: Stage| slot.complete.get(s).map_or(0, |(at, _)| at);
        match (end, known) {
            (End::Complete { .. }, [Some(a), Some(i), Some(v), Some(c)]) => self.full.push([a, i, v, c]),
            (End::Aborted, [Some(_), Some(_), ..]) => self.partial.push(Partial { known, cut: [None; 4] }),
            (
                End::Failed { stage, reason: FailureKind::DeadlineCapped | FailureKind::Cancelled, at_us },
                [Some(_), Some(_), ..],
            ) => {
                // Audio and image completed, so the cut stage is video (started when both had
                // ended) or clip (when video had).
                let start = match stage {
                    Stage::Clip => end_of(Stage::Video),
                    _ => end_of(Stage::Audio).max(end_of(Stage::Image)),
                };
                let mut cut = [None; 4];
                cut[stage.index()] = Some(at_us.saturating_sub(start));
                self.partial.push(Partial { known, cut });
            }
            _ => {}
        }
    }

    /// Every row, a partial one completed from the full row nearest in audio latency (audio and
    /// video both follow the script), a cut attempt made 1 ms longer than its cut when the
    /// donor's is not, so that the simulated attempt is cut again.
    fn completed(&self) -> Vec<[u64; 4]> {
        let mut donors = self.full.clone();
        donors.sort_unstable_by_key(|&row| (row[0], row));
        let imputed = self.partial.iter().map(|p| {
            let audio = p.known[0].expect("a partial row has its audio");
            let at = donors.partition_point(|d| d[0] < audio);
            let nearest = [at.checked_sub(1), (at < donors.len()).then_some(at)]
                .into_iter()
                .flatten()
                .min_by_key(|&j| (donors[j][0].abs_diff(audio), j))
                .expect("calibrate refuses --joint without a full row");
            let donor = donors[nearest];
            [0, 1, 2, 3].map(|s| p.known[s].unwrap_or_else(|| p.cut[s].map_or(donor[s], |c| donor[s].max(c + 1_000))))
        });
        self.full.iter().copied().chain(imputed).collect()
    }
}

/// One stage's attempts, by what became of them.
#[derive(Default)]
struct StageCounts {
    /// Successful attempts' latencies in µs.
    samples: Vec<u64>,
    /// Attempts that returned an error.
    errors: u64,
    /// Their time in µs, all together.
    error_us: u64,
    /// Attempts that ran into the stage's timeout.
    timeouts: u64,
    /// Attempts cut short by something else (the deadline, a cancellation, a sibling's failure).
    censored: u64,
}

#[derive(Default)]
struct Outcomes {
    on_time: u64,
    late: u64,
    clip_rejected: u64,
    aborted: u64,
    failed: u64,
    cancelled: u64,
    /// Started and never finished before the log ended.
    unfinished: u64,
}

impl Outcomes {
    fn finished(&self) -> u64 {
        self.on_time + self.late + self.aborted + self.failed
    }
}

/// A slot between its `slot_started` and its final event.
#[derive(Default)]
struct OpenSlot {
    retries: PerStage<Vec<Retry>>,
    /// `(elapsed_us at the end, stage time in µs)` of each completed stage.
    complete: PerStage<Option<(u64, u64)>>,
}

struct Retry {
    start_us: u64,
    backoff_us: u64,
    reason: FailureKind,
}

/// How a slot ended, as far as its stages are concerned.
enum End {
    Complete { deadline_met: bool, clip_passed: bool },
    Aborted,
    Failed { stage: Stage, reason: FailureKind, at_us: u64 },
    Cancelled,
}

/// Reads one log into `totals`; returns how many of its slots reached an outcome.
fn read_log(path: &Path, budget: &mut u64, totals: &mut Totals) -> Result<u64, String> {
    let name = path.display().to_string();
    let (file, len) = vortex::input::open_regular(path).map_err(|refused| match refused {
        vortex::input::Refused::Directory => format!("{name}: is a directory, expected an event log file"),
        vortex::input::Refused::NotRegular => format!("{name}: is not a regular file (a device, FIFO or socket)"),
        vortex::input::Refused::Io(e) => format!("{name}: cannot read: {e}"),
    })?;
    let limit = MAX_LOG_BYTES.min(*budget);
    let too_large = |len: u64| {
        if limit < MAX_LOG_BYTES {
            format!("{name}: {len} bytes or more; the logs of one calibration are at most {MAX_TOTAL_LOG_BYTES} bytes in all")
        } else {
            format!("{name}: {len} bytes or more; an event log is at most {MAX_LOG_BYTES} bytes")
        }
    };
    if len > limit {
        return Err(too_large(len));
    }
    // Read at most one byte past the limit: the file may grow while it is read.
    let mut reader = BufReader::new(file.take(limit + 1));
    let mut open: BTreeMap<u64, OpenSlot> = BTreeMap::new();
    let (mut finished, mut read, mut number) = (0u64, 0u64, 0usize);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_JSON_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{name}: cannot read: {e}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        read += n as u64;
        if read > limit {
            return Err(too_large(read));
        }
        let at = |message: String| format!("{name}:{number}: {message}");
        if !line.ends_with(b"\n") && line.len() > MAX_JSON_LINE_BYTES {
            return Err(at(format!("a line longer than {MAX_JSON_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&line).map_err(|_| at("not UTF-8 text".into()))?.trim();
        if text.is_empty() {
            continue;
        }
        let event = RecordedEvent::from_json_line(text).map_err(at)?;
        if let Some((slot, end)) = apply(&event, &mut open, totals).map_err(at)? {
            finish(&slot, &end, totals);
            count_outcome(&end, &mut totals.outcomes);
            finished += u64::from(!matches!(end, End::Cancelled));
        }
    }
    *budget -= read;
    totals.outcomes.unfinished += open.len() as u64;
    Ok(finished)
}

/// Applies one event to the open slots; returns the slot it finished, if any.
fn apply(
    e: &RecordedEvent,
    open: &mut BTreeMap<u64, OpenSlot>,
    totals: &mut Totals,
) -> Result<Option<(OpenSlot, End)>, String> {
    let known = matches!(
        e.name.as_str(),
        "slot_started"
            | "audio_complete"
            | "image_complete"
            | "video_complete"
            | "clip_complete"
            | "stage_retry"
            | "slot_complete"
            | "slot_aborted"
            | "slot_failed"
            | "slot_cancelled"
    );
    if !known {
        return Ok(None); // stage_waiting, and events added later, tell no latency
    }
    let slot_id =
        e.field("slot_id").ok_or_else(|| format!("{} has no slot_id", e.name))?.parse::<u64>().map_err(|_| {
            format!("{}: slot_id must be a whole number, got {}", e.name, quoted(e.field("slot_id").unwrap_or("")))
        })?;
    if e.name == "slot_started" {
        if open.contains_key(&slot_id) {
            return Err(format!("slot {slot_id} started again before it finished"));
        }
        if open.len() == MAX_OPEN_SLOTS {
            return Err(format!("more than {MAX_OPEN_SLOTS} slots started and not finished at once"));
        }
        let deadline = micros(e, "deadline_ms")?;
        totals.deadline_us =
            Some(totals.deadline_us.map_or((deadline, deadline), |(lo, hi)| (lo.min(deadline), hi.max(deadline))));
        open.insert(slot_id, OpenSlot::default());
        return Ok(None);
    }
    let Some(slot) = open.get_mut(&slot_id) else {
        return Err(format!("{} of slot {slot_id}, which has no slot_started before it", e.name));
    };
    let end = match e.name.as_str() {
        "stage_retry" => {
            let stage = stage_of(e)?;
            let retries = slot.retries.get_mut(stage);
            let next = whole(e, "next_attempt")?;
            if next != retries.len() as u64 + 1 {
                return Err(format!(
                    "stage_retry of {stage} says next_attempt {next}, but it is retry {}",
                    retries.len() + 1
                ));
            }
            retries.push(Retry {
                start_us: micros(e, "elapsed_ms")?,
                backoff_us: micros(e, "backoff_ms")?,
                reason: reason(e)?,
            });
            return Ok(None);
        }
        "slot_complete" => {
            End::Complete { deadline_met: flag(e, "deadline_met")?, clip_passed: flag(e, "clip_passed")? }
        }
        "slot_aborted" => End::Aborted,
        "slot_failed" => End::Failed { stage: stage_of(e)?, reason: reason(e)?, at_us: micros(e, "elapsed_ms")? },
        "slot_cancelled" => End::Cancelled,
        complete => {
            let stage = Stage::ALL.into_iter().find(|s| complete.starts_with(s.name())).expect("a *_complete event");
            let attempts = whole(e, "attempts")?;
            let retries = slot.retries.get(stage).len() as u64;
            if attempts != retries + 1 {
                return Err(format!(
                    "{complete} says {attempts} attempts, but {retries} retries of {stage} were logged"
                ));
            }
            *slot.complete.get_mut(stage) = Some((micros(e, "elapsed_ms")?, micros(e, "stage_ms")?));
            return Ok(None);
        }
    };
    Ok(Some((open.remove(&slot_id).expect("the slot is open"), end)))
}

/// Turns a finished slot's stages into attempt observations.
fn finish(slot: &OpenSlot, end: &End, totals: &mut Totals) {
    let done = |s: Stage| *slot.complete.get(s);
    if let Some(rows) = &mut totals.rows {
        rows.add(slot, end);
    }
    let end_of = |s: Stage| done(s).map(|(at, _)| at);
    for stage in Stage::ALL {
        // Where the stage's first attempt started: exact when it completed, else where the
        // scheduler starts it (the parallel pair at the slot's start, the others after their inputs).
        let start = match (done(stage), stage) {
            (Some((at, took)), _) => Some(at.saturating_sub(took)),
            (None, Stage::Audio | Stage::Image) => Some(0),
            (None, Stage::Video) => end_of(Stage::Audio).zip(end_of(Stage::Image)).map(|(a, i)| a.max(i)),
            (None, Stage::Clip) => end_of(Stage::Video),
        };
        let retries = slot.retries.get(stage);
        let failed_here = match end {
            End::Failed { stage: s, reason, at_us } if *s == stage => Some((*reason, *at_us)),
            _ => None,
        };
        let counts = totals.stages.get_mut(stage);
        // Without its inputs the stage never started (an abort or failure came first).
        let Some(mut attempt_start) = start else { continue };
        // Every attempt before the last ended where its retry's backoff began.
        for retry in retries {
            let ended = retry.start_us.saturating_sub(retry.backoff_us);
            observe(counts, retry.reason, ended.saturating_sub(attempt_start));
            attempt_start = retry.start_us;
        }
        match (done(stage), failed_here) {
            (Some((at, _)), _) => counts.samples.push(at.saturating_sub(attempt_start)),
            (None, Some((reason, at))) => observe(counts, reason, at.saturating_sub(attempt_start)),
            // Running when another stage failed or the slot was cancelled; an abort comes only
            // between stages, so an aborted slot's missing stage never started.
            (None, None) if matches!(end, End::Failed { .. } | End::Cancelled) => counts.censored += 1,
            (None, None) => {}
        }
    }
}

fn observe(counts: &mut StageCounts, reason: FailureKind, took_us: u64) {
    match reason {
        FailureKind::TimedOut => counts.timeouts += 1,
        FailureKind::DeadlineCapped | FailureKind::Cancelled => counts.censored += 1,
        FailureKind::ModelError | FailureKind::OutOfMemory | FailureKind::InvalidOutput => {
            counts.errors += 1;
            counts.error_us += took_us;
        }
    }
}

fn count_outcome(end: &End, o: &mut Outcomes) {
    match end {
        End::Complete { deadline_met, clip_passed } => {
            *if *deadline_met { &mut o.on_time } else { &mut o.late } += 1;
            o.clip_rejected += u64::from(!clip_passed);
        }
        End::Aborted => o.aborted += 1,
        End::Failed { .. } => o.failed += 1,
        End::Cancelled => o.cancelled += 1,
    }
}

fn stage_of(e: &RecordedEvent) -> Result<Stage, String> {
    let name = e.field("stage").ok_or_else(|| format!("{} has no stage", e.name))?;
    Stage::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("{}: stage must be one of audio, image, video, clip, got {}", e.name, quoted(name)))
}

fn reason(e: &RecordedEvent) -> Result<FailureKind, String> {
    let name = e.field("reason").ok_or_else(|| format!("{} has no reason", e.name))?;
    FailureKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
        let all: Vec<&str> = FailureKind::ALL.iter().map(|k| k.name()).collect();
        format!("{}: reason must be one of {}, got {}", e.name, all.join(", "), quoted(name))
    })
}

fn flag(e: &RecordedEvent, key: &str) -> Result<bool, String> {
    match e.field(key) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => {
            Err(format!("{}: {key} must be true or false, got {}", e.name, other.map_or("nothing".into(), quoted)))
        }
    }
}

fn whole(e: &RecordedEvent, key: &str) -> Result<u64, String> {
    let text = e.field(key).ok_or_else(|| format!("{} has no {key}", e.name))?;
    text.parse().map_err(|_| format!("{}: {key} must be a whole number, got {}", e.name, quoted(text)))
}

/// A millisecond field as whole microseconds (the resolution events are written with).
fn micros(e: &RecordedEvent, key: &str) -> Result<u64, String> {
    let text = e.field(key).ok_or_else(|| format!("{} has no {key}", e.name))?;
    match text.parse::<f64>() {
        Ok(ms) if (0.0..=MAX_SECONDS * 1e3).contains(&ms) => Ok((ms * 1e3).round() as u64),
        _ => {
            Err(format!("{}: {key} must be milliseconds from 0 to {}, got {}", e.name, MAX_SECONDS * 1e3, quoted(text)))
        }
    }
}

/// µs as seconds, exactly as many digits as needed.
fn seconds(us: u64) -> String {
    fmt_f64(us as f64 / 1e6)
}

/// A rate rounded to six significant digits.
fn rate(n: u64, of: u64) -> String {
    let p = n as f64 / of as f64;
    fmt_f64(format!("{p:.5e}").parse::<f64>().expect("a formatted float parses"))
}

/// At most [`MAX_KEPT_SAMPLES`] of the sorted samples (or rows), evenly spaced and with both
/// extremes.
fn kept<T: Copy>(sorted: &[T]) -> Vec<T> {
    let n = sorted.len();
    if n <= MAX_KEPT_SAMPLES {
        return sorted.to_vec();
    }
    let k = MAX_KEPT_SAMPLES;
    (0..k).map(|i| sorted[(i * (n - 1) + (k - 1) / 2) / (k - 1)]).collect()
}

fn render(names: &[String], totals: &Totals, base: Option<&Scenario>, options: &Options) -> String {
    let mut t = String::new();
    let o = &totals.outcomes;
    let _ = writeln!(
        t,
        "# Calibrated by `vortex-sim calibrate` from {} slots in {} event logs:",
        o.finished(),
        names.len()
    );
    for name in names.iter().take(NAMED_FILES) {
        let _ = writeln!(t, "#   {}", in_comment(name));
    }
    if names.len() > NAMED_FILES {
        let _ = writeln!(t, "#   and {} more", names.len() - NAMED_FILES);
    }
    let _ = writeln!(
        t,
        "# Outcomes seen: {} on time and {} late (of these, {} with the self-check rejected), {} aborted,\n\
         # {} failed; also {} cancelled and {} unfinished, used for their finished attempts only.",
        o.on_time, o.late, o.clip_rejected, o.aborted, o.failed, o.cancelled, o.unfinished
    );
    let _ = writeln!(t, "# Attempts per stage (successful = latency samples):");
    for stage in Stage::ALL {
        let c = totals.stages.get(stage);
        let mean_error = if c.errors > 0 {
            // The simulator fails an attempt after a uniform fraction of a drawn latency.
            let modelled = c.samples.iter().sum::<u64>() as f64 / c.samples.len().max(1) as f64 / 2.0;
            format!(
                " ({:.3} ms on average; the simulator's errors, {:.3})",
                c.error_us as f64 / c.errors as f64 / 1e3,
                modelled / 1e3
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "#   {:<5}  {} successful, {} errors{mean_error}, {} timed out, {} cut short (not counted)",
            stage.name(),
            c.samples.len(),
            c.errors,
            c.timeouts,
            c.censored
        );
    }
    let _ = writeln!(
        t,
        "# Slots that aborted, failed or were cut short before a stage give it no sample: a stage\n\
         # later in the slot is seen only in slots that reached it (docs/tuning.md)."
    );
    let (source, orchestration, cadence) = match base {
        Some(b) => (format!("the base scenario {}", in_comment(&b.origin)), b.orchestration.clone(), b.cadence),
        None => ("the documented defaults (no --base)".to_string(), Orchestration::default(), None),
    };
    let _ = writeln!(t, "# Not from the logs: orchestration, seed, slots and cadence come from\n# {source}.");
    let deadline = match (base, totals.deadline_us) {
        (Some(b), _) => seconds(b.deadline.as_micros() as u64),
        (None, Some((_, hi))) => seconds(hi),
        (None, None) => "45".to_string(),
    };
    if let Some((lo, hi)) = totals.deadline_us {
        let _ = writeln!(
            t,
            "# Slot deadlines seen: {} to {} s; deadline_s is {}.",
            seconds(lo),
            seconds(hi),
            if base.is_some() { "the base's" } else { "the largest seen" }
        );
    }
    let _ = writeln!(
        t,
        "# gpu.parallel_slowdown is 1 and there is no drift: the recorded latencies already include\n\
         # the pair's sharing of the GPU and any drift.\n"
    );
    let name = base.map_or_else(|| "calibrated".to_string(), |b| format!("{}-calibrated", b.name));
    let _ = writeln!(t, "name: {}", serde_yaml_ng::to_string(&name).expect("a string serializes").trim_end());
    let _ = writeln!(
        t,
        "description: Stage latencies and failure rates measured on {} recorded; orchestration from {}.",
        counted(o.finished(), "slot"),
        if base.is_some() { "the base scenario" } else { "the defaults" }
    );
    let seed = options.seed.or(base.map(|b| b.seed)).unwrap_or(1);
    let slots = options.slots.or(base.map(|b| b.slots)).unwrap_or(10_000);
    let _ = writeln!(t, "seed: {seed}\nslots: {slots}\ndeadline_s: {deadline}");
    let orchestration = serde_yaml_ng::to_string(&orchestration).expect("the orchestration serializes");
    let _ = writeln!(t, "orchestration:");
    for line in orchestration.lines() {
        let _ = writeln!(t, "  {line}");
    }
    let columns = totals.rows.as_ref().map(|rows| joint_columns(&mut t, rows));
    let _ = writeln!(t, "stages:");
    for stage in Stage::ALL {
        let samples = columns.as_ref().map(|c| c.get(stage).as_slice());
        write_stage(&mut t, stage, totals, samples);
    }
    let _ = writeln!(t, "gpu:\n  parallel_slowdown: 1");
    if let Some(c) = cadence {
        let _ =
            writeln!(t, "cadence:\n  interval_s: {}\n  cancel_granularity_s:", seconds(c.interval.as_micros() as u64));
        for stage in Stage::ALL {
            let _ = writeln!(t, "    {stage}: {}", seconds(c.cancel_granularity.get(stage).as_micros() as u64));
        }
    }
    t
}

/// Writes `joint_latency: true` with a comment on the rows, and returns the four lists: the rows
/// in order of their slot's total (max(audio, image) + video + clip, then the four latencies), so
/// that the order depends on the logs' content alone, evenly thinned to [`MAX_KEPT_SAMPLES`].
fn joint_columns(t: &mut String, rows: &Rows) -> PerStage<Vec<u64>> {
    let mut sorted = rows.completed();
    sorted.sort_unstable_by_key(|&[a, i, v, c]| (a.max(i) + v + c, [a, i, v, c]));
    let kept = kept(&sorted);
    let thinned = if kept.len() < sorted.len() {
        format!(" ({} evenly spaced ones of them are kept)", kept.len())
    } else {
        String::new()
    };
    let _ = writeln!(
        t,
        "# Joint rows (--joint): row r of every stage's list is one recorded slot, of {} rows{thinned}, in\n\
         # order of total: {} slots whose four stages completed at their first attempt, and {} aborted,\n\
         # or failed by a cut attempt, after audio and image completed at theirs, their missing stages\n\
         # from the complete slot nearest in audio latency (a cut attempt at least 1 ms past its cut).\n\
         # A slot's first attempts take one row; retries draw from their own stage's list. Other\n\
         # slots (a retry, an error, a timeout) give no row (docs/tuning.md).\njoint_latency: true",
        sorted.len(),
        rows.full.len(),
        rows.partial.len()
    );
    PerStage::from_fn(|stage| kept.iter().map(|row| row[stage.index()]).collect())
}

/// Writes one stage: `joint` is its column of the joint rows, else its samples are sorted.
fn write_stage(t: &mut String, stage: Stage, totals: &Totals, joint: Option<&[u64]>) {
    let c = totals.stages.get(stage);
    let mut sorted = c.samples.clone();
    sorted.sort_unstable();
    let samples = joint.map_or_else(|| kept(&sorted), <[u64]>::to_vec);
    let _ = writeln!(t, "  {stage}:");
    if joint.is_none() && samples.len() < sorted.len() {
        let _ = writeln!(
            t,
            "    # {} successful attempts seen; {} evenly spaced ones of them, in sorted order, are kept",
            sorted.len(),
            samples.len()
        );
    }
    let _ = writeln!(t, "    latency:\n      empirical: [");
    for (i, chunk) in samples.chunks(PER_LINE).enumerate() {
        let line: Vec<String> = chunk.iter().map(|&us| seconds(us)).collect();
        let last = (i + 1) * PER_LINE >= samples.len();
        let _ = writeln!(t, "        {}{}", line.join(", "), if last { "" } else { "," });
    }
    let _ = writeln!(t, "      ]");
    let ended = c.samples.len() as u64 + c.errors;
    if c.timeouts > 0 {
        let _ = writeln!(
            t,
            "    hang: {}  # {} of {} attempts timed out",
            rate(c.timeouts, ended + c.timeouts),
            c.timeouts,
            ended + c.timeouts
        );
    }
    if c.errors > 0 {
        let _ = writeln!(
            t,
            "    transient_failure: {}  # {} of {} attempts that ended returned an error",
            rate(c.errors, ended),
            c.errors,
            ended
        );
    }
    let o = &totals.outcomes;
    if stage == Stage::Clip && o.clip_rejected > 0 {
        let completed = o.on_time + o.late;
        let _ = writeln!(
            t,
            "    reject: {}  # {} of {completed} completed slots",
            rate(o.clip_rejected, completed),
            o.clip_rejected
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals_of(log: &str) -> Result<(Totals, u64), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, log).unwrap();
        let mut totals = Totals::default();
        let finished = read_log(&path, &mut MAX_TOTAL_LOG_BYTES.clone(), &mut totals)?;
        Ok((totals, finished))
    }

    /// Slot 1: audio errs after 0.5005 s and its retry (after a 0.5 s backoff) takes 2 s; video
    /// times out. Slot 2: audio fails for good, so image is cut short. Slot 3 completes, rejected.
    /// Slot 4 never finishes. Events that tell no latency are skipped, with or without a slot.
    const LOG: &str = r#"
{"event":"slot_started","slot_id":1,"elapsed_ms":0,"deadline_ms":45000}
{"event":"stage_retry","slot_id":1,"elapsed_ms":1000.5,"stage":"audio","next_attempt":1,"backoff_ms":500,"reason":"model_error"}
{"event":"audio_complete","slot_id":1,"elapsed_ms":3000.5,"stage":"audio","attempts":2,"stage_ms":3000.5}
{"event":"image_complete","slot_id":1,"elapsed_ms":12000,"stage":"image","attempts":1,"stage_ms":12000}
{"event":"slot_started","slot_id":2,"elapsed_ms":0,"deadline_ms":30000}
{"event":"slot_failed","slot_id":1,"elapsed_ms":22000,"stage":"video","reason":"timed_out","attempts":1,"retry_skipped":"false"}
{"event":"stage_waiting","slot_id":2,"elapsed_ms":0,"stage":"audio"}
{"event":"model_loaded","model":"kokoro"}
{"event":"slot_failed","slot_id":2,"elapsed_ms":400,"stage":"audio","reason":"out_of_memory","attempts":1,"retry_skipped":true}
{"event":"slot_started","slot_id":3,"elapsed_ms":0,"deadline_ms":45000}
{"event":"image_complete","slot_id":3,"elapsed_ms":11000,"stage":"image","attempts":1,"stage_ms":11000}
{"event":"audio_complete","slot_id":3,"elapsed_ms":2000,"stage":"audio","attempts":1,"stage_ms":2000}
{"event":"video_complete","slot_id":3,"elapsed_ms":19000,"stage":"video","attempts":1,"stage_ms":8000}
{"event":"clip_complete","slot_id":3,"elapsed_ms":20000,"stage":"clip","attempts":1,"stage_ms":1000}
{"event":"slot_complete","slot_id":3,"elapsed_ms":20000,"total_ms":20000,"deadline_met":true,"clip_passed":"false"}
{"event":"slot_started","slot_id":4,"elapsed_ms":0,"deadline_ms":45000}
"#;

    #[test]
    fn attempts_are_recovered_from_retries_completions_and_failures() {
        let (t, finished) = totals_of(LOG).unwrap();
        assert_eq!(finished, 3);
        let s = &t.stages;
        assert_eq!(s.audio.samples, [2_000_000, 2_000_000]);
        assert_eq!((s.audio.errors, s.audio.error_us, s.audio.timeouts), (2, 500_500 + 400_000, 0));
        assert_eq!((s.image.samples.as_slice(), s.image.censored), (&[12_000_000, 11_000_000][..], 1));
        assert_eq!((s.video.samples.as_slice(), s.video.timeouts), (&[8_000_000][..], 1));
        assert_eq!((s.clip.samples.len(), s.clip.censored), (1, 0));
        let o = &t.outcomes;
        assert_eq!((o.on_time, o.failed, o.clip_rejected, o.unfinished), (1, 2, 1, 1));
        assert_eq!(t.deadline_us, Some((30_000_000, 45_000_000)));
    }

    /// Slots 1 and 2 complete; 3 aborts before video; 4's video is cut by the deadline 1.25 s in;
    /// 5 retries its audio. Latencies in ms: audio, image, video, clip.
    const JOINT_LOG: &str = r#"
{"event":"slot_started","slot_id":1,"elapsed_ms":0,"deadline_ms":45000}
{"event":"audio_complete","slot_id":1,"elapsed_ms":100,"stage":"audio","attempts":1,"stage_ms":100}
{"event":"image_complete","slot_id":1,"elapsed_ms":200,"stage":"image","attempts":1,"stage_ms":200}
{"event":"video_complete","slot_id":1,"elapsed_ms":500,"stage":"video","attempts":1,"stage_ms":300}
{"event":"clip_complete","slot_id":1,"elapsed_ms":510,"stage":"clip","attempts":1,"stage_ms":10}
{"event":"slot_complete","slot_id":1,"elapsed_ms":510,"deadline_met":true,"clip_passed":true}
{"event":"slot_started","slot_id":2,"elapsed_ms":0,"deadline_ms":45000}
{"event":"image_complete","slot_id":2,"elapsed_ms":200,"stage":"image","attempts":1,"stage_ms":200}
{"event":"audio_complete","slot_id":2,"elapsed_ms":500,"stage":"audio","attempts":1,"stage_ms":500}
{"event":"video_complete","slot_id":2,"elapsed_ms":1400,"stage":"video","attempts":1,"stage_ms":900}
{"event":"clip_complete","slot_id":2,"elapsed_ms":1420,"stage":"clip","attempts":1,"stage_ms":20}
{"event":"slot_complete","slot_id":2,"elapsed_ms":1420,"deadline_met":true,"clip_passed":true}
{"event":"slot_started","slot_id":3,"elapsed_ms":0,"deadline_ms":45000}
{"event":"audio_complete","slot_id":3,"elapsed_ms":480,"stage":"audio","attempts":1,"stage_ms":480}
{"event":"image_complete","slot_id":3,"elapsed_ms":250,"stage":"image","attempts":1,"stage_ms":250}
{"event":"slot_aborted","slot_id":3,"elapsed_ms":480,"checkpoint":"before_video"}
{"event":"slot_started","slot_id":4,"elapsed_ms":0,"deadline_ms":45000}
{"event":"audio_complete","slot_id":4,"elapsed_ms":120,"stage":"audio","attempts":1,"stage_ms":120}
{"event":"image_complete","slot_id":4,"elapsed_ms":150,"stage":"image","attempts":1,"stage_ms":150}
{"event":"slot_failed","slot_id":4,"elapsed_ms":1400,"stage":"video","reason":"deadline_capped","attempts":1,"retry_skipped":"false"}
{"event":"slot_started","slot_id":5,"elapsed_ms":0,"deadline_ms":45000}
{"event":"stage_retry","slot_id":5,"elapsed_ms":60,"stage":"audio","next_attempt":1,"backoff_ms":10,"reason":"model_error"}
{"event":"audio_complete","slot_id":5,"elapsed_ms":160,"stage":"audio","attempts":2,"stage_ms":160}
{"event":"image_complete","slot_id":5,"elapsed_ms":200,"stage":"image","attempts":1,"stage_ms":200}
{"event":"video_complete","slot_id":5,"elapsed_ms":500,"stage":"video","attempts":1,"stage_ms":300}
{"event":"clip_complete","slot_id":5,"elapsed_ms":510,"stage":"clip","attempts":1,"stage_ms":10}
{"event":"slot_complete","slot_id":5,"elapsed_ms":510,"deadline_met":true,"clip_passed":true}
"#;

    #[test]
    fn joint_rows_complete_aborted_and_cut_slots_from_the_nearest_audio() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, JOINT_LOG).unwrap();
        let mut totals = Totals { rows: Some(Rows::default()), ..Totals::default() };
        read_log(&path, &mut MAX_TOTAL_LOG_BYTES.clone(), &mut totals).unwrap();
        let rows = totals.rows.unwrap();
        assert_eq!(rows.full, [[100_000, 200_000, 300_000, 10_000], [500_000, 200_000, 900_000, 20_000]]);
        assert_eq!(rows.partial.len(), 2, "slot 5 retried its audio: no row");
        assert_eq!(
            rows.completed(),
            [
                [100_000, 200_000, 300_000, 10_000],
                [500_000, 200_000, 900_000, 20_000],
                // Slot 3's audio (480 ms) is nearest slot 2's: its video and clip.
                [480_000, 250_000, 900_000, 20_000],
                // Slot 4's is nearest slot 1's, whose 300 ms video is shorter than the 1,250 ms cut.
                [120_000, 150_000, 1_251_000, 10_000],
            ]
        );
        let text = calibrate(&[path], &Options { joint: true, ..Options::default() }).unwrap();
        assert!(text.contains("of 4 rows, in\n# order of total: 2 slots whose four stages"), "{text:.1500}");
        // In order of total: 510, 1400, 1411 and 1420 ms.
        assert!(text.contains("empirical: [\n        0.1, 0.48, 0.12, 0.5\n"), "{text}");
    }

    #[test]
    fn inconsistent_logs_are_refused_at_their_line() {
        for (log, want) in [
            ("{\"event\":\"audio_complete\",\"slot_id\":9}", ":1: audio_complete of slot 9, which has no slot_started"),
            ("\n\nnot json", ":3: not a JSON event object"),
            ("{\"event\":\"slot_started\",\"slot_id\":1}", ":1: slot_started has no deadline_ms"),
            ("{\"event\":\"slot_started\",\"slot_id\":-1,\"deadline_ms\":1}", "slot_id must be a whole number"),
            (
                "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":1}\n{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":1}",
                ":2: slot 1 started again before it finished",
            ),
            (
                "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":1}\n{\"event\":\"slot_failed\",\"slot_id\":1,\"elapsed_ms\":1,\"stage\":\"voice\"}",
                ":2: slot_failed: stage must be one of audio, image, video, clip, got \"voice\"",
            ),
            (
                "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":1}\n{\"event\":\"audio_complete\",\"slot_id\":1,\"elapsed_ms\":1,\"attempts\":2,\"stage_ms\":1}",
                ":2: audio_complete says 2 attempts, but 0 retries of audio were logged",
            ),
            ("{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":1e300}", "deadline_ms must be milliseconds from 0 to"),
        ] {
            let err = totals_of(log).err().unwrap_or_else(|| panic!("{log} was accepted"));
            assert!(err.contains(want), "{log}: {err}");
        }
    }

    #[test]
    fn a_log_named_with_a_newline_stays_one_comment_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two\nlines.jsonl");
        let slot = LOG.lines().skip_while(|l| !l.contains("\"slot_id\":3")).take(7).collect::<Vec<_>>().join("\n");
        std::fs::write(&path, slot).unwrap();
        let text = calibrate(&[path], &Options::default()).unwrap();
        assert!(text.contains("two\\nlines.jsonl\"\n"), "{text:.400}");
    }

    #[test]
    fn more_samples_than_kept_give_a_loadable_scenario_that_says_so() {
        let slots = MAX_KEPT_SAMPLES + 50;
        let mut log = String::new();
        for id in 0..slots {
            // Distinct latencies of 1.000 s to about 11 s, so that every stage has this many samples.
            let ms = 1000.0 + id as f64;
            let _ = writeln!(log, r#"{{"event":"slot_started","slot_id":{id},"elapsed_ms":0,"deadline_ms":45000}}"#);
            for (stage, at) in [("audio", ms), ("image", ms), ("video", 2.0 * ms), ("clip", 3.0 * ms)] {
                let _ = writeln!(
                    log,
                    r#"{{"event":"{stage}_complete","slot_id":{id},"elapsed_ms":{at},"stage":"{stage}","attempts":1,"stage_ms":{ms}}}"#
                );
            }
            let _ = writeln!(
                log,
                r#"{{"event":"slot_complete","slot_id":{id},"elapsed_ms":{},"deadline_met":true,"clip_passed":true}}"#,
                3.0 * ms
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.jsonl");
        std::fs::write(&path, log).unwrap();
        let text = calibrate(&[path], &Options::default()).unwrap();
        let note = format!("# {slots} successful attempts seen; {MAX_KEPT_SAMPLES} evenly spaced ones");
        assert_eq!(text.matches(&note).count(), 4, "{text:.3000}");
        assert!(
            text.contains("        1, 1.001,")
                && text.contains(&format!("{}\n      ]", seconds((1000 + slots as u64 - 1) * 1000)))
        );
        assert!((text.len() as u64) < vortex::yaml::MAX_YAML_BYTES / 2, "{} bytes", text.len());
    }

    #[test]
    fn kept_samples_are_evenly_spaced_order_statistics_with_both_extremes() {
        let sorted: Vec<u64> = (0..MAX_KEPT_SAMPLES as u64 * 3 + 7).collect();
        let kept = kept(&sorted);
        assert_eq!(kept.len(), MAX_KEPT_SAMPLES);
        assert_eq!((kept[0], *kept.last().unwrap()), (0, *sorted.last().unwrap()));
        let gaps: Vec<u64> = kept.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 3 || g == 4), "{:?}", &gaps[..10]);
        let few = [5, 6, 7];
        assert_eq!(super::kept(&few), few);
    }
}
