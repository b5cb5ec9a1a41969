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

/// Replays slots `0..n` of the nominal scenario into one event log each, through `--events`.
fn replayed_logs(dir: &std::path::Path, n: u64) -> Vec<String> {
    (0..n)
        .map(|slot| {
            let path = dir.join(format!("slot-{slot}.jsonl"));
            let out = sim(&["replay", &nominal(), "--slot", &slot.to_string(), "--events", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}", stderr(&out));
            path.display().to_string()
        })
        .collect()
}

#[test]
fn replay_writes_the_slots_events_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let out = sim(&["replay", &nominal(), "--slot", "104", "--events", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<_> = text.lines().map(|l| vortex::events::RecordedEvent::from_json_line(l).unwrap()).collect();
    assert_eq!(events.first().unwrap().name, "slot_started");
    assert!(events.last().unwrap().name.starts_with("slot_"), "{text}");
    for e in &events {
        // Every event of the file is one the text timeline shows, at the same time.
        let at = format!("{:.3} ms  {}", e.number("elapsed_ms").unwrap(), e.name);
        assert!(printed.contains(&at), "{at} not in\n{printed}");
        assert_eq!(e.field("slot_id"), Some("104"));
    }
    let out = sim(&["replay", &nominal(), "--slot", "1", "--events", dir.path().to_str().unwrap()]);
    assert!(stderr(&out).contains("--events") && stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn calibrate_writes_a_scenario_that_runs_and_does_not_depend_on_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = replayed_logs(dir.path(), 12);
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    let calibrate = |logs: &[String], out: &std::path::Path| {
        let mut args = vec!["calibrate", "--out", out.to_str().unwrap(), "--base"];
        let base = nominal();
        args.push(&base);
        args.extend(logs.iter().map(String::as_str));
        sim(&args)
    };
    let out = calibrate(&logs, &a);
    assert!(out.status.success(), "{}", stderr(&out));
    logs.reverse();
    assert!(calibrate(&logs, &b).status.success());
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap(), "log order changed the scenario");
    assert!(text.starts_with("# Calibrated by `vortex-sim calibrate` from 12 slots in 12 event logs"), "{text:.300}");
    assert!(text.contains("name: rtx3060-nominal-calibrated") && text.contains("empirical: ["), "{text:.2000}");
    let out = sim(&["run", a.to_str().unwrap(), "--slots", "300"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("scenario rtx3060-nominal-calibrated"));
}

#[test]
fn calibrate_refuses_bad_logs_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = replayed_logs(dir.path(), 1).remove(0);
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let not_json = file("not-json.jsonl", "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":45000}\nhello\n");
    let unfinished = file("unfinished.jsonl", "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":45000}\n");
    let aborted = file(
        "aborted.jsonl",
        "{\"event\":\"slot_started\",\"slot_id\":1,\"deadline_ms\":45000}\n\
         {\"event\":\"slot_aborted\",\"slot_id\":1,\"elapsed_ms\":0,\"checkpoint\":\"before_start\"}\n",
    );
    let huge = dir.path().join("huge.jsonl");
    // Sparse: the size check comes before any byte is read.
    std::fs::File::create(&huge).unwrap().set_len(vortex_sim::calibrate::MAX_LOG_BYTES + 1).unwrap();
    let huge = huge.display().to_string();
    let missing = dir.path().join("missing.jsonl").display().to_string();
    let out_path = dir.path().join("calibrated.yaml");
    std::fs::write(&out_path, "earlier contents\n").unwrap();
    let out = out_path.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec![&missing], format!("{missing}: cannot read")),
        (vec![&good, &not_json], format!("{not_json}:2: not a JSON event object")),
        (
            vec![&huge],
            format!("{huge}: {} bytes or more; an event log is at most", vortex_sim::calibrate::MAX_LOG_BYTES + 1),
        ),
        (vec![&good, &unfinished], format!("{unfinished}: no slot reached an outcome")),
        (vec![&aborted], format!("no successful audio attempt in the 1 slot of {aborted}")),
        (vec![&good, &good], format!("{good} is given twice")),
        (vec![&good, "--slots", "0"], "--slots 0: expected a slot count from 1 to".to_string()),
        (vec![&good, "--base", &missing], format!("--base: {missing}: cannot read")),
    ];
    for (args, want) in cases {
        let mut all = vec!["calibrate", "--out", out];
        all.extend(args);
        let result = sim(&all);
        assert_eq!(result.status.code(), Some(1), "{all:?}");
        assert!(stderr(&result).contains(&want), "{all:?}: {}", stderr(&result));
        assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "earlier contents\n", "{all:?} wrote its output");
    }
    let folder = dir.path().to_str().unwrap();
    let result = sim(&["calibrate", "--out", folder, &good]);
    assert!(stderr(&result).contains("--out") && stderr(&result).contains("is a directory"), "{}", stderr(&result));
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 6, "temporary files left behind");
}

#[test]
fn joint_latency_refuses_other_distributions_and_lists_of_other_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |video: &str| {
        format!(
            "name: joint\njoint_latency: true\nstages:\n  audio: {{latency: {{empirical: [1, 2, 3]}}}}\n  \
             image: {{latency: {{empirical: [4, 5, 6]}}}}\n  video: {{latency: {video}}}\n  \
             clip: {{latency: {{empirical: [0.1, 0.2, 0.3]}}}}\n"
        )
    };
    let cases = [
        (
            scenario("{uniform: [1, 2]}"),
            "bad.yaml: stages.video.latency: joint_latency: true needs every stage's latency to be an empirical list",
        ),
        (
            scenario("{empirical: [1, 2]}"),
            "bad.yaml: stages.video.latency: joint_latency: true needs the four empirical lists to have the same \
             length (one recorded slot per row); audio has 3 samples, video has 2",
        ),
        (scenario("{empirical: [1, 2, 3]}").replace("true", "yes"), "bad.yaml: joint_latency: "),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = sim(&["run", path.to_str().unwrap(), "--slots", "10"]);
        assert_eq!(out.status.code(), Some(1), "accepted: {expected}");
        assert!(stderr(&out).contains(expected), "expected {expected:?} in {}", stderr(&out));
    }
    std::fs::write(dir.path().join("good.yaml"), scenario("{empirical: [1, 2, 3]}")).unwrap();
    let out = sim(&["run", dir.path().join("good.yaml").to_str().unwrap(), "--slots", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Every stage has a sample, but the one slot retried its audio: no row to keep together.
    let log = dir.path().join("retried.jsonl");
    std::fs::write(
        &log,
        r#"{"event":"slot_started","slot_id":1,"elapsed_ms":0,"deadline_ms":45000}
{"event":"stage_retry","slot_id":1,"elapsed_ms":1000,"stage":"audio","next_attempt":1,"backoff_ms":500,"reason":"model_error"}
{"event":"audio_complete","slot_id":1,"elapsed_ms":3000,"stage":"audio","attempts":2,"stage_ms":3000}
{"event":"image_complete","slot_id":1,"elapsed_ms":5000,"stage":"image","attempts":1,"stage_ms":5000}
{"event":"video_complete","slot_id":1,"elapsed_ms":9000,"stage":"video","attempts":1,"stage_ms":4000}
{"event":"clip_complete","slot_id":1,"elapsed_ms":9500,"stage":"clip","attempts":1,"stage_ms":500}
{"event":"slot_complete","slot_id":1,"elapsed_ms":9500,"deadline_met":true,"clip_passed":true}
"#,
    )
    .unwrap();
    let (log, out) = (log.to_str().unwrap(), dir.path().join("joint.yaml"));
    let result = sim(&["calibrate", "--joint", "--out", out.to_str().unwrap(), log]);
    assert_eq!(result.status.code(), Some(1));
    let want = format!("--joint: no slot in the 1 slot of {log} completed all four stages at their first attempt");
    assert!(stderr(&result).contains(&want), "{}", stderr(&result));
    assert!(!out.exists(), "a refused calibration writes nothing");
    assert!(sim(&["calibrate", "--out", out.to_str().unwrap(), log]).status.success(), "without --joint it calibrates");
}

#[test]
fn calibrate_joint_writes_rows_that_do_not_depend_on_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = replayed_logs(dir.path(), 12);
    let calibrate = |logs: &[String], out: &std::path::Path, joint: bool| {
        let mut args = vec!["calibrate", "--out", out.to_str().unwrap()];
        args.extend(joint.then_some("--joint"));
        args.extend(logs.iter().map(String::as_str));
        sim(&args)
    };
    let (a, b, apart) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"), dir.path().join("apart.yaml"));
    let out = calibrate(&logs, &a, true);
    assert!(out.status.success(), "{}", stderr(&out));
    logs.reverse();
    assert!(calibrate(&logs, &b, true).status.success());
    assert!(calibrate(&logs, &apart, false).status.success());
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap(), "log order changed the scenario");
    assert!(text.contains("\njoint_latency: true\n") && text.contains("# Joint rows (--joint)"), "{text:.3000}");
    assert!(!std::fs::read_to_string(&apart).unwrap().contains("joint"), "without --joint, no joint rows");
    let out = sim(&["run", a.to_str().unwrap(), "--slots", "300"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
