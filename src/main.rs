//! `vortex`: the director-side command line (config checks now; real mode later).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Vortex slot orchestrator: turns recipes into talking-head clips within each slot's deadline.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the effective values.
    Check {
        /// The config file.
        #[arg(default_value = "config.yaml")]
        path: PathBuf,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config { command: ConfigCommand::Check { path } } => {
            let config = vortex::Config::load(&path)?;
            println!("# {}: valid. Effective values:", path.display());
            print!("{}", config.to_yaml());
            Ok(())
        }
    }
}
