//! A scenario and seed always give byte-identical reports: in one process, across processes, and
//! with any number of workers. Replays reproduce the run's slots.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vortex_sim::{Override, Scenario, Simulator, SlotKind};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.yaml"))
}

fn load(name: &str, slots: u64) -> Arc<Scenario> {
    Arc::new(Scenario::load(&scenario_path(name), &[Override::from_flag("--slots", "slots", slots)]).unwrap())
}

fn json(s: &Arc<Scenario>, workers: usize) -> String {
    Simulator::new(s.clone()).workers(workers).run().report().to_json()
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
    let simulator = Simulator::new(s.clone());
    let report = simulator.run().report();
    assert!(report.examples.len() >= 2, "expected several outcome kinds: {:?}", report.examples);
    for (kind, slots) in &report.examples {
        for &slot in slots {
            let replay = simulator.replay(slot).unwrap();
            let replayed = SlotKind::of(&replay.result).name();
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
                let text = simulator.render_replay(slot, &replay);
                assert!(text.contains("\ncounterfactual: the same slot re-run"), "{text}");
            } else {
                assert!(replay.counterfactual_events.is_empty());
            }
        }
    }
}

#[test]
fn shards_merge_into_the_unsharded_report_byte_for_byte() {
    // 5,000 slots are five chunks; three shards take two, two and one of them.
    let s = load("tight-deadline", 5000);
    let whole = json(&s, 0);
    let simulator = Simulator::new(s.clone());
    let mut files: Vec<(String, String)> = (0..3)
        .map(|k| {
            let run = simulator.run_shard(vortex_sim::Shard { index: k, count: 3 }).unwrap();
            (format!("shard{k}.json"), run.to_shard_json())
        })
        .collect();
    files.reverse(); // any order
    let vortex_sim::Merged::Run(merged) = vortex_sim::merge(&files).unwrap() else { panic!("a run merges to a run") };
    assert_eq!(merged.report().to_json(), whole);
    // Incomplete, repeated or foreign shards are refused.
    let err = vortex_sim::merge(&files[..2]).unwrap_err();
    assert!(err.contains("missing shard(s) 0/3"), "{err}");
    let twice = [files.clone(), vec![files[0].clone()]].concat();
    assert!(vortex_sim::merge(&twice).unwrap_err().contains("was given twice"));
    let other =
        Simulator::new(load("tight-deadline", 4000)).run_shard(vortex_sim::Shard { index: 0, count: 3 }).unwrap();
    let mixed = [vec![("other.json".to_string(), other.to_shard_json())], files[..2].to_vec()].concat();
    assert!(vortex_sim::merge(&mixed).unwrap_err().contains("a shard of another run"), "mixed runs");
    let err = vortex_sim::merge(&[("x.json".into(), "{}".into())]).unwrap_err();
    assert!(err.starts_with("x.json: not a vortex-sim shard file"), "{err}");
}

#[test]
fn back_to_back_runs_refuse_to_shard_but_their_sweeps_shard_by_point() {
    let s = load("back-to-back", 2000);
    let err = Simulator::new(s.clone()).run_shard(vortex_sim::Shard { index: 0, count: 2 }).unwrap_err();
    assert!(err.contains("cannot be sharded: its slots run back to back"), "{err}");
    let objective: vortex_sim::sweep::Objective = "max:on_time subject_to:false_abort<=0.01".parse().unwrap();
    let vary: Vec<vortex_sim::sweep::Vary> = vec!["orchestration.deadline_buffer_s=0..4:1".parse().unwrap()];
    let base = [Override::from_flag("--slots", "slots", 2000u64)];
    let simulator = Simulator::new(Scenario::load(&scenario_path("back-to-back"), &base).unwrap());
    let whole = simulator.sweep(&vary, vortex_sim::Shard::WHOLE).unwrap().report(&objective).to_json();
    let files: Vec<(String, String)> = (0..2)
        .map(|k| {
            let part = simulator.sweep(&vary, vortex_sim::Shard { index: k, count: 2 }).unwrap();
            (format!("sweep{k}.json"), part.to_shard_json(&objective, &base))
        })
        .collect();
    let vortex_sim::Merged::Sweep(merged) = vortex_sim::merge(&files).unwrap() else {
        panic!("a sweep merges to a sweep")
    };
    assert_eq!(merged.report.to_json(), whole);
    assert_eq!(merged.objective, objective);
}
