//! `vortex-sim` through the real binary: reports, plots, replays and clear errors.
#![cfg(madsim)]

mod common;

use std::path::PathBuf;

use common::{nominal, sim, stderr};

#[test]
fn run_prints_the_table_and_writes_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let plot = dir.path().join("latency.svg");
    let out =
        sim(&["run", &nominal(), "--slots", "500", "--json", json.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("scenario rtx3060-nominal  seed 1  slots 500"), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in ["scenario", "seed", "slots", "outcomes", "rates", "retries", "latency_ms", "wasted_gpu_s", "examples"] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    assert_eq!(report["slots"], 500);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("deadline 45 s") && svg.contains("abort threshold 40 s"),
        "{svg:.300}"
    );
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(leftovers.len(), 2, "temporary files left behind: {leftovers:?}");
}

#[test]
fn set_overrides_any_key_and_bad_values_name_the_key() {
    let out = sim(&["run", &nominal(), "--slots", "200", "--set", "orchestration.deadline_buffer_s=4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("buffer 4 s"));
    let out = sim(&["run", &nominal(), "--set", "orchestration.timeouts.image_s=-3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        // The bad value came from the command line, so the error blames the flag, not the file.
        stderr(&out).contains("error: --set orchestration.timeouts.image_s=-3: orchestration.timeouts.image_s: expected a number of seconds above 0 and at most 86400, got -3"),
        "{}",
        stderr(&out)
    );
    let out = sim(&["run", &nominal(), "--set", "stages.audio.hang=1.5"]);
    assert!(
        stderr(&out).contains("stages.audio.hang: expected a probability from 0 to 1, got 1.5"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_scenarios_are_refused_with_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(nominal()).unwrap().replace("config: ../config.yaml\n", "");
    let cases = [
        (text.replace("slots: 10000", "slot: 10000"), "bad.yaml: slot: unknown field `slot`"),
        (
            text.replace("{ lognormal: { median: 2.0, p99: 2.9 } }", "{ lognormal: { median: 2.0, p90: 2.9 } }"),
            "bad.yaml: stages.audio.latency.lognormal.p90: unknown field `p90`",
        ),
        (
            text.replace("parallel_slowdown: 1.0", "parallel_slowdown: 0.5"),
            "bad.yaml: gpu.parallel_slowdown: expected a number from 1 (perfect overlap) to 100, got 0.5",
        ),
        (
            text.replace("    transient_failure: 0.005", "    reject: 0.1"),
            "bad.yaml: stages.audio.reject: only the clip stage",
        ),
        (text.replace("slots: 10000", "slots: 0"), "bad.yaml: slots: expected a slot count from 1 to"),
        (
            text.replace("  clip:\n    latency: { uniform: [0.8, 1.2] }\n    reject: 0.01\n", ""),
            "bad.yaml: stages: missing field `clip`",
        ),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let json = dir.path().join("out.json");
        let out = sim(&["run", path.to_str().unwrap(), "--json", json.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "accepted: {expected}");
        assert!(stderr(&out).contains(expected), "expected {expected:?} in {}", stderr(&out));
        assert!(!json.exists(), "a refused scenario must write nothing");
    }
}

#[test]
fn replay_prints_the_timeline_and_refuses_slots_out_of_range() {
    let out = sim(&["replay", &nominal(), "--slot", "104"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("slot_started") && text.contains("outcome: "), "{text}");
    let out = sim(&["replay", &nominal(), "--slot", "10000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--slot 10000 is out of range"), "{}", stderr(&out));
}

#[test]
fn sharded_runs_merge_into_the_same_report_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let out = sim(&["run", &nominal(), "--slots", "3000", "--json", &path("whole.json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    for k in 0..2 {
        let out = sim(&[
            "run",
            &nominal(),
            "--slots",
            "3000",
            "--shard",
            &format!("{k}/2"),
            "--json",
            &path(&format!("{k}.json")),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("simulated shard {k}/2")), "{}", stderr(&out));
    }
    let out = sim(&["merge", &path("1.json"), &path("0.json"), "--json", &path("merged.json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("scenario rtx3060-nominal  seed 1  slots 3000"));
    assert_eq!(std::fs::read(path("merged.json")).unwrap(), std::fs::read(path("whole.json")).unwrap());
    let out = sim(&["run", &nominal(), "--shard", "2/2", "--json", &path("x.json")]);
    assert!(stderr(&out).contains("expected K/N with N from 1 to 10000 and K from 0 to N-1"), "{}", stderr(&out));
    let out = sim(&["run", &nominal(), "--shard", "0/2"]);
    assert!(stderr(&out).contains("--json"), "a shard needs somewhere to go: {}", stderr(&out));
}
