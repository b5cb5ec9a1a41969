//! `vortex-sim`: run scenarios and replay single slots in virtual time.
//!
//! Reached through the cargo alias, which adds `--cfg madsim`: `cargo sim -- run scenarios/rtx3060-nominal.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vortex::output::OutputFile;
use vortex_sim::sweep::{Objective, Vary};
use vortex_sim::{Override, Shard};

/// Simulate the Vortex slot scheduler under a scenario's latencies and failures, in virtual time.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the commands that load a scenario.
#[derive(clap::Args)]
struct ScenarioArgs {
    /// The scenario file (YAML; see docs/scenarios.md).
    scenario: PathBuf,
    /// Override any scenario or config key, e.g. `orchestration.deadline_buffer_s=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and print its report.
    Run {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Override the scenario's slot count.
        #[arg(long)]
        slots: Option<u64>,
        /// Write the report as JSON to this path.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Draw total latency (histogram and CDF) with the deadline and abort threshold, as SVG.
        #[arg(long, value_name = "PATH.svg")]
        plot: Option<PathBuf>,
        /// Worker threads (default: one per core; at most 1024); the report does not depend on it.
        #[arg(long, default_value_t = 0, value_parser = workers)]
        workers: usize,
        /// Run only part K of N (K from 0) and write a shard file to --json; `merge` joins the
        /// parts into the report of the whole run. Back-to-back scenarios cannot be sharded.
        #[arg(long, value_name = "K/N", requires = "json")]
        shard: Option<Shard>,
    },
    /// Run a scenario over a grid of parameter values and recommend the best point.
    Sweep {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Override the scenario's slot count (every point runs this many).
        #[arg(long)]
        slots: Option<u64>,
        /// A key and its values, e.g. `orchestration.deadline_buffer_s=0..10:0.5` (repeat for a grid).
        #[arg(long = "vary", value_name = "KEY=FROM..TO:STEP", required = true)]
        vary: Vec<Vary>,
        /// What to optimise, e.g. `max:on_time subject_to:false_abort<=0.01` (see docs/tuning.md).
        #[arg(long, default_value = "max:on_time")]
        objective: Objective,
        /// Write every point and the best as JSON to this path.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Draw the trade-offs (deadline miss against false aborts and wasted GPU) as SVG.
        #[arg(long, value_name = "PATH.svg")]
        plot: Option<PathBuf>,
        /// Worker threads (default: one per core; at most 1024); points run in parallel, results
        /// do not depend on it.
        #[arg(long, default_value_t = 0, value_parser = workers)]
        workers: usize,
        /// Run only the grid points of part K of N (K from 0) and write a shard file to --json;
        /// `merge` joins the parts into the whole sweep's result.
        #[arg(long, value_name = "K/N", requires = "json")]
        shard: Option<Shard>,
    },
    /// Re-run one slot and print its full event timeline in virtual time.
    Replay {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The slot index (the report lists examples per outcome).
        #[arg(long)]
        slot: u64,
        /// Also write the slot's events to this file as JSON lines, the format of real mode's
        /// `events.jsonl` (the counterfactual's events are not part of it).
        #[arg(long, value_name = "PATH.jsonl")]
        events: Option<PathBuf>,
    },
    /// Turn recorded slots (event logs, JSON lines) into a scenario with their empirical stage
    /// latencies and failure rates (see docs/tuning.md).
    Calibrate {
        /// Event logs: real mode's `events.jsonl` files, or logs of many slots, in any order.
        #[arg(required = true, value_name = "EVENT_LOG")]
        logs: Vec<PathBuf>,
        /// Write the calibrated scenario (YAML) to this path.
        #[arg(long, value_name = "PATH.yaml")]
        out: PathBuf,
        /// Take the name, seed, slot count, deadline, orchestration and cadence from this
        /// scenario (default: the documented defaults, and the largest deadline in the logs).
        #[arg(long, value_name = "SCENARIO")]
        base: Option<PathBuf>,
        /// The slot count of the calibrated scenario (default: the base's, else 10,000).
        #[arg(long)]
        slots: Option<u64>,
        /// The seed of the calibrated scenario (default: the base's, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Keep each recorded slot's four stage latencies together (`joint_latency: true`): the
        /// rows are the slots whose stages all completed at their first attempt.
        #[arg(long)]
        joint: bool,
    },
    /// Join the shard files of one run or sweep (`--shard K/N --json FILE`) into its result,
    /// byte for byte the unsharded run's.
    Merge {
        /// Every shard file of the run or sweep, in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Write the merged report (or sweep result) as JSON to this path.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Draw the merged run's latency plot, or the sweep's trade-offs, as SVG.
        #[arg(long, value_name = "PATH.svg")]
        plot: Option<PathBuf>,
    },
}

/// The most worker threads `--workers` may ask for.
const MAX_WORKERS: usize = 1024;

fn workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_WORKERS => Ok(n),
        _ => Err(format!(
            "expected a thread count from 0 (one per core) to {MAX_WORKERS}, got {}",
            vortex::yaml::quoted(s)
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Merging and calibrating need no simulation, so they work in either build.
    match cli.command {
        Command::Merge { shards, json, plot } => {
            finish(outputs(json, plot).and_then(|(json, plot)| merge(&shards, json, plot)))
        }
        Command::Calibrate { logs, out, base, slots, seed, joint } => {
            let options = vortex_sim::calibrate::Options { base, slots, seed, joint };
            finish(calibrate(&logs, &out, &options))
        }
        command => finish(run(Cli { command })),
    }
}

fn calibrate(logs: &[PathBuf], out: &std::path::Path, options: &vortex_sim::calibrate::Options) -> anyhow::Result<()> {
    let out = OutputFile::check("--out", out)?;
    let text = vortex_sim::calibrate::calibrate(logs, options).map_err(anyhow::Error::msg)?;
    write(&out, &text)
}

/// Checks `--json` and `--plot` before any work starts: a run must not fail at its end because
/// an output cannot be written, nor write one output and fail on the other.
fn outputs(json: Option<PathBuf>, plot: Option<PathBuf>) -> anyhow::Result<(Option<OutputFile>, Option<OutputFile>)> {
    if let (Some(a), Some(b)) = (&json, &plot) {
        if a == b {
            anyhow::bail!("--json and --plot name the same file {}; give each its own", a.display());
        }
    }
    let json = json.map(|p| OutputFile::check("--json", &p)).transpose()?;
    let plot = plot.map(|p| OutputFile::check("--plot", &p)).transpose()?;
    Ok((json, plot))
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write(out: &OutputFile, contents: &str) -> anyhow::Result<()> {
    out.write(contents.as_bytes())?;
    eprintln!("wrote {}", out.path().display());
    Ok(())
}

fn merge(paths: &[PathBuf], json: Option<OutputFile>, plot: Option<OutputFile>) -> anyhow::Result<()> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = vortex::yaml::read_text(path, vortex_sim::MAX_SHARD_FILE_BYTES)?;
        files.push((path.display().to_string(), text));
    }
    match vortex_sim::merge(&files).map_err(anyhow::Error::msg)? {
        vortex_sim::Merged::Run(run) => {
            let report = run.report();
            print!("{}", report.to_table(run.info()));
            if let Some(path) = &json {
                write(path, &report.to_json())?;
            }
            if let Some(path) = &plot {
                write(path, &run.latency_svg().map_err(anyhow::Error::msg)?)?;
            }
        }
        vortex_sim::Merged::Sweep(sweep) => {
            print!("{}", sweep.report.to_table(&sweep.objective, &sweep.set));
            if let Some(path) = &json {
                write(path, &sweep.report.to_json())?;
            }
            if let Some(path) = &plot {
                let title = format!("sweep of {}: {}", paths[0].display(), sweep.objective);
                write(path, &vortex_sim::sweep_svg(&title, &sweep.report).map_err(anyhow::Error::msg)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(not(madsim))]
fn run(_: Cli) -> anyhow::Result<()> {
    anyhow::bail!(
        "vortex-sim was built without --cfg madsim, so it has no virtual time; run it through the cargo alias: \
         `cargo sim -- run SCENARIO` (and do not export RUSTFLAGS, which replaces the alias's flags)"
    )
}

#[cfg(madsim)]
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { scenario, slots, json, plot, workers, shard } => {
            let (json, plot) = outputs(json, plot)?;
            commands::run(scenario, slots, json, plot, workers, shard)
        }
        Command::Sweep { scenario, slots, vary, objective, json, plot, workers, shard } => {
            let (json, plot) = outputs(json, plot)?;
            commands::sweep(scenario, slots, &vary, &objective, json, plot, workers, shard)
        }
        Command::Replay { scenario, slot, events } => {
            let events = events.map(|p| OutputFile::check("--events", &p)).transpose()?;
            commands::replay(scenario, slot, events)
        }
        Command::Merge { .. } | Command::Calibrate { .. } => unreachable!("handled before the simulation"),
    }
}

#[cfg(madsim)]
mod commands {
    use vortex::output::OutputFile;
    use vortex_sim::sweep::{Objective, Vary};
    use vortex_sim::{Override, Scenario, Shard, Simulator};

    use super::{write, ScenarioArgs};

    fn load(args: &ScenarioArgs, slots: Option<u64>) -> anyhow::Result<Scenario> {
        Ok(Scenario::load(&args.scenario, &overrides(args, slots))?)
    }

    fn overrides(args: &ScenarioArgs, slots: Option<u64>) -> Vec<Override> {
        let mut overrides = args.set.clone();
        // --seed and --slots are overrides like any other, so they are checked the same way.
        let mut push = |flag: &'static str, key: &str, value: Option<u64>| {
            if let Some(v) = value {
                overrides.push(Override::from_flag(flag, key, v));
            }
        };
        push("--seed", "seed", args.seed);
        push("--slots", "slots", slots);
        overrides
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sweep(
        args: ScenarioArgs,
        slots: Option<u64>,
        vary: &[Vary],
        objective: &Objective,
        json: Option<OutputFile>,
        plot: Option<OutputFile>,
        workers: usize,
        shard: Option<Shard>,
    ) -> anyhow::Result<()> {
        let simulator = Simulator::new(load(&args, slots)?).workers(workers).progress(true);
        let started = std::time::Instant::now();
        let shard = shard.unwrap_or(Shard::WHOLE);
        let sweep = simulator.sweep(vary, shard).map_err(anyhow::Error::msg)?;
        let took = started.elapsed().as_secs_f64();
        if !shard.is_whole() {
            let path = &json.expect("clap requires --json with --shard");
            write(path, &sweep.to_shard_json(objective, &args.set))?;
            eprintln!(
                "simulated shard {shard}: {} slots in {took:.2} s of wall time; `vortex-sim merge` joins the shards",
                sweep.slots()
            );
            return Ok(());
        }
        let report = sweep.report(objective);
        print!("{}", report.to_table(objective, &args.set));
        eprintln!("simulated {} slots in {took:.2} s of wall time", sweep.slots());
        if let Some(path) = &json {
            write(path, &report.to_json())?;
        }
        if let Some(path) = &plot {
            let title = format!("sweep of {}: {objective}", args.scenario.display());
            write(path, &vortex_sim::sweep_svg(&title, &report).map_err(anyhow::Error::msg)?)?;
        }
        Ok(())
    }

    pub fn run(
        args: ScenarioArgs,
        slots: Option<u64>,
        json: Option<OutputFile>,
        plot: Option<OutputFile>,
        workers: usize,
        shard: Option<Shard>,
    ) -> anyhow::Result<()> {
        let simulator = Simulator::new(load(&args, slots)?).workers(workers).progress(true);
        let started = std::time::Instant::now();
        if let Some(shard) = shard {
            let run = simulator.run_shard(shard).map_err(anyhow::Error::msg)?;
            let path = &json.expect("clap requires --json with --shard");
            write(path, &run.to_shard_json())?;
            eprintln!(
                "simulated shard {shard}: {} slots in {:.2} s of wall time; `vortex-sim merge` joins the shards",
                run.report().slots,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let run = simulator.run();
        let report = run.report();
        print!("{}", report.to_table(run.info()));
        eprintln!("simulated {} slots in {:.2} s of wall time", report.slots, started.elapsed().as_secs_f64());
        if let Some(path) = &json {
            write(path, &report.to_json())?;
        }
        if let Some(path) = &plot {
            write(path, &run.latency_svg().map_err(anyhow::Error::msg)?)?;
        }
        Ok(())
    }

    pub fn replay(args: ScenarioArgs, slot: u64, events: Option<OutputFile>) -> anyhow::Result<()> {
        let simulator = Simulator::new(load(&args, None)?).progress(true);
        let replay = simulator.replay(slot).map_err(anyhow::Error::msg)?;
        print!("{}", simulator.render_replay(slot, &replay));
        if let Some(path) = &events {
            let lines: String = replay.events.iter().map(|e| e.to_json_line() + "\n").collect();
            write(path, &lines)?;
        }
        Ok(())
    }
}
