//! `vortex-sim`: run scenarios and replay single slots in virtual time.
//!
//! Reached through the cargo alias, which adds `--cfg madsim`: `cargo sim -- run scenarios/rtx3060-nominal.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Re-run one slot alone and print its full event timeline in virtual time.
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
    use vortex_sim::{Override, Report, RunOptions, Scenario};

    use super::ScenarioArgs;

    fn load(args: &ScenarioArgs, slots: Option<u64>) -> anyhow::Result<Arc<Scenario>> {
        let mut overrides = args.set.clone();
        // --seed and --slots are overrides like any other, so they are checked the same way.
        let mut push = |key: &str, value: Option<u64>| {
            if let Some(v) = value {
                overrides.push(Override { key: key.into(), value: v.into() });
            }
        };
        push("seed", args.seed);
        push("slots", slots);
        Ok(Arc::new(Scenario::load(&args.scenario, &overrides)?))
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
            write_atomic(&path, report.to_json().as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = plot {
            let svg = vortex_sim::plot::latency_svg(&scenario, &tally).map_err(anyhow::Error::msg)?;
            write_atomic(&path, svg.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
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
