//! A scenario and seed always give byte-identical reports: in one process, across processes, and
//! with any number of workers. Replays reproduce the run's slots.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vortex_sim::{Override, Report, RunOptions, Scenario};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.yaml"))
}

fn load(name: &str, slots: u64) -> Arc<Scenario> {
    Arc::new(Scenario::load(&scenario_path(name), &[Override { key: "slots".into(), value: slots.into() }]).unwrap())
}

fn json(s: &Arc<Scenario>, workers: usize) -> String {
    Report::new(s, &vortex_sim::run(s, RunOptions { workers, progress: false })).to_json()
}

#[test]
fn same_scenario_twice_in_one_process_gives_identical_json() {
    let s = load("hang-storm", 3000);
    assert_eq!(json(&s, 0), json(&s, 0));
}

#[test]
fn report_does_not_depend_on_the_number_of_workers() {
    let s = load("tight-deadline", 5000);
    let one = json(&s, 1);
    assert_eq!(one, json(&s, 2));
    assert_eq!(one, json(&s, 3));
}

#[test]
fn two_processes_write_byte_identical_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, workers: &str| {
        let status = Command::new(env!("CARGO_BIN_EXE_vortex-sim"))
            .args(["run", "--slots", "4000", "--workers", workers, "--json"])
            .arg(out)
            .arg(scenario_path("rtx3060-thermal"))
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        std::fs::read(out).unwrap()
    };
    let a = run(&dir.path().join("a.json"), "1");
    let b = run(&dir.path().join("b.json"), "2");
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn replaying_a_slot_reproduces_its_outcome_in_the_run() {
    // tight-deadline: independent slots; drift: back-to-back slots whose backlog carries over.
    for name in ["tight-deadline", "drift"] {
        replays_match(load(name, 3000));
    }
}

fn replays_match(s: Arc<Scenario>) {
    let report = Report::new(&s, &vortex_sim::run(&s, RunOptions::default()));
    assert!(report.examples.len() >= 2, "expected several outcome kinds: {:?}", report.examples);
    for (kind, slots) in &report.examples {
        for &slot in slots {
            let replay = vortex_sim::replay(&s, slot);
            let replayed = vortex_sim::tally::SlotKind::of(&replay.result).name();
            if kind == "clip_rejected" {
                assert!(!replay.result.completed().unwrap().clip_passed, "slot {slot}");
            } else {
                assert_eq!(&replayed, kind, "slot {slot}");
            }
            assert_eq!(replay.events.first().map(|e| e.name.as_str()), Some("slot_started"));
            assert!(replay.events.last().is_some_and(|e| e.name.starts_with("slot_")));
            assert_eq!(replay.counterfactual.is_some(), kind.starts_with("aborted"));
            // The slot's own timeline has exactly one start and one end; the counterfactual's
            // events are kept apart.
            let starts = replay.events.iter().filter(|e| e.name == "slot_started").count();
            assert_eq!(starts, 1, "slot {slot}: {:?}", replay.events);
            if kind.starts_with("aborted") {
                assert_eq!(replay.events.last().unwrap().name, "slot_aborted", "slot {slot}");
                assert_eq!(replay.counterfactual_events.first().unwrap().name, "slot_started");
                let text = vortex_sim::runner::render_replay(&s, slot, &replay);
                assert!(text.contains("\ncounterfactual: the same slot re-run"), "{text}");
            } else {
                assert!(replay.counterfactual_events.is_empty());
            }
        }
    }
}
