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
    /// Generate one slot end to end with all four models (audio ∥ image → video → CLIP check)
    /// under its deadline, and write its folder: audio.wav, the clip (slot.mp4 when ffmpeg is on
    /// PATH, else video.y4m), actor.png, result.json and events.jsonl. Exit code 0: delivered;
    /// 3: completed late or rejected by the self-check; 4: aborted; 5: failed; 1: error.
    Run(RunArgs),
    /// Serve slots over HTTP (docs/api.md): load the models once, queue posted recipes, generate
    /// one slot at a time under its scheduled deadline, write each slot's folder under
    /// service.out_dir; GET / is a status page, GET /metrics Prometheus metrics. SIGTERM stops it.
    Serve {
        /// The config file (its `service` section: out_dir, queue_max, shutdown_grace_s).
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// The address to listen on (port 0 picks a free port; the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Animate an actor image with LivePortrait (models.liveportrait in the config), its lips
    /// driven by a speech WAV, into a 24 fps 512×512 clip: an mp4 with the audio when ffmpeg is
    /// on PATH, otherwise a .y4m video beside a .wav copy of the audio.
    Animate {
        /// The actor image (PNG or JPEG; a portrait, face above the middle).
        #[arg(long)]
        image: PathBuf,
        /// The speech (WAV, any rate from 8 to 192 kHz, at most 5 minutes).
        #[arg(long)]
        audio: PathBuf,
        /// The clip to write: `NAME.mp4` (or `NAME.y4m` for the raw video and `NAME.wav`).
        #[arg(long)]
        out: PathBuf,
        /// Expression preset: neutral, excited, manic or calm.
        #[arg(long, default_value = "neutral")]
        preset: String,
        /// How strongly the preset applies, 0 to 1.
        #[arg(long, default_value_t = 0.5)]
        intensity: f32,
        /// Seed of the blinks and the head sway.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The config file.
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
    },
}

/// `vortex run`'s flags.
#[derive(clap::Args)]
struct RunArgs {
    /// The recipe (YAML or JSON; docs/recipes.md), checked before any model loads.
    #[arg(long)]
    recipe: PathBuf,
    /// The config file (models, orchestration, verification).
    #[arg(long, default_value = "config.yaml")]
    config: PathBuf,
    /// The slot's folder: must not exist, or be empty; written whole or not at all.
    #[arg(long)]
    out: PathBuf,
    /// The slot's deadline in seconds from its start (above 0, at most 86,400).
    #[arg(long, default_value_t = 45.0, allow_negative_numbers = true)]
    deadline_s: f64,
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
    /// Write tiny random-weight models of every stage and a config.yaml naming them, for smoke
    /// tests: they are not models (every image, voice and frame they make is noise).
    Tiny {
        /// The folder to write (must not exist, or be empty); written whole or not at all.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the weights: the same seed writes the same bytes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    // Structured logs: JSON lines on standard error filtered by `RUST_LOG` (default `warn`;
    // `RUST_LOG=info` shows every slot event), and each slot's own event capture.
    vortex_real::director::capture::init_logs();
    vortex_real::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_slot(&args),
        command => run(command).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// `vortex run`: checks the recipe, the deadline and the folder before loading anything, then
/// loads the models, runs the slot and writes its folder. The exit code says the outcome.
fn run_slot(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let recipe = vortex::Recipe::load(&args.recipe)?;
    let deadline = vortex::units::Seconds::new(args.deadline_s)
        .map_err(|e| anyhow::anyhow!("--deadline-s {}: {e}", args.deadline_s))?
        .duration();
    let out = vortex_real::director::files::OutDir::check("--out", &args.out)?;
    let (config, base) = load_config(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Wall clock on purpose: load and generation times are reported to the person running it.
    let started = std::time::Instant::now();
    let director = runtime.block_on(vortex_real::director::Director::load(&config, base))?;
    let loaded = started.elapsed();
    director.check(&recipe).map_err(|e| anyhow::anyhow!("{}: {e}", args.recipe.display()))?;
    let run = runtime.block_on(director.run_slot(&recipe, deadline))?;
    let written = vortex_real::director::files::write_run(&run, &out, vortex_real::media::ffmpeg_on_path())?;
    let verdict = run.verdict();
    let report = &run.report;
    let outcome = match &report.outcome {
        vortex::Outcome::Completed(c) => format!(
            "completed {} the {:.1} s deadline, self-check {}",
            if c.deadline_met { "within" } else { "after" },
            report.meta.deadline.as_secs_f64(),
            if c.clip_passed { "passed" } else { "rejected" }
        ),
        vortex::Outcome::Aborted(a) => {
            format!(
                "aborted {} (the predictor expected it to end at {:.1} s)",
                a.checkpoint,
                a.predicted_finish.as_secs_f64()
            )
        }
        vortex::Outcome::Failed(f) => {
            format!("failed at {} after {} attempt(s): {}", f.stage.name(), f.attempts, f.reason.kind())
        }
    };
    println!(
        "slot {}: {outcome} in {:.1} s (models loaded in {:.1} s); wrote {}: {}",
        recipe.slot_id,
        report.timing.total_ms / 1e3,
        loaded.as_secs_f64(),
        written.dir.display(),
        written.files.join(", ")
    );
    if let Some(note) = &written.note {
        println!("{note}");
    }
    Ok(ExitCode::from(verdict.exit_code()))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(_) => unreachable!("main runs `vortex run` itself, for its exit code"),
        Command::Serve { config, listen } => serve(&config, listen),
        Command::Config { command: ConfigCommand::Check { path } } => {
            let config = vortex_real::config::Config::load(&path)?;
            println!("# {}: valid. Effective values:", path.display());
            print!("{}", config.to_yaml());
            Ok(())
        }
        Command::Models { command: ModelsCommand::Check { config: path } } => models_check(&path),
        Command::Models { command: ModelsCommand::Tiny { out, seed } } => {
            let config = vortex_real::tiny::write_setup(&out, seed)?;
            println!("{}: tiny models ({}), seed {seed}", config.display(), vortex_real::tiny::NOTICE);
            Ok(())
        }
        Command::Tts { text, phonemes, voice, speed, seed, out, config } => {
            let input = match (text, phonemes) {
                (Some(text), _) => TtsInput::Text(text),
                (None, Some(phonemes)) => TtsInput::Phonemes(phonemes),
                (None, None) => unreachable!("clap requires --text or --phonemes"),
            };
            tts(&input, &voice, speed, seed, &out, &config)
        }
        Command::Animate { image, audio, out, preset, intensity, seed, config } => {
            let expression = vortex::recipe::Expression { preset, intensity };
            animate(&image, &audio, &out, &expression, seed, &config)
        }
    }
}

/// `vortex serve`: binds the address first (a taken port fails before the models load), then
/// loads the models and serves until SIGTERM; prints the address once it accepts connections.
fn serve(path: &Path, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let (config, base) = load_config(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
        let service = vortex_real::service::Service::start(&config, base).await?;
        service
            .run(listener, |addr| {
                println!("vortex serve: listening on http://{addr}");
                let _ = std::io::Write::flush(&mut std::io::stdout());
            })
            .await
    })
}

/// `vortex animate`: loads LivePortrait alone, animates the image by the audio, writes the clip.
fn animate(
    image: &Path,
    audio: &Path,
    out: &Path,
    expression: &vortex::recipe::Expression,
    seed: u64,
    path: &Path,
) -> anyhow::Result<()> {
    use vortex_real::liveportrait::{driver, pipeline::LivePortraitPipeline};
    let raw = out.extension().is_some_and(|e| e == "y4m");
    if !raw && out.extension().is_none_or(|e| e != "mp4") {
        anyhow::bail!("--out {}: expected a .mp4 (or .y4m) file name", out.display());
    }
    let video_out = vortex::output::OutputFile::check("--out", &out.with_extension(if raw { "y4m" } else { "mp4" }))?;
    let actor = vortex_real::media::read_rgb(image).map_err(|e| anyhow::anyhow!("--image {}: {e}", image.display()))?;
    let (samples, rate) =
        vortex_real::media::read_wav_mono(audio).map_err(|e| anyhow::anyhow!("--audio {}: {e}", audio.display()))?;
    // Checked before the models load: a bad preset, intensity or audio costs nothing.
    let motion = driver::drive(&samples, rate, &[], expression, seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    if motion.is_empty() {
        anyhow::bail!("--audio {}: no samples", audio.display());
    }
    let (config, base) = load_config(path)?;
    let Some(entry) = &config.models.liveportrait else {
        anyhow::bail!(
            "{}: models.liveportrait is not configured (see docs/real-mode.md, \"LivePortrait\")",
            path.display()
        );
    };
    let device = vortex_real::models::device(config.device.name)?;
    // Wall clock on purpose: load and generation times are reported to the person running it.
    let started = std::time::Instant::now();
    let pipeline = LivePortraitPipeline::load(entry, base, &device)?;
    let loaded = started.elapsed();
    let started = std::time::Instant::now();
    let cancel = vortex_real::executor::CancelToken::default();
    let source = pipeline.source(&pipeline.crop(&actor)?)?;
    let bar = indicatif::ProgressBar::new(motion.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} frames, {per_sec}, eta {eta}",
        )
        .expect("a valid template"),
    );
    let frames = pipeline.animate(&source, &motion, &cancel, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let took = started.elapsed();
    let video = vortex_real::media::Video { frames, fps: driver::FPS as f32 };
    let wav = vortex_real::media::wav_16bit(&samples, rate);
    let written = write_clip(&video, &wav, &video_out, raw)?;
    println!(
        "{written}: {} frames ({:.2} s at {} fps, {}×{}) on {}; loaded in {:.1} s, animated in {:.1} s ({:.2} frames/s)",
        video.frames.len(),
        video.frames.len() as f64 / f64::from(driver::FPS),
        driver::FPS,
        video.frames[0].width(),
        video.frames[0].height(),
        config.device.name,
        loaded.as_secs_f64(),
        took.as_secs_f64(),
        video.frames.len() as f64 / took.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Writes the clip: an mp4 with its audio through ffmpeg when it is on PATH (and `raw` is not
/// asked), else `NAME.y4m` and `NAME.wav`; returns what was written, in words.
fn write_clip(
    video: &vortex_real::media::Video,
    wav: &[u8],
    out: &vortex::output::OutputFile,
    raw: bool,
) -> anyhow::Result<String> {
    let y4m = vortex::output::OutputFile::check("--out", &out.path().with_extension("y4m"))?;
    let audio = vortex::output::OutputFile::check("--out", &out.path().with_extension("wav"))?;
    let ffmpeg = !raw && vortex_real::media::ffmpeg_on_path();
    if !ffmpeg {
        y4m.write_with(|w| vortex_real::media::write_y4m(w, video))?;
        audio.write(wav)?;
        let (v, a) = (y4m.path().display(), audio.path().display());
        if raw {
            return Ok(format!("{v} + {a}"));
        }
        return Ok(format!(
            "{v} + {a} (no H.264 encoder: ffmpeg is not on PATH, so no mp4 was made; \
             `ffmpeg -i {v} -i {a} -c:v libx264 -pix_fmt yuv420p -c:a aac {}` makes it)",
            out.path().display()
        ));
    }
    // ffmpeg reads the raw streams from a scratch folder beside the output and writes the mp4
    // there; the mp4 is then moved into place whole.
    let dir = out.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch = tempfile::Builder::new().prefix(".vortex-animate").tempdir_in(dir)?;
    let (v, a, mp4) = (scratch.path().join("v.y4m"), scratch.path().join("a.wav"), scratch.path().join("clip.mp4"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&v)?);
    vortex_real::media::write_y4m(&mut file, video)?;
    std::io::Write::flush(&mut file)?;
    std::fs::write(&a, wav)?;
    vortex_real::media::mux_mp4(&v, &a, &mp4)?;
    out.write_with(|w| std::io::copy(&mut std::fs::File::open(&mp4)?, w).map(|_| ()))?;
    Ok(format!("{} (H.264 + AAC, by ffmpeg)", out.path().display()))
}

/// The config file and the folder its relative paths start from.
fn load_config(path: &Path) -> anyhow::Result<(vortex_real::config::Config, &Path)> {
    let config = vortex_real::config::Config::load(path)?;
    Ok((config, path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))))
}

fn models_check(path: &Path) -> anyhow::Result<()> {
    let (config, base) = load_config(path)?;
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
    if config.models.liveportrait.is_none() {
        println!("models.liveportrait not configured: the video stage will fail until it is");
    }
    println!("all configured models loaded");
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
    let (config, base) = load_config(path)?;
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
