//! The simulator against closed-form expectations and against the independent Monte Carlo loop.
#![cfg(madsim)]

use std::path::Path;
use std::sync::Arc;

use vortex_sim::montecarlo::MonteCarlo;
use vortex_sim::{Override, Report, Scenario, Simulator, SlotKind};

fn scenario(yaml: &str) -> Arc<Scenario> {
    Arc::new(Scenario::from_yaml_str("test.yaml", yaml, Path::new("."), &[]).unwrap())
}

fn report(s: &Arc<Scenario>) -> Report {
    Simulator::new(s.clone()).run().report()
}

/// Asserts an observed rate within 4 standard errors of the expected probability.
#[track_caller]
fn assert_rate(observed: f64, p: f64, n: u64) {
    let se = (p * (1.0 - p) / n as f64).sqrt();
    assert!((observed - p).abs() <= 4.0 * se, "rate {observed} vs expected {p} (4 SE = {})", 4.0 * se);
}

const STAGES_CONSTANT: &str = "
stages:
  audio: { latency: { constant: 2.0 } }
  image: { latency: { constant: 12.0 } }
  video: { latency: { constant: 8.0 } }
  clip: { latency: { constant: 1.0 } }
";

#[test]
fn constant_latencies_give_exact_totals() {
    let s = scenario(&format!("name: constant\nslots: 300\n{STAGES_CONSTANT}"));
    let r = report(&s);
    assert_eq!(r.outcomes.on_time, 300);
    let total = &r.latency_ms.total;
    assert_eq!(
        (total.p50, total.p99, total.max, total.mean),
        (Some(21_000.0), Some(21_000.0), Some(21_000.0), Some(21_000.0))
    );
    assert_eq!(r.latency_ms.stages.image.max, Some(12_000.0));
    assert_eq!(r.wasted_gpu_s, 0.0);
}

#[test]
fn parallel_slowdown_is_processor_sharing() {
    // Both run at half speed until audio's 2 s of work is done at 4 s; image has done 2 of its
    // 12 s and finishes the other 10 alone: 14 s, then 8 + 1.
    let s = scenario(&format!("name: shared\nslots: 50\ngpu: {{ parallel_slowdown: 2.0 }}\norchestration: {{ timeouts: {{ audio_s: 5 }} }}\n{STAGES_CONSTANT}"));
    let r = report(&s);
    assert_eq!(r.outcomes.on_time, 50);
    assert_eq!(r.latency_ms.stages.audio.max, Some(4_000.0));
    assert_eq!(r.latency_ms.stages.image.max, Some(14_000.0));
    assert_eq!(r.latency_ms.total.max, Some(23_000.0));
}

#[test]
fn abort_fraction_matches_the_analytical_probability() {
    // Deadline 30 s, buffer 5 s: after the image, the slot continues only if 30 - t - 5 >= 9,
    // i.e. image <= 16 s. With image ~ U[10, 20], P(abort before video) = 0.4; every aborted slot
    // (image in (16, 20]) would have finished by 20 + 9 = 29 s < 30 s, so all aborts are false.
    let n = 20_000;
    let s = scenario(&format!(
        "name: aborts\nslots: {n}\ndeadline_s: 30\norchestration: {{ timeouts: {{ image_s: 25 }} }}
stages:
  audio: {{ latency: {{ constant: 2.0 }} }}
  image: {{ latency: {{ uniform: [10, 20] }} }}
  video: {{ latency: {{ constant: 8.0 }} }}
  clip: {{ latency: {{ constant: 1.0 }} }}
"
    ));
    let r = report(&s);
    assert_eq!(r.outcomes.aborted_before_start + r.outcomes.aborted_before_clip, 0);
    assert_rate(r.rates.abort, 0.4, n);
    assert_eq!(r.rates.false_abort, r.rates.abort);
    assert_eq!(r.rates.abort_precision, Some(0.0));
    assert_eq!(r.outcomes.on_time + r.outcomes.aborted_before_video, n);
}

#[test]
fn retries_recover_transient_failures_at_the_expected_rate() {
    // Each audio attempt fails with p = 0.2; one retry: the slot fails with p² = 0.04.
    let n = 20_000;
    let s = scenario(&format!(
        "name: flaky\nslots: {n}\n{}",
        STAGES_CONSTANT.replace(
            "audio: { latency: { constant: 2.0 } }",
            "audio: { latency: { constant: 2.0 }, transient_failure: 0.2 }"
        )
    ));
    let r = report(&s);
    assert_rate(r.outcomes.failed.audio as f64 / n as f64, 0.04, n);
    assert_rate(r.rates.retry_recovery.unwrap(), 0.8, r.retries.attempted);
    assert_eq!(r.outcomes.on_time + r.outcomes.failed.audio, n);
}

#[test]
fn hangs_end_only_at_the_timeout() {
    let n = 20_000;
    let s = scenario(&format!(
        "name: hangs\nslots: {n}\n{}",
        STAGES_CONSTANT
            .replace("video: { latency: { constant: 8.0 } }", "video: { latency: { constant: 8.0 }, hang: 0.05 }")
    ));
    let r = report(&s);
    assert_rate(r.outcomes.timed_out.video as f64 / n as f64, 0.05, n);
    // A hung video burns its full 10 s timeout after the 12 s parallel phase.
    let expected_waste = r.outcomes.timed_out.video as f64 * (2.0 + 12.0 + 10.0);
    assert!((r.wasted_gpu_s - expected_waste).abs() < 0.01, "{} vs {expected_waste}", r.wasted_gpu_s);
}

#[test]
fn simulator_agrees_with_the_independent_monte_carlo_loop_on_every_scenario() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let slots = Override::from_flag("--slots", "slots", 3000u64);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 6, "the shipped scenarios are missing");
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let s = Arc::new(Scenario::load(path, std::slice::from_ref(&slots)).unwrap());
        if s.sequential() {
            continue; // the Monte Carlo loop models neither a cadence nor a learning predictor
        }
        let report = Simulator::new(s.clone()).run().report();
        let mc = MonteCarlo::new(&s);
        let mut kinds = std::collections::BTreeMap::<SlotKind, u64>::new();
        let (mut rejected, mut false_aborts, mut total_s) = (0, 0, 0.0);
        for slot in 0..s.slots {
            let out = mc.slot(slot, true);
            *kinds.entry(out.kind).or_default() += 1;
            rejected += u64::from(out.clip_rejected && matches!(out.kind, SlotKind::OnTime | SlotKind::Late));
            if matches!(out.kind, SlotKind::OnTime | SlotKind::Late) {
                total_s += out.end_s;
            }
            if matches!(out.kind, SlotKind::Aborted(_)) {
                false_aborts += u64::from(mc.slot(slot, false).kind == SlotKind::OnTime);
            }
        }
        let name = &s.name;
        for (kind, n) in &kinds {
            assert_eq!(report.outcomes.count(*kind), *n, "{name}: {} slots differ", kind.name());
        }
        assert_eq!(kinds.values().sum::<u64>(), report.slots, "{name}: a kind the Monte Carlo loop never saw");
        assert_eq!(report.outcomes.clip_rejected, rejected, "{name}: clip rejections differ");
        let sim_false_aborts = (report.rates.false_abort * report.slots as f64).round() as u64;
        assert_eq!(sim_false_aborts, false_aborts, "{name}: false aborts differ");
        let completed = report.latency_ms.total.count as f64;
        let sim_mean_s = report.latency_ms.total.mean.unwrap() / 1e3;
        assert!(
            (sim_mean_s - total_s / completed).abs() < 1e-3,
            "{name}: mean total {sim_mean_s} vs {}",
            total_s / completed
        );
    }
}
