//! The committed fuzz corpus (`fuzz/corpus/`) replayed as ordinary tests, and the simulator's
//! reliability property: any scenario that parses runs without panicking, and no slot outlives
//! its deadline by more than one cancellation step. CI replays; `tools/fuzz.sh` fuzzes.

use std::path::Path;

/// Every file of one target's corpus, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    files
}

#[test]
fn the_scenario_corpus_replays_without_panics_or_unreadable_errors() {
    let files = corpus("scenario");
    let loaded = files.iter().filter(|(_, data)| vortex_sim::fuzzing::scenario(data).is_some()).count();
    // Both sides of the parser are exercised: the shipped scenarios load, the hostile ones do not.
    assert!(loaded >= 8 && loaded < files.len(), "{loaded} of {} corpus scenarios loaded", files.len());
}

#[test]
fn the_vary_and_objective_corpora_replay() {
    for (_, data) in corpus("vary") {
        vortex_sim::fuzzing::vary(&data);
    }
    for (_, data) in corpus("objective") {
        vortex_sim::fuzzing::objective(&data);
    }
}

#[test]
fn the_config_corpus_replays() {
    for (_, data) in corpus("config") {
        vortex::fuzzing::config(&data);
    }
}

#[cfg(madsim)]
mod property {
    use std::fmt::Write as _;
    use std::time::Duration;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use vortex_sim::{Scenario, Simulator};

    use super::corpus;

    /// Slots each scenario runs: enough for retries, aborts and a cadence's backlog to happen.
    const SLOTS: u64 = 300;

    /// Runs `scenario` for [`SLOTS`] slots and checks that no slot outlived its deadline by more
    /// than one cancellation step (the scheduler's timers are exact in virtual time; 1 ms covers
    /// rounding to microseconds).
    fn check(name: &str, mut scenario: Scenario) {
        scenario.slots = scenario.slots.min(SLOTS);
        let step = scenario.cadence.map_or(Duration::ZERO, |c| {
            vortex::Stage::ALL.iter().map(|&s| *c.cancel_granularity.get(s)).max().unwrap_or_default()
        });
        let bound = scenario.deadline + step + Duration::from_millis(1);
        let run = Simulator::new(scenario).workers(1).run();
        assert!(
            run.longest_slot() <= bound,
            "{name}: a slot lasted {:?}, past its deadline and one cancellation step ({bound:?})",
            run.longest_slot()
        );
    }

    #[test]
    fn every_corpus_scenario_that_parses_runs_and_ends_by_its_deadline() {
        for (name, data) in corpus("scenario") {
            if let Some(scenario) = vortex_sim::fuzzing::scenario(&data) {
                check(&name, scenario);
            }
        }
    }

    /// A value spread over many orders of magnitude, from `lo` to `hi`.
    fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
        (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
    }

    /// A random latency distribution, extremes included.
    fn distribution(rng: &mut ChaCha8Rng, depth: u32) -> String {
        let mut s = |lo: f64, hi: f64| log_uniform(rng, lo, hi);
        let a = s(1e-6, 86_400.0);
        let b = s(1e-6, 86_400.0);
        let (lo, hi) = (a.min(b), a.max(b));
        let shape = match rng.gen_range(0..if depth == 0 { 7 } else { 6 }) {
            0 => format!("{{constant: {a}}}"),
            1 => format!("{{uniform: [{lo}, {hi}]}}"),
            2 => format!("{{normal: {{mean: {a}, sd: {b}}}}}"),
            3 => format!("{{lognormal: {{median: {lo}, p99: {hi}}}}}"),
            4 => format!("{{gamma: {{mean: {a}, cv: {}}}}}", log_uniform(rng, 1e-4, 10.0)),
            5 => format!("{{empirical: [{lo}, {hi}, {a}]}}"),
            _ => {
                let parts: Vec<String> = (0..rng.gen_range(1..4))
                    .map(|_| format!("{{weight: {}, dist: {}}}", log_uniform(rng, 1e-3, 1e3), distribution(rng, 1)))
                    .collect();
                format!("{{mixture: [{}]}}", parts.join(", "))
            }
        };
        if rng.gen_bool(0.3) {
            let max = log_uniform(rng, 1e-3, 86_400.0);
            format!("{}, max: {max}}}", &shape[..shape.len() - 1])
        } else {
            shape
        }
    }

    /// A random scenario that should load: every key drawn within its documented bounds.
    fn random_scenario(rng: &mut ChaCha8Rng, i: u32) -> String {
        let deadline = log_uniform(rng, 0.5, 200.0);
        let mut y = format!("name: random-{i}\nseed: {}\nslots: {SLOTS}\ndeadline_s: {deadline}\n", rng.gen::<u64>());
        let seconds = |rng: &mut ChaCha8Rng| log_uniform(rng, 1e-3, 86_400.0);
        let _ = writeln!(y, "orchestration:\n  deadline_buffer_s: {}", deadline * rng.gen::<f64>() * 0.9);
        let _ = writeln!(y, "  backoff_base_s: {}", log_uniform(rng, 1e-3, 10.0));
        let _ = writeln!(y, "  predictor: {}", if rng.gen_bool(0.3) { "adaptive" } else { "static" });
        for section in ["timeouts", "targets"] {
            let _ = writeln!(y, "  {section}:");
            for stage in ["audio", "image", "video", "clip"] {
                let _ = writeln!(y, "    {stage}_s: {}", seconds(rng));
            }
        }
        let _ = writeln!(y, "  retry_policy:");
        for stage in ["audio", "image", "video", "clip"] {
            let _ = writeln!(y, "    {stage}: {}", rng.gen_range(0..=5));
        }
        let _ = writeln!(y, "stages:");
        for stage in ["audio", "image", "video", "clip"] {
            let _ = writeln!(y, "  {stage}:\n    latency: {}", distribution(rng, 0));
            let p = |rng: &mut ChaCha8Rng| if rng.gen_bool(0.5) { 0.0 } else { rng.gen::<f64>() };
            let _ = writeln!(y, "    transient_failure: {}\n    hang: {}", p(rng), p(rng) * 0.5);
            if stage == "clip" {
                let _ = writeln!(y, "    reject: {}", p(rng));
            }
        }
        let _ = writeln!(y, "gpu:\n  parallel_slowdown: {}", log_uniform(rng, 1.0, 100.0));
        if rng.gen_bool(0.3) {
            let _ = writeln!(
                y,
                "drift:\n  factor: [[0, {}], [{}, {}]]",
                log_uniform(rng, 1e-3, 1e3),
                rng.gen_range(1..300),
                log_uniform(rng, 1e-3, 1e3)
            );
        }
        if rng.gen_bool(0.4) {
            let _ = writeln!(y, "cadence:\n  interval_s: {}\n  cancel_granularity_s:", log_uniform(rng, 0.1, 200.0));
            for stage in ["audio", "image", "video", "clip"] {
                let _ = writeln!(y, "    {stage}: {}", log_uniform(rng, 1e-3, 60.0));
            }
        }
        y
    }

    #[test]
    fn random_scenarios_within_every_bound_run_and_end_by_their_deadlines() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let base = vortex_sim::fuzzing::scenario_dir();
        for i in 0..200 {
            let text = random_scenario(&mut rng, i);
            let scenario = Scenario::from_yaml_str("random.yaml", &text, &base, &[])
                .unwrap_or_else(|e| panic!("a scenario within every bound was refused: {e}\n{text}"));
            check(&format!("random scenario {i}:\n{text}"), scenario);
        }
    }
}
