//! Finished slots on disk: `OUT_DIR/slot-ID/`, each written whole by
//! [`crate::director::files::write_run`], found again at start-up.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::director::files::{self, ResultFile, StageCounts, StageMs};

use super::queue::Status;

/// The prefix of a slot's folder name: `slot-42`.
pub const SLOT_PREFIX: &str = "slot-";

/// The folder of a slot.
pub fn slot_dir(out_dir: &Path, slot_id: u64) -> PathBuf {
    out_dir.join(format!("{SLOT_PREFIX}{slot_id}"))
}

/// What the service keeps in memory of a finished slot (its `result.json` stays on disk).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The slot.
    pub slot_id: u64,
    /// `delivered`, `flawed` (late or rejected by the self-check), `aborted` or `failed`.
    pub outcome: &'static str,
    /// Where it stopped (`before_video`) or why it failed (`video: timed_out`); empty otherwise.
    pub detail: String,
    /// Time per stage and in total.
    pub timing_ms: StageMs,
    /// Attempts per stage.
    pub attempts: StageCounts,
    /// Wall-clock end, RFC 3339.
    pub ended_at: String,
}

impl Summary {
    /// The summary of a result.
    pub fn of(result: &ResultFile) -> Summary {
        let outcome = match result.outcome.as_str() {
            "completed" if result.deadline_met == Some(true) && result.clip_passed == Some(true) => "delivered",
            "completed" => "flawed",
            "aborted" => "aborted",
            _ => "failed",
        };
        let detail = match (&result.abort, &result.failure) {
            (Some(a), _) => a.checkpoint.clone(),
            (_, Some(f)) => format!("{}: {}", f.stage, f.reason),
            _ if outcome == "flawed" => {
                if result.deadline_met == Some(false) {
                    "late".into()
                } else {
                    "rejected by the self-check".into()
                }
            }
            _ => String::new(),
        };
        Summary {
            slot_id: result.slot_id,
            outcome,
            detail,
            timing_ms: result.timing_ms,
            attempts: result.attempts,
            ended_at: result.ended_at.clone(),
        }
    }
}

/// What start-up found in the output folder.
#[derive(Debug, Default)]
pub struct Found {
    /// Every slot folder, by id, oldest end first.
    pub slots: Vec<(u64, Status)>,
    /// Staging folders of a write that never finished (a crash mid-write), removed.
    pub removed: Vec<PathBuf>,
}

/// Creates the output folder if needed, removes staging folders left by a crash mid-write
/// (`.slot-ID.tmp-*`: never renamed into place, so never a slot), and reads every `slot-ID`
/// folder's result. A folder whose result cannot be read keeps its id taken (so a new slot
/// never writes over it) and is reported, not fatal.
pub fn scan(out_dir: &Path) -> Result<Found, String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("service.out_dir {}: cannot create: {e}", out_dir.display()))?;
    let entries =
        std::fs::read_dir(out_dir).map_err(|e| format!("service.out_dir {}: cannot list: {e}", out_dir.display()))?;
    let mut found = Found::default();
    let mut finished = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("service.out_dir {}: cannot list: {e}", out_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(&format!(".{SLOT_PREFIX}")) && name.contains(".tmp-") {
            std::fs::remove_dir_all(&path)
                .map_err(|e| format!("{}: cannot remove a partial slot: {e}", path.display()))?;
            found.removed.push(path);
            continue;
        }
        let Some(id) = name.strip_prefix(SLOT_PREFIX).and_then(|n| n.parse::<u64>().ok()) else { continue };
        if id.to_string() != name[SLOT_PREFIX.len()..] {
            continue;
        }
        match files::read_result(&path) {
            Ok(result) if result.slot_id == id => finished.push((result.ended_at.clone(), id, Summary::of(&result))),
            Ok(result) => found
                .slots
                .push((id, Status::Unreadable(format!("{}: holds slot {}'s result", path.display(), result.slot_id)))),
            Err(e) => found.slots.push((id, Status::Unreadable(e))),
        }
    }
    // RFC 3339 UTC times of one format sort as text.
    finished.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    found.slots.extend(finished.into_iter().map(|(_, id, s)| (id, Status::Finished(Box::new(s)))));
    Ok(found)
}
