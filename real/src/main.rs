//! `vortex`: the director-side command line.

use std::path::{Path, PathBuf};
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
    /// Work with the real models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
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

#[derive(Subcommand)]
enum ModelsCommand {
    /// Load every configured model; print each one's size, dtype, device and load time, and the VRAM budget.
    Check {
        /// The config file.
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    init_logs();
    vortex_real::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Structured logs: one JSON object per line on standard error, filtered by `RUST_LOG`
/// (default `warn`, so the commands' own output stays readable; `RUST_LOG=info` shows every slot
/// event).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config { command: ConfigCommand::Check { path } } => {
            let config = vortex_real::config::Config::load(&path)?;
            println!("# {}: valid. Effective values:", path.display());
            print!("{}", config.to_yaml());
            Ok(())
        }
        Command::Models { command: ModelsCommand::Check { config: path } } => models_check(&path),
    }
}

fn models_check(path: &Path) -> anyhow::Result<()> {
    let config = vortex_real::config::Config::load(path)?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let budget = vortex_real::budget::Budget::estimate(&config, base)?;
    println!(
        "VRAM budget on {} (soft {} GB, hard {} GB):",
        config.device.name,
        config.vram.soft_limit_gb.get(),
        config.vram.hard_limit_gb.get()
    );
    for line in budget.lines() {
        println!("  {line}");
    }
    println!("  total {}", vortex_real::budget::size(budget.total()));
    let models = vortex_real::models::Models::load(&config, base)?;
    if models.over_soft_limit {
        eprintln!("warning: the models exceed vram.soft_limit_gb");
    }
    if models.loaded.is_empty() {
        anyhow::bail!("{}: no model is configured in `models` (see docs/real-mode.md)", path.display());
    }
    println!("{:<10} {:>6} {:>10} {:>8} {:>8} {:>10}", "model", "dtype", "size", "tensors", "device", "load_ms");
    for m in &models.loaded {
        println!(
            "{:<10} {:>6} {:>10} {:>8} {:>8} {:>10.1}",
            m.name,
            m.dtype.name(),
            vortex_real::budget::size(m.resident_bytes),
            m.tensors,
            config.device.name,
            m.load_time.as_secs_f64() * 1e3
        );
    }
    let missing: Vec<&str> =
        [("clip_b32", config.models.clip_b32.is_none()), ("clip_l14", config.models.clip_l14.is_none())]
            .into_iter()
            .filter_map(|(n, m)| m.then_some(n))
            .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: models.{} not configured: the clip stage needs both CLIP models",
            path.display(),
            missing.join(", models.")
        );
    }
    if config.models.flux.is_none() {
        println!("models.flux not configured: the image stage will fail until it is");
    }
    println!("all configured models loaded; stages not built yet in real mode: audio (Kokoro), video (LivePortrait)");
    Ok(())
}
