//! `vortex-sim`: run scenarios and replay single slots in virtual time.
//!
//! Reached through the cargo alias, which adds `--cfg madsim`: `cargo sim -- run scenarios/rtx3060-nominal.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vortex_sim::sweep::{Objective, Vary};
use vortex_sim::Override;

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
        /// Worker threads (default: one per core); the report does not depend on it.
        #[arg(long, default_value_t = 0)]
        workers: usize,
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
        /// Worker threads (default: one per core); points run in parallel, results do not depend on it.
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
    /// Re-run one slot and print its full event timeline in virtual time.
    Replay {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// The slot index (the report lists examples per outcome).
        #[arg(long)]
        slot: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
        Command::Run { scenario, slots, json, plot, workers } => commands::run(scenario, slots, json, plot, workers),
        Command::Sweep { scenario, slots, vary, objective, json, plot, workers } => {
            commands::sweep(scenario, slots, &vary, &objective, json, plot, workers)
        }
        Command::Replay { scenario, slot } => commands::replay(scenario, slot),
    }
}

#[cfg(madsim)]
mod commands {
    use std::io::IsTerminal;
    use std::path::PathBuf;
    use std::sync::Arc;

    use anyhow::Context;
    use vortex_sim::report::write_atomic;
    use vortex_sim::sweep::{Objective, Vary};
    use vortex_sim::{Override, Report, RunOptions, Scenario};

    use super::ScenarioArgs;

    fn load(args: &ScenarioArgs, slots: Option<u64>) -> anyhow::Result<Arc<Scenario>> {
        Ok(Arc::new(Scenario::load(&args.scenario, &overrides(args, slots))?))
    }

    fn overrides(args: &ScenarioArgs, slots: Option<u64>) -> Vec<Override> {
        let mut overrides = args.set.clone();
        // --seed and --slots are overrides like any other, so they are checked the same way.
        let mut push = |key: &str, value: Option<u64>| {
            if let Some(v) = value {
                overrides.push(Override { key: key.into(), value: v.into() });
            }
        };
        push("seed", args.seed);
        push("slots", slots);
        overrides
    }

    fn write(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
        write_atomic(path, contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }

    pub fn sweep(
        args: ScenarioArgs,
        slots: Option<u64>,
        vary: &[Vary],
        objective: &Objective,
        json: Option<PathBuf>,
        plot: Option<PathBuf>,
        workers: usize,
    ) -> anyhow::Result<()> {
        let points = vortex_sim::sweep::scenarios(&args.scenario, &overrides(&args, slots), vary)?;
        let total: u64 = points.iter().map(|(_, s)| s.slots).sum();
        let bar = indicatif::ProgressBar::new(total);
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} slots over {msg} [{bar:30}] eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("{} points", points.len()));
        let started = std::time::Instant::now();
        let report = vortex_sim::sweep::run(points, objective, workers, &|n| bar.inc(n));
        bar.finish_and_clear();
        print!("{}", report.to_table(objective, &args.set));
        eprintln!("simulated {total} slots in {:.2} s of wall time", started.elapsed().as_secs_f64());
        if let Some(path) = json {
            write(&path, &report.to_json())?;
        }
        if let Some(path) = plot {
            let title = format!("sweep of {}: {objective}", args.scenario.display());
            write(&path, &vortex_sim::plot::sweep_svg(&title, &report).map_err(anyhow::Error::msg)?)?;
        }
        Ok(())
    }

    pub fn run(
        args: ScenarioArgs,
        slots: Option<u64>,
        json: Option<PathBuf>,
        plot: Option<PathBuf>,
        workers: usize,
    ) -> anyhow::Result<()> {
        let scenario = load(&args, slots)?;
        let options = RunOptions { workers, progress: std::io::stderr().is_terminal() };
        let started = std::time::Instant::now();
        let tally = vortex_sim::run(&scenario, options);
        let report = Report::new(&scenario, &tally);
        print!("{}", report.to_table(&scenario));
        eprintln!("simulated {} slots in {:.2} s of wall time", report.slots, started.elapsed().as_secs_f64());
        if let Some(path) = json {
            write(&path, &report.to_json())?;
        }
        if let Some(path) = plot {
            write(&path, &vortex_sim::plot::latency_svg(&scenario, &tally).map_err(anyhow::Error::msg)?)?;
        }
        Ok(())
    }

    pub fn replay(args: ScenarioArgs, slot: u64) -> anyhow::Result<()> {
        let scenario = load(&args, None)?;
        anyhow::ensure!(
            slot < scenario.slots,
            "--slot {slot} is out of range: scenario {} has slots 0..{}",
            scenario.name,
            scenario.slots
        );
        let replay = vortex_sim::replay(&scenario, slot);
        print!("{}", vortex_sim::runner::render_replay(&scenario, slot, &replay));
        Ok(())
    }
}
