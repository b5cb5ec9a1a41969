//! Hostile input through the real `vortex-sim` binary, one test per class of issue 9: nothing
//! panics, hangs, exhausts memory or clobbers a file, nonsense is refused, and every error names
//! where the bad value came from (the file, or the flag when it came from the command line).
#![cfg(madsim)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{nominal, sim, stderr};

/// Runs `args`, expects exit code 1 (refused, no panic: a panic exits with 101) and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = sim(args);
    assert_eq!(out.status.code(), Some(1), "expected a refusal for {args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("simulated"), "refused only after simulating: {err}");
    err
}

/// Runs `args`, expects clap's usage error (exit code 2: a flag's value is malformed on its own)
/// and returns stderr.
fn usage(args: &[&str]) -> String {
    let out = sim(args);
    assert_eq!(out.status.code(), Some(2), "expected a usage error for {args:?}: {}", stderr(&out));
    stderr(&out)
}

/// A scenario file in `dir` with the nominal scenario's text changed by `edit`.
fn scenario(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(nominal()).unwrap().replace("config: ../config.yaml\n", "");
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path.display().to_string()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn durations_too_large_for_any_timer_are_refused_wherever_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let n = nominal();
    let err = refused(&["run", &n, "--set", "stages.audio.latency={constant: 1e20}"]);
    assert!(err.contains("constant must be a number of seconds from 0 to 86400, got 1e20"), "{err}");
    let err = refused(&["run", &n, "--set", "stages.image.latency={gamma: {mean: 11, cv: 1e-200}}"]);
    assert!(err.contains("cv must be from 0.0001 to 10, got 1e-200"), "{err}");
    let err = refused(&["run", &n, "--set", "cadence={interval_s: 1e300, cancel_granularity_s: {audio: 1}}"]);
    assert!(err.contains("at most 86400, got 1e300"), "{err}");
    let err = refused(&["run", &n, "--set", "drift={factor: [[0, 1e300]]}"]);
    assert!(err.contains("factor must be above 0 and at most 1000, got 1e300"), "{err}");
    let err = refused(&["run", &n, "--set", "gpu.parallel_slowdown=1e300"]);
    assert!(err.contains("from 1 (perfect overlap) to 100, got 1e300"), "{err}");
    let path = scenario(dir.path(), "s.yaml", |t| t.replace("deadline_s: 45", "deadline_s: 1e19"));
    let err = refused(&["run", &path]);
    assert!(err.contains("s.yaml: deadline_s: expected a number of seconds above 0 and at most 86400, got 1e19"));
    let err = refused(&["sweep", &n, "--vary", "orchestration.timeouts.audio_s=1..1e300:1e299"]);
    assert!(err.contains("--vary orchestration.timeouts.audio_s=1e299"), "{err}");
    // Parameters within their bounds whose draws are extreme (a lognormal spread over 300 orders
    // of magnitude) run: draws are clamped to a day.
    let out = sim(&[
        "run",
        &n,
        "--slots",
        "300",
        "--set",
        "stages.audio.latency={lognormal: {median: 1e-300, p99: 86400}}",
        "--set",
        "gpu.parallel_slowdown=100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn inputs_that_never_end_or_never_open_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    mkfifo(&fifo);
    // Each would hang (a FIFO) or fill memory (/dev/zero) if it were read.
    let err = refused(&["run", "/dev/zero"]);
    assert!(err.contains("/dev/zero: (file): is not a regular file (a device, FIFO or socket)"), "{err}");
    let err = refused(&["run", fifo.to_str().unwrap()]);
    assert!(err.contains("fifo.yaml: (file): is not a regular file"), "{err}");
    let with_config = scenario(dir.path(), "c.yaml", |t| format!("config: /dev/zero\n{t}"));
    assert!(refused(&["run", &with_config]).contains("/dev/zero: (file): is not a regular file"));
    let with_trace =
        scenario(dir.path(), "t.yaml", |t| t.replace("{ uniform: [0.8, 1.2] }", "{ empirical: { file: fifo.yaml } }"));
    let err = refused(&["run", &with_trace]);
    assert!(err.contains("stages.clip.latency.empirical.file") && err.contains("is not a regular file"), "{err}");
    // Deeply nested brackets would take the YAML parser minutes (its time grows with the square
    // of the depth): refused before parsing.
    let deep = dir.path().join("deep.yaml");
    std::fs::write(&deep, format!("name: x\ndescription: {}{}\n", "[".repeat(500_000), "]".repeat(500_000))).unwrap();
    let err = refused(&["run", deep.to_str().unwrap()]);
    assert!(err.contains("deep.yaml: (file): brackets nested more than 64 levels deep at line 2"), "{err}");
}

#[test]
fn outputs_are_checked_before_the_run_and_only_regular_files_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let n = nominal();
    let target = dir.path().join("kept.json");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.path().join("fifo.json");
    mkfifo(&fifo);
    let plot = dir.path().join("plot.svg");
    for (flag, path, why) in [
        ("--json", link.to_str().unwrap(), "is a symbolic link"),
        ("--json", "/dev/stdout", "is a symbolic link"),
        ("--json", "/dev/null", "is not a regular file"),
        ("--json", fifo.to_str().unwrap(), "is not a regular file"),
        ("--plot", "/nonexistent/plot.svg", "cannot use the folder /nonexistent"),
        ("--json", dir.path().to_str().unwrap(), "is a directory"),
    ] {
        // The other output is fine: it must not be written either, since the run never starts.
        let other = if flag == "--json" { "--plot" } else { "--json" };
        let err = refused(&["run", &n, "--slots", "100", flag, path, other, plot.to_str().unwrap()]);
        assert!(err.contains(&format!("{flag} {path}: {why}")), "{err}");
        assert!(!plot.exists(), "one output written while the other was refused");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let same = dir.path().join("same");
    let err = refused(&["run", &n, "--json", same.to_str().unwrap(), "--plot", same.to_str().unwrap()]);
    assert!(err.contains("--json and --plot name the same file"), "{err}");
    let err = refused(&["merge", "/dev/null", "--json", "/dev/null"]);
    assert!(err.contains("--json /dev/null: is not a regular file"), "{err}");
}

#[test]
fn nonsense_is_refused_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let n = nominal();
    let err = usage(&["sweep", &n, "--vary", "orchestration.deadline_buffer_s=0..1:1e-300"]);
    assert!(err.contains("too many values; a sweep may have at most 10000 points"), "{err}");
    let err = refused(&[
        "sweep",
        &n,
        "--vary",
        "orchestration.deadline_buffer_s=0..1:1",
        "--vary",
        "orchestration.deadline_buffer_s=0..2:1",
    ]);
    assert!(err.contains("given to --vary twice"), "{err}");
    let err = refused(&[
        "sweep",
        &n,
        "--set",
        "orchestration.deadline_buffer_s=3",
        "--vary",
        "orchestration.deadline_buffer_s=0..2:1",
    ]);
    assert!(err.contains("also set by --set orchestration.deadline_buffer_s=3"), "{err}");
    // Three axes of 1,000 values: counted before the billion-point grid is built.
    let err = refused(&[
        "sweep",
        &n,
        "--vary",
        "orchestration.timeouts.audio_s=1..1000:1",
        "--vary",
        "orchestration.timeouts.image_s=1..1000:1",
        "--vary",
        "orchestration.timeouts.video_s=1..1000:1",
    ]);
    assert!(err.contains("1000 × 1000 × 1000 points; a sweep may have at most 10000"), "{err}");
    let err = usage(&[
        "sweep",
        &n,
        "--vary",
        "orchestration.deadline_buffer_s=0..1:1",
        "--objective",
        "max:on_time subject_to:false_abort<=5",
    ]);
    assert!(err.contains("its bound must be from 0 to 1, got 5"), "{err}");
    let err = refused(&["run", &n, "--set", "orchestration.deadline_buffer_s=45"]);
    assert!(err.contains("45 s leaves no time before the 45 s deadline"), "{err}");
    let bom = scenario(dir.path(), "bom.yaml", |t| format!("\u{feff}{t}"));
    assert!(refused(&["run", &bom]).contains("bom.yaml: (file): starts with a UTF-8 byte-order mark"));
    let tagged = scenario(dir.path(), "tag.yaml", |t| t.replace("slots: 10000", "slots: !big 10000"));
    assert!(refused(&["run", &tagged]).contains("tag.yaml: slots: YAML tags such as !big are not supported"));
    let err = usage(&["run", &n, "--workers", "100000"]);
    assert!(err.contains("expected a thread count from 0 (one per core) to 1024"), "{err}");
    // A sweep's total work is bounded before it starts.
    let err = refused(&["sweep", &n, "--slots", "100000000", "--vary", "orchestration.deadline_buffer_s=0..20:1"]);
    assert!(err.contains("a sweep may simulate at most 1000000000"), "{err}");
}

#[test]
fn errors_name_the_flag_a_value_came_from_and_never_a_rust_type() {
    let dir = tempfile::tempdir().unwrap();
    let n = nominal();
    let err = refused(&["run", &n, "--slots", "0"]);
    assert!(err.contains("error: --slots 0: slots: expected a slot count from 1 to 100000000, got 0"), "{err}");
    let err = refused(&["run", &n, "--set", "stages.audio.hang=2"]);
    assert!(err.starts_with("error: --set stages.audio.hang=2: stages.audio.hang: expected a probability"), "{err}");
    // An override inside a distribution that is then wrong as a whole names both.
    let err = refused(&["run", &n, "--set", "stages.audio.latency.constant=3"]);
    assert!(err.contains("rtx3060-nominal.yaml with --set stages.audio.latency.constant=3: stages.audio.latency"));
    let err = refused(&["sweep", &n, "--vary", "stages.audio.hang=0..2:1"]);
    assert!(err.contains("error: --vary stages.audio.hang=2: stages.audio.hang"), "{err}");
    // Wrong shapes at every level read in words, not as Rust's types.
    for (edit, key) in [
        ("stages:\n", "stages: 5\nx:\n"),
        ("gpu:\n  parallel_slowdown: 1.0\n", "gpu: fast\n"),
        ("seed: 1\n", "seed: 1\norchestration: 5\n"),
        ("seed: 1\n", "seed: 1\ndrift: 5\n"),
        ("seed: 1\n", "seed: 1\ncadence: [1]\n"),
    ] {
        let path = scenario(dir.path(), "shape.yaml", |t| t.replacen(edit, key, 1));
        let err = refused(&["run", &path]);
        assert!(!err.contains("struct") && !err.contains("PerStage") && !err.contains("enum"), "{err}");
    }
    let long_key = "k".repeat(100_000);
    let path = scenario(dir.path(), "long.yaml", |t| format!("{long_key}: 1\n{t}"));
    let err = refused(&["run", &path]);
    assert!(err.len() < 2_000, "a huge key is quoted, not echoed whole: {} bytes", err.len());
}

#[test]
fn replays_refuse_slots_past_the_run() {
    let err = refused(&["replay", &nominal(), "--slot", "18446744073709551615"]);
    assert!(err.contains("is out of range"), "{err}");
}
