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
    /// Speak a text with Kokoro-82M (models.kokoro in the config) and write a 24 kHz WAV file.
    Tts {
        /// The text to speak (at most 20,000 characters).
        #[arg(long, required_unless_present = "phonemes", conflicts_with = "phonemes")]
        text: Option<String>,
        /// Phonemes to speak as given, without the text front end (Kokoro's alphabet, at most 510).
        #[arg(long)]
        phonemes: Option<String>,
        /// The voice: a name in models.kokoro.voices (af_heart, am_adam, bf_emma, ...).
        #[arg(long, default_value = "af_heart")]
        voice: String,
        /// Speaking speed, 0.5 to 2 (1 is normal).
        #[arg(long, default_value_t = 1.0)]
        speed: f32,
        /// Seed of the harmonic source's noise: the same text, voice, speed and seed give the same samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The WAV file to write (16-bit PCM, mono, 24 kHz); written whole or not at all.
        #[arg(long)]
        out: PathBuf,
        /// The config file.
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
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
        Command::Tts { text, phonemes, voice, speed, seed, out, config } => {
            let input = match (text, phonemes) {
                (Some(text), _) => TtsInput::Text(text),
                (None, Some(phonemes)) => TtsInput::Phonemes(phonemes),
                (None, None) => unreachable!("clap requires --text or --phonemes"),
            };
            tts(&input, &voice, speed, seed, &out, &config)
        }
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
    if config.models.kokoro.is_none() {
        println!("models.kokoro not configured: the audio stage will fail until it is");
    }
    println!("all configured models loaded; not built yet in real mode: the video stage (LivePortrait)");
    Ok(())
}

/// What `vortex tts` speaks.
enum TtsInput {
    Text(String),
    Phonemes(String),
}

/// `vortex tts`: loads Kokoro alone (not the other models), speaks the input, writes a WAV file.
fn tts(input: &TtsInput, voice: &str, speed: f32, seed: u64, out: &Path, path: &Path) -> anyhow::Result<()> {
    use vortex_real::kokoro::model::{SAMPLE_RATE, SPEED_RANGE};
    let out = vortex::output::OutputFile::check("--out", out)?;
    if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
        anyhow::bail!("--speed {speed}: expected a speed from {} to {}", SPEED_RANGE.0, SPEED_RANGE.1);
    }
    let config = vortex_real::config::Config::load(path)?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(entry) = &config.models.kokoro else {
        anyhow::bail!(
            "{}: models.kokoro is not configured (see docs/real-mode.md, \"Kokoro: weights\")",
            path.display()
        );
    };
    let device = vortex_real::models::device(config.device.name)?;
    // Wall clock on purpose: load and synthesis times are reported to the person running it.
    let started = std::time::Instant::now();
    let pipeline = vortex_real::kokoro::pipeline::KokoroPipeline::load(entry, base, &device)?;
    pipeline.voices().check(voice).map_err(|e| anyhow::anyhow!("--voice: {e}"))?;
    let loaded = started.elapsed();
    let started = std::time::Instant::now();
    let cancel = vortex_real::executor::CancelToken::default();
    let speech = match input {
        TtsInput::Text(text) => pipeline.synthesize(text, voice, speed, seed, &cancel),
        TtsInput::Phonemes(phonemes) => pipeline.synthesize_phonemes(phonemes, voice, speed, seed, &cancel),
    }
    .map_err(|e| {
        anyhow::anyhow!("{}: {e}", if matches!(input, TtsInput::Text(_)) { "--text" } else { "--phonemes" })
    })?;
    let took = started.elapsed();
    out.write(&vortex_real::media::wav_16bit(&speech.samples, SAMPLE_RATE))?;
    let seconds = speech.samples.len() as f64 / f64::from(SAMPLE_RATE);
    println!(
        "{}: {seconds:.2} s of speech ({} samples, {} phonemes) with {voice} on {}; loaded in {:.1} s, synthesised in {:.2} s ({:.1}x real time)",
        out.path().display(),
        speech.samples.len(),
        speech.phonemes.len(),
        config.device.name,
        loaded.as_secs_f64(),
        took.as_secs_f64(),
        seconds / took.as_secs_f64().max(1e-9)
    );
    Ok(())
}
