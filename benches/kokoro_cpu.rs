//! Kokoro-82M on the CPU: this crate's candle port against PyTorch (kokoro 0.9.4's `KModel`, f32)
//! and onnxruntime (the published `kokoro-v1.0.int8.onnx`: int8 weights, as no f32 ONNX export
//! is published) in the same run, synthesising the same ~45-second newsreader script: phonemised
//! once by this crate's G2P (misaki-rs, misaki 0.9.4's `G2P(trf=False, british=False,
//! fallback=None)`) and cut by its chunker into ≤510-phoneme chunks, which all three sides
//! speak with voice af_heart at speed 1. One run = every chunk, the model loaded and warm.
//!
//! `KOKORO_WEIGHTS_DIR=DIR VORTEX_TORCH_PYTHON=/path/to/python cargo bench -p vortex-real --bench kokoro_cpu`
//! with DIR holding `kokoro-v1_0.safetensors`, `voices/af_heart.bin` and (for onnxruntime)
//! `kokoro-v1.0.int8.onnx`; the python needs torch, kokoro 0.9.4, kokoro_onnx (for its
//! config.json) and onnxruntime, and runs `tools/bench_kokoro_torch.py`, whose runs interleave
//! with candle's. Without `KOKORO_WEIGHTS_DIR` (or its files) the bench does nothing; without
//! `VORTEX_TORCH_PYTHON` only candle is measured. `VORTEX_BENCH_THREADS` sets every side's thread
//! count (default: every core); `VORTEX_BENCH_RUNS` the runs per side (default 3).

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use common::{benching, env_number, load_average, median, peak_rss_mb, settle, threads, Reference};
use vortex_real::config::{KokoroModelConfig, ModelDtype};
use vortex_real::executor::CancelToken;
use vortex_real::kokoro::g2p::G2p;
use vortex_real::kokoro::pipeline::KokoroPipeline;

/// About 45 seconds of speech (140 words).
const SCRIPT: &str = "Good evening, and welcome to the six o'clock news. The city council voted on Tuesday \
    to expand the riverside park, adding new walking paths, a library branch and more than two hundred trees \
    along the eastern bank. Work is expected to begin next spring and to last about eighteen months. \
    Meanwhile, forecasters warn that a band of heavy rain will move across the region overnight, bringing \
    strong winds and the risk of local flooding, so drivers are urged to take extra care on the morning \
    commute. In sport, the home side secured a narrow victory in the final minutes, lifting them to third \
    place in the league. Tomorrow will be dry and bright in most places, with temperatures rising to around \
    twenty degrees by the afternoon. That is all for now. We will be back with more news at ten.";

const VOICE: &str = "af_heart";
const SAMPLE_RATE: f64 = 24_000.;

/// The weights folder, or why the bench does nothing.
fn weights_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("KOKORO_WEIGHTS_DIR").ok_or("KOKORO_WEIGHTS_DIR is not set")?;
    let dir = PathBuf::from(dir);
    for file in ["kokoro-v1_0.safetensors", "voices/af_heart.bin"] {
        if !dir.join(file).is_file() {
            return Err(format!("{} is missing", dir.join(file).display()));
        }
    }
    Ok(dir)
}

fn main() {
    if !benching() {
        return;
    }
    let dir = match weights_dir() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("kokoro_cpu: skipped: {why} (set KOKORO_WEIGHTS_DIR to a folder with Kokoro's weights)");
            return;
        }
    };
    let threads = threads();
    let runs = env_number("VORTEX_BENCH_RUNS").unwrap_or(3);
    // candle's CPU kernels run on rayon's global pool.
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    vortex_real::keep_freed_memory();

    let chunks = G2p::new().chunks(SCRIPT).expect("the script phonemises");
    let phonemes: Vec<&str> = chunks.iter().map(|c| c.phonemes.as_str()).collect();
    let ids: usize = chunks.iter().map(|c| c.ids.len()).sum();
    let words = SCRIPT.split_whitespace().count();
    eprintln!("script: {words} words, {} chunks, {ids} phonemes ({:?} each)", chunks.len(), {
        chunks.iter().map(|c| c.ids.len()).collect::<Vec<_>>()
    });

    let entry = KokoroModelConfig {
        weights: "kokoro-v1_0.safetensors".into(),
        voices: "voices".into(),
        architecture: None,
        dtype: ModelDtype::F32,
    };
    let started = Instant::now();
    let pipeline = KokoroPipeline::load(&entry, &dir, &Device::Cpu).expect("Kokoro loads");
    let load_s = started.elapsed().as_secs_f64();
    let cancel = CancelToken::default();
    let synthesize = || -> usize {
        phonemes
            .iter()
            .map(|ps| {
                let speech = pipeline.synthesize_phonemes(ps, VOICE, 1.0, 7, &cancel).expect("synthesis");
                black_box(speech.samples.len())
            })
            .sum()
    };
    let samples = synthesize(); // warm-up
    let audio_s = samples as f64 / SAMPLE_RATE;
    let candle_peak = peak_rss_mb();

    let chunks_file = std::env::temp_dir().join(format!("kokoro_cpu_chunks_{}.json", std::process::id()));
    std::fs::write(&chunks_file, serde_json::to_string(&phonemes).unwrap()).expect("writing the chunks");
    // PyTorch's and onnxruntime's side: a child process that loads both once and times one
    // synthesis of every chunk per request ("torch" or "ort").
    let args = [
        "--weights-dir".into(),
        dir.display().to_string(),
        "--chunks".into(),
        chunks_file.display().to_string(),
        "--voice".into(),
        VOICE.into(),
        "--threads".into(),
        threads.to_string(),
        "--serve".into(),
    ];
    let mut reference = Reference::start("bench_kokoro_torch.py", &args);
    let has_ort = reference.as_ref().is_some_and(|r| !r.ready["ort_audio_s"].is_null());

    // Interleaved, with a pause (settle) before each run.
    let loads = load_average;
    let load_before = loads();
    let (mut candle_runs, mut torch_runs, mut ort_runs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        settle();
        let started = Instant::now();
        black_box(synthesize());
        candle_runs.push(started.elapsed().as_secs_f64());
        if let Some(r) = reference.as_mut() {
            settle();
            torch_runs.push(seconds(r.ask("torch")));
            if has_ort {
                settle();
                ort_runs.push(seconds(r.ask("ort")));
            }
        }
        eprintln!(
            "run {}: candle {:.2} s, PyTorch {:?} s, ORT int8 {:?} s; load average {}",
            run + 1,
            candle_runs[run],
            torch_runs.last(),
            ort_runs.last(),
            loads()
        );
    }
    let load_after = loads();
    let _ = std::fs::remove_file(&chunks_file);

    let candle_s = median(candle_runs);
    let mut lines = vec![
        format!(
            "{words}-word script, {} chunks, {ids} phonemes, voice {VOICE}, speed 1, {threads} threads, f32 unless \
             said, median of {runs} interleaved warm runs",
            chunks.len()
        ),
        format!(
            "candle (this crate):      {candle_s:6.2} s for {audio_s:.2} s of audio, RTF {:.3}; load {load_s:.1} s, \
             peak RSS {:.0} MB",
            rtf(candle_s, audio_s),
            candle_peak.unwrap_or(f64::NAN)
        ),
    ];
    match reference.as_ref() {
        Some(r) => {
            let torch_s = median(torch_runs);
            let torch_audio = r.ready["torch_audio_s"].as_f64().unwrap();
            lines.push(format!(
                "PyTorch {} (KModel):  {torch_s:6.2} s for {torch_audio:.2} s of audio, RTF {:.3}; load {:.1} s, peak \
                 RSS {:.0} MB; candle / PyTorch = {:.2}",
                r.ready["torch"].as_str().unwrap_or("?"),
                rtf(torch_s, torch_audio),
                r.ready["torch_load_s"].as_f64().unwrap(),
                r.ready["torch_peak_rss_mb"].as_f64().unwrap(),
                candle_s / torch_s
            ));
            if has_ort {
                let ort_s = median(ort_runs);
                let ort_audio = r.ready["ort_audio_s"].as_f64().unwrap();
                lines.push(format!(
                    "onnxruntime {} int8:   {ort_s:6.2} s for {ort_audio:.2} s of audio, RTF {:.3}; load {:.1} s, \
                     process peak RSS (PyTorch + ORT) {:.0} MB; candle / ORT = {:.2}",
                    r.ready["ort"].as_str().unwrap_or("?"),
                    rtf(ort_s, ort_audio),
                    r.ready["ort_load_s"].as_f64().unwrap(),
                    r.ready["process_peak_rss_mb"].as_f64().unwrap(),
                    candle_s / ort_s
                ));
            } else {
                lines.push("onnxruntime: skipped (no kokoro-v1.0.int8.onnx in KOKORO_WEIGHTS_DIR)".into());
            }
        }
        None => lines.push("PyTorch and onnxruntime: skipped (set VORTEX_TORCH_PYTHON to compare)".into()),
    }
    lines.push(format!("load average (1, 5, 15 min) before: {load_before}; after: {load_after}"));
    eprintln!("\nsummary:\n{}", lines.join("\n"));
}

/// A reference's answer: seconds of one synthesis.
fn seconds(line: String) -> f64 {
    line.trim().parse().expect("seconds")
}

/// Real-time factor: seconds of computing per second of audio.
fn rtf(seconds: f64, audio_s: f64) -> f64 {
    seconds / audio_s
}
