//! `vortex-sim calibrate`: a scenario with known distributions is simulated, its slots' event
//! logs are calibrated into a new scenario, and the two simulate alike; the output does not depend
//! on the order of the logs.
#![cfg(madsim)]

mod common;

use std::path::{Path, PathBuf};

use vortex_sim::calibrate::{calibrate, Options};
use vortex_sim::{Report, Scenario, Simulator};

/// Slots recorded and calibrated on.
const CALIBRATION_SLOTS: u64 = 2_000;
/// Slots of each comparison run: enough that the runs' own noise is small beside the
/// calibration's (ten times the calibration sample).
const COMPARISON_SLOTS: u64 = 20_000;

/// Known distributions with every kind of fault the logs can show: audio errors and hangs (retried
/// once), image errors, video timeouts from its normal tail past the 10 s timeout, self-check
/// rejections, and predictive aborts before video from the 30 s deadline.
const ORIGINAL: &str = "\
name: known
seed: 1
slots: 2000
deadline_s: 30
stages:
  audio:
    latency: { lognormal: { median: 2.0, p99: 2.9 } }
    transient_failure: 0.06
    hang: 0.02
  image:
    latency: { gamma: { mean: 11.0, cv: 0.2 } }
    transient_failure: 0.01
  video:
    latency: { normal: { mean: 8.0, sd: 0.8 } }
  clip:
    latency: { uniform: [0.8, 1.2] }
    reject: 0.03
";

/// Replays slots `from..to` of `scenario` and returns their event logs, one line per event.
fn record(scenario: &Scenario, from: u64, to: u64) -> String {
    let simulator = Simulator::new(scenario.clone());
    let mut log = String::new();
    for slot in from..to {
        for e in simulator.replay(slot).unwrap().events {
            log.push_str(&e.to_json_line());
            log.push('\n');
        }
    }
    log
}

/// Writes the original scenario and its recorded slots: half in one log (a service's), the other
/// half in ten logs of a hundred slots; returns the scenario and the logs.
fn recorded(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let original = dir.join("original.yaml");
    std::fs::write(&original, ORIGINAL).unwrap();
    let scenario = Scenario::load(&original, &[]).unwrap();
    let half = CALIBRATION_SLOTS / 2;
    let mut logs = vec![dir.join("service.jsonl")];
    std::fs::write(&logs[0], record(&scenario, 0, half)).unwrap();
    for (i, from) in (half..CALIBRATION_SLOTS).step_by(100).enumerate() {
        let path = dir.join(format!("slots-{i}.jsonl"));
        std::fs::write(&path, record(&scenario, from, from + 100)).unwrap();
        logs.push(path);
    }
    (original, logs)
}

fn run(path: &Path, seed: u64) -> Report {
    let mut scenario = Scenario::load(path, &[]).unwrap();
    (scenario.seed, scenario.slots) = (seed, COMPARISON_SLOTS);
    Simulator::new(scenario).run().report()
}

/// Failed slots of every kind, over all slots.
fn failure_rate(r: &Report) -> f64 {
    let o = &r.outcomes;
    let per_stage = |p: &vortex::PerStage<u64>| p.audio + p.image + p.video + p.clip;
    (per_stage(&o.failed) + per_stage(&o.timed_out) + per_stage(&o.deadline_capped)) as f64 / r.slots as f64
}

/// The completed slots' total latencies in the logs, sorted.
fn recorded_totals(logs: &[PathBuf]) -> Vec<f64> {
    let mut totals = Vec::new();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap().lines() {
            let e = vortex::events::RecordedEvent::from_json_line(line).unwrap();
            if e.name == "slot_complete" {
                totals.push(e.number("total_ms").unwrap());
            }
        }
    }
    totals.sort_by(f64::total_cmp);
    totals
}

/// Half the width of the distribution-free 95% interval of quantile `q` of `sorted`, relative to
/// the quantile: how far a quantile estimated from this many recorded slots may be off.
fn relative_half_width(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len() as f64;
    let spread = 1.96 * (n * q * (1.0 - q)).sqrt();
    let rank = |r: f64| sorted[(r.max(0.0) as usize).min(sorted.len() - 1)];
    (rank(n * q + spread) - rank(n * q - spread)) / 2.0 / rank(n * q)
}

/// Four standard errors of a rate estimated from the calibration's slots and compared with a
/// run's: the calibrated rates are binomial estimates from about that many attempts.
fn rate_tolerance(p: f64) -> f64 {
    4.0 * (p * (1.0 - p) * (1.0 / CALIBRATION_SLOTS as f64 + 2.0 / COMPARISON_SLOTS as f64)).sqrt()
}

#[test]
fn a_calibrated_scenario_simulates_like_the_one_it_was_recorded_from() {
    let dir = tempfile::tempdir().unwrap();
    let (original, logs) = recorded(dir.path());
    let options = Options { base: Some(original.clone()), slots: None, seed: None, joint: false };
    let text = calibrate(&logs, &options).unwrap();
    let calibrated = dir.path().join("calibrated.yaml");
    std::fs::write(&calibrated, &text).unwrap();
    let (known, loaded) = (Scenario::load(&original, &[]).unwrap(), Scenario::load(&calibrated, &[]).unwrap());
    assert_eq!(loaded.name, "known-calibrated");
    assert_eq!((loaded.deadline, loaded.seed), (known.deadline, known.seed));
    assert_eq!(loaded.orchestration, known.orchestration);
    assert!(text.contains(&format!("from {CALIBRATION_SLOTS} slots in {} event logs", logs.len())), "{text:.600}");

    // Errors and rejections are drawn per attempt: the estimates find the known rates.
    for (estimated, known, attempts) in [
        (loaded.stages.audio.transient_failure, known.stages.audio.transient_failure, CALIBRATION_SLOTS),
        (loaded.stages.image.transient_failure, known.stages.image.transient_failure, CALIBRATION_SLOTS),
        (loaded.stages.clip.reject, known.stages.clip.reject, CALIBRATION_SLOTS * 9 / 10),
    ] {
        let tolerance = 4.0 * (known * (1.0 - known) / attempts as f64).sqrt();
        assert!((estimated - known).abs() <= tolerance, "estimated {estimated}, known {known} (within {tolerance})");
    }

    // The comparison runs draw other slots (another seed) than the ones calibrated on.
    let (want, got) = (run(&original, 7), run(&calibrated, 7));
    let totals = recorded_totals(&logs);
    let (w, g) = (&want.latency_ms.total, &got.latency_ms.total);
    for (q, w, g) in [(0.5, w.p50, g.p50), (0.9, w.p90, g.p90), (0.99, w.p99, g.p99)] {
        let (w, g) = (w.unwrap(), g.unwrap());
        // Twice the interval: the calibrated total combines four independently estimated stages.
        let tolerance = 2.0 * relative_half_width(&totals, q);
        let off = (g / w - 1.0).abs();
        eprintln!(
            "P{}: original {w} ms, calibrated {g} ms, off by {:.2}% (allowed {:.2}%)",
            q * 100.0,
            off * 100.0,
            tolerance * 100.0
        );
        assert!(off <= tolerance, "P{}: original {w} ms, calibrated {g} ms", q * 100.0);
    }
    let rejected = |r: &Report| r.outcomes.clip_rejected as f64 / r.slots as f64;
    for (name, w, g) in [
        ("on time", want.rates.on_time, got.rates.on_time),
        ("abort", want.rates.abort, got.rates.abort),
        ("failure", failure_rate(&want), failure_rate(&got)),
        ("clip rejected", rejected(&want), rejected(&got)),
    ] {
        eprintln!("{name}: original {w:.4}, calibrated {g:.4} (allowed {:.4})", rate_tolerance(w));
        assert!((g - w).abs() <= rate_tolerance(w), "{name}: original {w}, calibrated {g}");
    }
}

#[test]
fn the_same_logs_in_any_order_give_the_same_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let (original, mut logs) = recorded(dir.path());
    for joint in [false, true] {
        let options = Options { base: Some(original.clone()), slots: Some(500), seed: Some(3), joint };
        let first = calibrate(&logs, &options).unwrap();
        logs.reverse();
        logs.swap(0, 4);
        assert_eq!(calibrate(&logs, &options).unwrap(), first, "joint: {joint}");
        let loaded = Scenario::from_yaml_str("calibrated", &first, dir.path(), &[]).unwrap();
        assert_eq!((loaded.slots, loaded.seed, loaded.joint_rows.is_some()), (500, 3, joint));
    }
}

/// A scenario whose slots' audio and video take the same time, row by row (as speech length
/// drives both in real slots).
fn paired() -> String {
    let list = |scale: f64| {
        let v: Vec<String> = (1..=40).map(|i| format!("{}", (i * i) as f64 * scale / 100.0)).collect();
        v.join(", ")
    };
    format!(
        "name: paired\nseed: 2\nslots: 400\njoint_latency: true\nstages:\n  audio: {{latency: {{empirical: [{a}]}}}}\n  \
         image: {{latency: {{empirical: [{i}]}}}}\n  video: {{latency: {{empirical: [{a}]}}}}\n  \
         clip: {{latency: {{empirical: [{c}]}}}}\n",
        // Within the default timeouts (audio 3 s, clip 2 s): no attempt fails, every slot completes.
        a = list(0.15),
        i = list(0.5),
        c = list(0.05)
    )
}

/// Each completed slot's (audio, video) stage times in ms, from its replayed events.
fn audio_and_video(scenario: &Scenario, slots: u64) -> Vec<(f64, f64)> {
    let simulator = Simulator::new(scenario.clone());
    (0..slots)
        .map(|slot| {
            let events = simulator.replay(slot).unwrap().events;
            let ms = |name: &str| events.iter().find(|e| e.name == name).and_then(|e| e.number("stage_ms")).unwrap();
            (ms("audio_complete"), ms("video_complete"))
        })
        .collect()
}

#[test]
fn joint_calibration_keeps_each_recorded_slots_stages_together() {
    let dir = tempfile::tempdir().unwrap();
    let original = Scenario::from_yaml_str("paired.yaml", &paired(), dir.path(), &[]).unwrap();
    // The recorded slots themselves pair audio with video.
    assert!(audio_and_video(&original, 50).iter().all(|(a, v)| a == v));
    let logs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("{i}.jsonl"));
            std::fs::write(&path, record(&original, i * 100, (i + 1) * 100)).unwrap();
            path
        })
        .collect();
    let calibrated = |joint: bool| {
        let options = Options { base: None, slots: Some(300), seed: Some(9), joint };
        let text = calibrate(&logs, &options).unwrap();
        Scenario::from_yaml_str("calibrated", &text, dir.path(), &[]).unwrap()
    };
    let joint = calibrated(true);
    assert_eq!(joint.joint_rows, Some(400), "every recorded slot completed at its first attempts: one row each");
    let pairs = audio_and_video(&joint, 300);
    assert!(pairs.iter().all(|(a, v)| a == v), "{:?}", pairs.iter().find(|(a, v)| a != v));
    // Drawn apart, the same samples pair audio with another slot's video.
    let apart = calibrated(false);
    assert_eq!(apart.joint_rows, None);
    let equal = audio_and_video(&apart, 300).iter().filter(|(a, v)| a == v).count();
    assert!(equal < 30, "{equal} of 300 slots drew equal audio and video without joint rows");
}
