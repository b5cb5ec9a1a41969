//! A slot's folder: `audio.wav`, the clip (`slot.mp4`, or `video.y4m` without ffmpeg),
//! `actor.png`, `result.json` and `events.jsonl`, written whole or not at all.
//!
//! Everything is written into a temporary folder beside the target and renamed into place at
//! the end, so a reader (or a restarted service) sees the complete folder or none. An aborted or
//! failed slot's folder holds `result.json` and `events.jsonl` only: the scheduler keeps no
//! output of a slot that did not complete, and half a clip is nothing to air.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vortex::{AttemptResult, FailReason, Outcome, Recipe, Stage};

use super::SlotRun;
use crate::media::{self, Video};
use crate::verification::ClipVerdict;

/// `result.json`.
pub const RESULT_FILE: &str = "result.json";
/// `events.jsonl`: the slot's events, one JSON object a line.
pub const EVENTS_FILE: &str = "events.jsonl";
/// `audio.wav`: the speech, 16-bit mono at 24 kHz.
pub const AUDIO_FILE: &str = "audio.wav";
/// `actor.png`: the image stage's actor.
pub const ACTOR_FILE: &str = "actor.png";
/// `slot.mp4`: the clip with its audio, H.264 + AAC, when ffmpeg is on PATH.
pub const MP4_FILE: &str = "slot.mp4";
/// `video.y4m`: the clip's frames without ffmpeg (its audio is `audio.wav`).
pub const Y4M_FILE: &str = "video.y4m";

/// The largest `result.json` read back: the consensus embedding (1,280 numbers for the
/// published CLIPs) and a recipe of at most 64 KiB fit many times over.
pub const MAX_RESULT_BYTES: u64 = 1 << 20;

/// Reads a slot folder's `result.json` back (a restarted service finds its finished slots so):
/// a regular file of at most [`MAX_RESULT_BYTES`], in the format [`write_run`] writes. Errors
/// name the file.
pub fn read_result(dir: &Path) -> Result<ResultFile, String> {
    let path = dir.join(RESULT_FILE);
    let text = crate::loading::read_text_limited(&path, MAX_RESULT_BYTES, "a slot's result.json")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a slot's result: {}", path.display(), crate::loading::quote(e)))
}

/// What `result.json` holds. Times are milliseconds from the slot's start, like the events'
/// `elapsed_ms`; `started_at` and `ended_at` are RFC 3339 UTC wall-clock times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultFile {
    /// The recipe's slot id.
    pub slot_id: u64,
    /// `completed`, `aborted` or `failed`.
    pub outcome: String,
    /// Completed slots: ended by the deadline.
    pub deadline_met: Option<bool>,
    /// Completed slots: the CLIP self-check passed.
    pub clip_passed: Option<bool>,
    /// The deadline, from the slot's start.
    pub deadline_ms: f64,
    /// Wall-clock start.
    pub started_at: String,
    /// Wall-clock end.
    pub ended_at: String,
    /// Time per finished stage (first attempt to success, retries included) and in total.
    pub timing_ms: StageMs,
    /// Attempts started per stage.
    pub attempts: StageCounts,
    /// Every attempt in the order it started.
    pub attempt_log: Vec<AttemptEntry>,
    /// Aborted slots: where and why.
    pub abort: Option<AbortEntry>,
    /// Failed slots: which stage and why.
    pub failure: Option<FailureEntry>,
    /// Completed slots: the self-check's scores, verdict and consensus embedding.
    pub clip: Option<ClipVerdict>,
    /// Completed slots: the clip's shape.
    pub media: Option<MediaEntry>,
    /// The files of the folder besides `result.json`, by name.
    pub files: Vec<String>,
    /// The recipe as run.
    pub recipe: Recipe,
}

/// Milliseconds per stage (null for a stage that did not finish) and in total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageMs {
    /// Audio (Kokoro).
    pub audio_ms: Option<f64>,
    /// Image (Flux).
    pub image_ms: Option<f64>,
    /// Video (LivePortrait).
    pub video_ms: Option<f64>,
    /// Self-check (CLIP).
    pub clip_ms: Option<f64>,
    /// Slot start to end; not the sum, as audio and image overlap.
    pub total_ms: f64,
}

/// A count per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCounts {
    /// Audio.
    pub audio: u32,
    /// Image.
    pub image: u32,
    /// Video.
    pub video: u32,
    /// Clip.
    pub clip: u32,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptEntry {
    /// `audio`, `image`, `video` or `clip`.
    pub stage: String,
    /// 0 for the first attempt.
    pub attempt: u32,
    /// Start, from the slot's start.
    pub start_ms: f64,
    /// How long it ran.
    pub duration_ms: f64,
    /// `ok`, `cancelled`, or the failure kind (`timed_out`, `model_error`, ...).
    pub result: String,
}

/// A predictive abort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortEntry {
    /// `before_start`, `before_video` or `before_clip`.
    pub checkpoint: String,
    /// When it stopped.
    pub elapsed_ms: f64,
    /// When the predictor expected it to finish.
    pub predicted_finish_ms: f64,
}

/// A stage that ran out of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureEntry {
    /// The stage.
    pub stage: String,
    /// The failure kind of its last attempt (`timed_out`, `deadline_capped`, `model_error`, ...).
    pub reason: String,
    /// The model's error message, for a failure that was not a timeout.
    pub error: Option<String>,
    /// Attempts made at that stage.
    pub attempts: u32,
    /// True when a retry was allowed but could no longer fit before the deadline.
    pub retry_skipped: bool,
}

/// The clip's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaEntry {
    /// Speech samples.
    pub audio_samples: usize,
    /// Their rate, Hz.
    pub sample_rate: u32,
    /// Frames of the video (the speech's duration × fps, rounded up).
    pub frames: usize,
    /// Frames per second.
    pub fps: f32,
    /// Frame width, pixels.
    pub width: u32,
    /// Frame height, pixels.
    pub height: u32,
    /// The video file: `slot.mp4` (with the audio) or `video.y4m` (beside `audio.wav`).
    pub video_file: String,
}

/// Why a slot's folder could not be written; names the flag (or setting) and the path.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {reason}")]
pub struct WriteError {
    flag: String,
    path: String,
    reason: String,
}

/// A folder a slot may be written to: checked before any work starts.
#[derive(Debug, Clone)]
pub struct OutDir {
    flag: String,
    path: PathBuf,
}

impl OutDir {
    /// Checks that `path` (given with `flag`, named in errors) can become the slot's folder: it
    /// does not exist or is an empty folder, and its parent is a folder that accepts a new one.
    /// Creates nothing.
    pub fn check(flag: &str, path: &Path) -> Result<OutDir, WriteError> {
        let out = OutDir { flag: flag.to_string(), path: path.to_path_buf() };
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(out.error(format!("cannot inspect: {e}"))),
            Ok(meta) if meta.is_dir() => {
                let mut entries = std::fs::read_dir(path).map_err(|e| out.error(format!("cannot list: {e}")))?;
                if entries.next().is_some() {
                    return Err(out.error(
                        "exists and is not empty; give a new folder (a slot's files are never mixed with others)",
                    ));
                }
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(out.error("is a symbolic link; give a new folder"));
            }
            Ok(_) => return Err(out.error("exists and is not a folder; give a new folder")),
        }
        let parent = out.parent();
        let scratch = tempfile::Builder::new()
            .prefix(".vortex-check")
            .tempdir_in(parent)
            .map_err(|e| out.error(format!("cannot create a folder in {}: {e}", parent.display())))?;
        drop(scratch);
        Ok(out)
    }

    /// The folder's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parent(&self) -> &Path {
        self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    fn error(&self, reason: impl Into<String>) -> WriteError {
        WriteError { flag: self.flag.clone(), path: self.path.display().to_string(), reason: reason.into() }
    }
}

/// What [`write_run`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The folder.
    pub dir: PathBuf,
    /// Its files, by name.
    pub files: Vec<String>,
    /// Said to the operator when the clip is not an mp4 because ffmpeg is missing.
    pub note: Option<String>,
}

/// Writes a run into its folder, whole or not at all. The clip is `slot.mp4` (through ffmpeg)
/// when `mp4` is true (callers pass [`media::ffmpeg_on_path`]), else `video.y4m`.
pub fn write_run(run: &SlotRun, out: &OutDir, mp4: bool) -> Result<Written, WriteError> {
    let name = out.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "slot".into());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(out.parent())
        .map_err(|e| out.error(format!("cannot create a folder in {}: {e}", out.parent().display())))?;
    let dir = staging.path();
    let io = |what: &str, e: std::io::Error| out.error(format!("writing {what}: {e}"));
    let mut files = Vec::new();
    let mut media_entry = None;
    let mut note = None;
    if let Some(completed) = run.report.completed() {
        let outputs = &completed.outputs;
        let wav = media::wav_16bit(&outputs.audio.samples, outputs.audio.sample_rate);
        write_file(&dir.join(AUDIO_FILE), &wav).map_err(|e| io(AUDIO_FILE, e))?;
        files.push(AUDIO_FILE.to_string());
        let mut png = Vec::new();
        outputs
            .image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| out.error(format!("encoding {ACTOR_FILE}: {e}")))?;
        write_file(&dir.join(ACTOR_FILE), &png).map_err(|e| io(ACTOR_FILE, e))?;
        files.push(ACTOR_FILE.to_string());
        let video_file = write_video(dir, &outputs.video, mp4).map_err(|e| io("the video", e))?;
        if !mp4 {
            note = Some(format!(
                "no H.264 encoder: ffmpeg is not on PATH, so the clip is {Y4M_FILE} + {AUDIO_FILE}; \
                 `ffmpeg -i {Y4M_FILE} -i {AUDIO_FILE} -c:v libx264 -pix_fmt yuv420p -c:a aac {MP4_FILE}` makes it"
            ));
        }
        files.push(video_file.to_string());
        let (width, height) = outputs.video.frames.first().map_or((0, 0), |f| f.dimensions());
        media_entry = Some(MediaEntry {
            audio_samples: outputs.audio.samples.len(),
            sample_rate: outputs.audio.sample_rate,
            frames: outputs.video.frames.len(),
            fps: outputs.video.fps,
            width,
            height,
            video_file: video_file.to_string(),
        });
    }
    let mut events = String::new();
    for event in &run.events {
        events.push_str(&event.to_json_line());
        events.push('\n');
    }
    write_file(&dir.join(EVENTS_FILE), events.as_bytes()).map_err(|e| io(EVENTS_FILE, e))?;
    files.push(EVENTS_FILE.to_string());
    let result = result_file(run, files.clone(), media_entry);
    let json = serde_json::to_vec_pretty(&result).expect("a result of plain fields serializes");
    write_file(&dir.join(RESULT_FILE), &json).map_err(|e| io(RESULT_FILE, e))?;
    let finished = staging.keep();
    // rename(2) replaces an empty folder and refuses a non-empty one: a folder that filled up
    // since the check is left alone.
    if let Err(e) = std::fs::rename(&finished, &out.path) {
        let _ = std::fs::remove_dir_all(&finished);
        return Err(out.error(format!("cannot move the finished folder into place: {e}")));
    }
    let mut all = files;
    all.push(RESULT_FILE.to_string());
    Ok(Written { dir: out.path.clone(), files: all, note })
}

/// Writes the clip into `dir`: an mp4 through ffmpeg (from a scratch `.y4m`, removed after), or
/// the `.y4m` itself. Returns the file's name.
fn write_video(dir: &Path, video: &Video, mp4: bool) -> std::io::Result<&'static str> {
    let y4m = if mp4 { dir.join(".frames.y4m") } else { dir.join(Y4M_FILE) };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&y4m)?);
    media::write_y4m(&mut file, video)?;
    let file = file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    if !mp4 {
        file.sync_all()?;
        return Ok(Y4M_FILE);
    }
    drop(file);
    media::mux_mp4(&y4m, &dir.join(AUDIO_FILE), &dir.join(MP4_FILE))?;
    std::fs::remove_file(&y4m)?;
    std::fs::File::open(dir.join(MP4_FILE))?.sync_all()?;
    Ok(MP4_FILE)
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Milliseconds to three decimals (microseconds), as the events write them: a timeline needs
/// no more, and `0.07425899999999999` reads worse than `0.074`.
fn micros(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// The run as `result.json` says it.
pub fn result_file(run: &SlotRun, files: Vec<String>, media: Option<MediaEntry>) -> ResultFile {
    let report = &run.report;
    let ms = |d: std::time::Duration| micros(vortex::outcome::ms(d));
    let stage_ms = |s: Stage| report.timing.stage_ms.get(s).map(micros);
    let count = |s: Stage| *report.attempts.get(s);
    let (mut deadline_met, mut clip_passed, mut abort, mut failure, mut clip) = (None, None, None, None, None);
    let outcome = match &report.outcome {
        Outcome::Completed(c) => {
            deadline_met = Some(c.deadline_met);
            clip_passed = Some(c.clip_passed);
            clip = Some(c.outputs.verdict.clone());
            "completed"
        }
        Outcome::Aborted(a) => {
            abort = Some(AbortEntry {
                checkpoint: a.checkpoint.name().to_string(),
                elapsed_ms: ms(a.elapsed),
                predicted_finish_ms: ms(a.predicted_finish),
            });
            "aborted"
        }
        Outcome::Failed(f) => {
            failure = Some(FailureEntry {
                stage: f.stage.name().to_string(),
                reason: f.reason.kind().name().to_string(),
                error: match &f.reason {
                    FailReason::Error(e) => Some(e.message().to_string()),
                    FailReason::TimedOut { .. } => None,
                },
                attempts: f.attempts,
                retry_skipped: f.retry_skipped,
            });
            "failed"
        }
    };
    ResultFile {
        slot_id: report.meta.slot_id,
        outcome: outcome.to_string(),
        deadline_met,
        clip_passed,
        deadline_ms: ms(report.meta.deadline),
        started_at: humantime::format_rfc3339_millis(run.started_at).to_string(),
        ended_at: humantime::format_rfc3339_millis(run.ended_at).to_string(),
        timing_ms: StageMs {
            audio_ms: stage_ms(Stage::Audio),
            image_ms: stage_ms(Stage::Image),
            video_ms: stage_ms(Stage::Video),
            clip_ms: stage_ms(Stage::Clip),
            total_ms: micros(report.timing.total_ms),
        },
        attempts: StageCounts {
            audio: count(Stage::Audio),
            image: count(Stage::Image),
            video: count(Stage::Video),
            clip: count(Stage::Clip),
        },
        attempt_log: report
            .log
            .iter()
            .map(|a| AttemptEntry {
                stage: a.stage.name().to_string(),
                attempt: a.attempt,
                start_ms: ms(a.start),
                duration_ms: ms(a.duration),
                result: match a.result {
                    AttemptResult::Ok => "ok".to_string(),
                    AttemptResult::Cancelled => "cancelled".to_string(),
                    AttemptResult::Failed(kind) => kind.name().to_string(),
                },
            })
            .collect(),
        abort,
        failure,
        clip,
        media,
        files,
        recipe: run.recipe.clone(),
    }
}
