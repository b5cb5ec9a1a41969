//! Issue-4 features: back-to-back slots on one GPU (cadence), the adaptive predictor, sweeps.
#![cfg(madsim)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{shipped, sim};

use vortex_sim::{Override, Report, Scenario, Simulator};

fn scenario(yaml: &str) -> Arc<Scenario> {
    Arc::new(Scenario::from_yaml_str("test.yaml", yaml, Path::new("."), &[]).unwrap())
}

fn report(s: &Arc<Scenario>) -> Report {
    Simulator::new(s.clone()).run().report()
}

#[test]
fn over_running_slots_delay_the_next_ones_as_the_recurrence_says() {
    // Every slot needs 21 s of work, a new one is due every 15 s: each slot that runs pushes the
    // next 6 s later. A slot left with deadline − delay − 5 s buffer < 21 s aborts before start,
    // holds the GPU for no time, and the queue drains by 15 s.
    let s = scenario(
        "name: queue\nslots: 40\ncadence: { interval_s: 15, cancel_granularity_s: { audio: 1, image: 1, video: 1, clip: 1 } }
stages:
  audio: { latency: { constant: 2.0 } }
  image: { latency: { constant: 12.0 } }
  video: { latency: { constant: 8.0 } }
  clip: { latency: { constant: 1.0 } }
",
    );
    let (mut backlog, mut on_time, mut aborted, mut delayed, mut max_delay) = (0.0f64, 0, 0, 0, 0.0f64);
    for _ in 0..40 {
        let delay = backlog;
        delayed += u64::from(delay > 0.0);
        max_delay = max_delay.max(delay);
        let busy = if 45.0 - delay - 5.0 >= 21.0 {
            on_time += 1;
            21.0
        } else {
            aborted += 1;
            0.0
        };
        backlog = (delay + busy - 15.0).max(0.0);
    }
    let r = report(&s);
    assert_eq!((r.outcomes.on_time, r.outcomes.aborted_before_start), (on_time, aborted));
    let cadence = r.cadence.expect("a cadence scenario reports queueing");
    assert_eq!(cadence.delayed_slots, delayed);
    assert_eq!(cadence.queue_delay_ms.max, Some(max_delay * 1e3));
    assert!(aborted > 0 && delayed > 0, "the case must exercise both");
}

#[test]
fn a_cancelled_stage_holds_the_gpu_until_its_next_cancellation_point() {
    // The image always hangs: it is cut at its 15 s timeout, but its 4 s steps run on to 16 s.
    // With a slot due every 15.5 s the GPU is 0.5 s late for each next slot, cumulatively.
    let s = scenario(
        "name: tails\nslots: 5\ncadence: { interval_s: 15.5, cancel_granularity_s: { audio: 0.1, image: 4, video: 0.1, clip: 0.1 } }
stages:
  audio: { latency: { constant: 2.0 } }
  image: { latency: { constant: 12.0 }, hang: 1.0 }
  video: { latency: { constant: 8.0 } }
  clip: { latency: { constant: 1.0 } }
",
    );
    let r = report(&s);
    assert_eq!(r.outcomes.timed_out.image, 5);
    let cadence = r.cadence.unwrap();
    assert_eq!(cadence.delayed_slots, 4);
    assert_eq!(cadence.queue_delay_ms.max, Some(2_000.0));
    // Per slot: audio 2 s + image 15 s until cancelled + 1 s of tail, all on failed slots.
    assert_eq!(r.wasted_gpu_s, 5.0 * 18.0);
}

#[test]
fn without_a_cadence_the_report_has_no_queueing_section() {
    let s = Arc::new(
        Scenario::load(&shipped("rtx3060-nominal"), &[Override::from_flag("--slots", "slots", 100u64)]).unwrap(),
    );
    assert!(report(&s).cadence.is_none());
    assert!(!report(&s).to_json().contains("queue_delay_ms"));
}

#[test]
fn adaptive_predictor_learns_across_slots_and_beats_static_targets_on_drift() {
    // docs/tuning.md: on `drift`, the adaptive predictor (quantile 0.5, no buffer) keeps more
    // slots on time than the best static buffer (0 s), with false aborts within 1%.
    let load = |extra: &[(&str, serde_yaml_ng::Value)]| {
        let overrides: Vec<Override> = extra.iter().map(|(k, v)| Override::from_flag("--set", k, v.clone())).collect();
        Arc::new(Scenario::load(&shipped("drift"), &overrides).unwrap())
    };
    let fixed = load(&[("orchestration.deadline_buffer_s", 0.0.into())]);
    let adaptive = load(&[
        ("orchestration.deadline_buffer_s", 0.0.into()),
        ("orchestration.predictor", "adaptive".into()),
        ("orchestration.adaptive.quantile", 0.5.into()),
    ]);
    assert!(adaptive.sequential());
    let (fixed, adaptive) = (report(&fixed), report(&adaptive));
    assert!(adaptive.rates.on_time > fixed.rates.on_time, "adaptive {:?} vs static {:?}", adaptive.rates, fixed.rates);
    assert!(adaptive.rates.false_abort <= 0.01, "{:?}", adaptive.rates);
    assert!(adaptive.wasted_gpu_s < fixed.wasted_gpu_s);
}

#[test]
fn sweep_writes_every_point_and_the_best_and_does_not_depend_on_workers() {
    let dir = tempfile::tempdir().unwrap();
    let tight = shipped("tight-deadline").display().to_string();
    let run = |json: &Path, workers: &str| {
        let out = sim(&[
            "sweep",
            &tight,
            "--slots",
            "600",
            "--workers",
            workers,
            "--vary",
            "orchestration.deadline_buffer_s=0..2:1",
            "--vary",
            "orchestration.timeouts.image_s=18..20:2",
            "--objective",
            "max:on_time subject_to:false_abort<=0.05",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), std::fs::read(json).unwrap())
    };
    let (table, a) = run(&dir.path().join("a.json"), "1");
    let (_, b) = run(&dir.path().join("b.json"), "2");
    assert_eq!(a, b, "sweep results depend on the number of workers");
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    assert_eq!(points[1]["params"]["orchestration.deadline_buffer_s"], 0.0);
    assert_eq!(points[1]["params"]["orchestration.timeouts.image_s"], 20.0);
    for key in ["slots", "rates", "latency_ms", "wasted_gpu_s"] {
        assert!(points[0].get(key).is_some(), "missing {key}");
    }
    assert!(
        points[0]["rates"].get("abort_precision").is_some()
            && points[0]["latency_ms"]["total"].get("p99_ci95").is_some()
    );
    let best = &v["best"];
    assert!(best.is_object());
    let best_on_time = best["rates"]["on_time"].as_f64().unwrap();
    for p in points.iter().filter(|p| p["rates"]["false_abort"].as_f64().unwrap() <= 0.05) {
        assert!(p["rates"]["on_time"].as_f64().unwrap() <= best_on_time);
    }
    assert!(table.contains("<- best") && table.contains("orchestration:\n  deadline_buffer_s:"), "{table}");
}

#[test]
fn sweep_says_when_no_point_meets_the_constraint_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let tight = shipped("tight-deadline").display().to_string();
    let out = sim(&[
        "sweep",
        &tight,
        "--slots",
        "300",
        "--vary",
        "orchestration.deadline_buffer_s=4..5:1",
        "--objective",
        "max:on_time subject_to:abort<=0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no point meets the constraints"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["best"].is_null());

    let out = sim(&["sweep", &tight, "--vary", "orchestration.deadline_buffer_s=-2..0:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--vary orchestration.deadline_buffer_s=-2: orchestration.deadline_buffer_s: expected a number of seconds from 0 to 86400, got -2"
        ),
        "{err}"
    );
    let out = sim(&["sweep", &tight, "--vary", "orchestration.deadline_buffer_s=0..2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=FROM..TO:STEP"));
    let out = sim(&["sweep", &tight, "--vary", "orchestration.deadline_buffer_s=0..2:1", "--objective", "max:speed"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown metric \"speed\""));
}

#[test]
fn sweep_plot_marks_the_front_and_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let out = sim(&[
        "sweep",
        &shipped("tight-deadline").display().to_string(),
        "--slots",
        "300",
        "--vary",
        "orchestration.deadline_buffer_s=0..3:1",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(svg).unwrap();
    assert!(text.contains("Pareto front") && text.contains("best: deadline_buffer_s="), "{text:.400}");
}
