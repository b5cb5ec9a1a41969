//! LivePortrait at full size: this crate's candle port against the PyTorch reference (KwaiVGI's
//! `src/modules`, f32) in the same run, on the same device and thread count, from the same
//! checkpoints. One run = the source once (F and M on a 256 × 256 crop) and then
//! `VORTEX_BENCH_FRAMES` 512 × 512 frames, `VORTEX_BENCH_BATCH` at a time (per frame: keypoints,
//! lip and eye retargeting, stitching, W, G, and the frame to 8-bit RGB on the host). The figure
//! that matters is frames per second; a 45-second slot needs 1,080 frames (docs/real-mode.md).
//!
//! ```text
//! LIVEPORTRAIT_WEIGHTS_DIR=DIR VORTEX_TORCH_PYTHON=/path/to/python LIVEPORTRAIT_REF=/path/to/LivePortrait \
//!     cargo bench -p vortex-real --bench liveportrait
//! ```
//!
//! DIR holds the five checkpoints in the published layout: the real ones, or full-size random ones
//! from `tools/liveportrait_random_checkpoints.py` (the same work per frame). The python runs
//! `tools/bench_liveportrait_torch.py` (torch, PyYAML, and the uncommitted reference checkout at
//! LIVEPORTRAIT_REF); its runs interleave with candle's. Without LIVEPORTRAIT_WEIGHTS_DIR the bench
//! does nothing; without VORTEX_TORCH_PYTHON only candle is measured. Settings:
//! `VORTEX_BENCH_DEVICE` (`cpu`, default, or `cuda`: a `--features cuda` build; PyTorch then also
//! runs its own default, fp16 autocast), `VORTEX_BENCH_THREADS` (default: every core),
//! `VORTEX_BENCH_RUNS` (default 3), `VORTEX_BENCH_FRAMES` (default 4), `VORTEX_BENCH_BATCH`
//! (default 1), `VORTEX_BENCH_TF32=1` (candle's f32 products on CUDA in TF32, as PyTorch's f32
//! convolutions are by default). After the runs, one batch is timed network by network.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use common::{benching, env_number, load_average, median, peak_rss_mb, settle, threads, Reference};
use vortex::recipe::Expression;
use vortex_real::config::{BatchFrames, LivePortraitModelConfig, ModelDtype};
use vortex_real::executor::CancelToken;
use vortex_real::liveportrait::driver::{self, FrameMotion, FPS};
use vortex_real::liveportrait::pipeline::{LivePortraitPipeline, FILES};
use vortex_real::media::Frame;

/// Frames a 45-second slot needs at 24 fps.
const SLOT_FRAMES: f64 = 45.0 * FPS as f64;

/// The checkpoint folder, or why the bench does nothing.
fn weights_dir() -> Result<PathBuf, String> {
    let dir = PathBuf::from(std::env::var_os("LIVEPORTRAIT_WEIGHTS_DIR").ok_or("LIVEPORTRAIT_WEIGHTS_DIR is not set")?);
    for (_, stem) in FILES {
        let found = ["pth", "safetensors"].iter().any(|ext| dir.join(format!("{stem}.{ext}")).is_file());
        if !found {
            return Err(format!("{} has no {stem}.pth", dir.display()));
        }
    }
    Ok(dir)
}

/// A source like the PyTorch side's (a horizontal and a vertical ramp and a flat half); the pixel
/// values do not change the work.
fn source_image() -> Frame {
    Frame::from_fn(256, 256, |x, y| image::Rgb([x as u8, y as u8, 128]))
}

/// The driver's motion for `frames` frames of a syllable-rate tone (neutral, seed 7).
fn motion(frames: usize) -> Vec<FrameMotion> {
    let rate = 24_000u32;
    let samples: Vec<f32> = (0..frames * rate as usize / FPS as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                * (0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin())
        })
        .collect();
    let expression = Expression { preset: "neutral".into(), intensity: 0.5 };
    let motion = driver::drive(&samples, rate, &[], &expression, 7).expect("the driver takes a plain tone");
    assert_eq!(motion.len(), frames);
    motion
}

fn main() {
    if !benching() {
        return;
    }
    let dir = match weights_dir() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!(
                "liveportrait: skipped: {why} (set LIVEPORTRAIT_WEIGHTS_DIR to a folder of LivePortrait checkpoints)"
            );
            return;
        }
    };
    let threads = threads();
    let runs = env_number("VORTEX_BENCH_RUNS").unwrap_or(3);
    let frames = env_number("VORTEX_BENCH_FRAMES").unwrap_or(4);
    let batch = env_number("VORTEX_BENCH_BATCH").unwrap_or(1).min(64);
    let device_name = std::env::var("VORTEX_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = match device_name.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).expect("a CUDA device (build with --features cuda)"),
        other => panic!("VORTEX_BENCH_DEVICE is {other:?}: cpu or cuda"),
    };
    // TF32 tensor cores for candle's f32 matrix products on CUDA, as PyTorch uses for its f32
    // convolutions by default (torch.backends.cudnn.allow_tf32).
    let tf32 = std::env::var("VORTEX_BENCH_TF32").is_ok_and(|v| v == "1");
    candle_core::cuda::set_gemm_reduced_precision_f32(tf32);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    vortex_real::keep_freed_memory();

    let entry = LivePortraitModelConfig {
        weights: dir.clone(),
        architecture: None,
        dtype: ModelDtype::F32,
        batch_frames: BatchFrames::new(batch as i128).expect("1 to 64 frames per batch"),
    };
    let started = Instant::now();
    let pipeline = LivePortraitPipeline::load(&entry, std::path::Path::new("."), &device).expect("LivePortrait loads");
    let load_s = started.elapsed().as_secs_f64();
    let image = source_image();
    let motion = motion(frames);
    let cancel = CancelToken::default();
    // Seconds of the source and of the frames.
    let candle_run = || -> (f64, f64) {
        device.synchronize().expect("the device syncs");
        let started = Instant::now();
        let source = pipeline.source(&pipeline.crop(&image).expect("a crop")).expect("F and M run");
        device.synchronize().expect("the device syncs");
        let source_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let made = pipeline.animate(&source, &motion, &cancel, |_| {}).expect("W and G run");
        assert_eq!(made.len(), frames);
        assert_eq!(made[0].dimensions(), (512, 512));
        (source_s, started.elapsed().as_secs_f64())
    };
    // Warm-up: one batch.
    {
        let source = pipeline.source(&pipeline.crop(&image).unwrap()).unwrap();
        pipeline.animate(&source, &motion[..batch.min(frames)], &cancel, |_| {}).unwrap();
    }
    let candle_peak = peak_rss_mb();
    let breakdown = breakdown(&pipeline, &image, &motion[..batch.min(frames)], &device);

    let args: Vec<String> = [
        "--weights-dir",
        &dir.display().to_string(),
        "--frames",
        &frames.to_string(),
        "--batch",
        &batch.to_string(),
        "--threads",
        &threads.to_string(),
        "--device",
        &device_name,
        "--serve",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut reference = Reference::start("bench_liveportrait_torch.py", &args);
    let modes: &[&str] = if device_name == "cuda" { &["f32", "f16"] } else { &["f32"] };

    let load_before = load_average();
    let mut candle_runs = Vec::new();
    let mut torch_runs: Vec<Vec<serde_json::Value>> = vec![Vec::new(); modes.len()];
    for run in 0..runs {
        settle();
        candle_runs.push(candle_run());
        let mut said =
            format!("run {}: candle {:.2} s source, {:.2} s frames", run + 1, candle_runs[run].0, candle_runs[run].1);
        if let Some(r) = reference.as_mut() {
            for (i, mode) in modes.iter().enumerate() {
                settle();
                let answer = r.ask_json(mode);
                said +=
                    &format!("; PyTorch {mode} {:.2} s source, {:.2} s frames", answer["source_s"], answer["frames_s"]);
                torch_runs[i].push(answer);
            }
        }
        eprintln!("{said}; load average {}", load_average());
    }
    let load_after = load_average();

    let fps = |frames_s: f64| frames as f64 / frames_s;
    let candle_source = median(candle_runs.iter().map(|r| r.0).collect());
    let candle_frames = median(candle_runs.iter().map(|r| r.1).collect());
    let mut lines = vec![
        format!(
            "{device_name}, {threads} threads, {frames} frames of 512 × 512 per run, {batch} per batch, median of {runs} \
             interleaved warm runs; candle's f32 products on CUDA in TF32: {tf32}"
        ),
        format!(
            "candle f32 (this crate): {:7.3} fps ({:.2} s a frame); source {candle_source:.2} s; load {load_s:.1} s; \
             peak RSS {:.0} MB; a 45-s slot's frames: {:.0} s",
            fps(candle_frames),
            candle_frames / frames as f64,
            candle_peak.unwrap_or(f64::NAN),
            SLOT_FRAMES * candle_frames / frames as f64
        ),
    ];
    match reference.as_ref() {
        Some(r) => {
            for (mode, answers) in modes.iter().zip(torch_runs) {
                let torch_frames = median(answers.iter().map(|a| a["frames_s"].as_f64().unwrap()).collect());
                let torch_source = median(answers.iter().map(|a| a["source_s"].as_f64().unwrap()).collect());
                let vram = answers.iter().filter_map(|a| a["peak_vram_mb"].as_f64()).fold(f64::NAN, f64::max);
                lines.push(format!(
                    "PyTorch {mode}:             {:7.3} fps ({:.2} s a frame); source {torch_source:.2} s; load {:.1} s; \
                     peak RSS {:.0} MB; peak VRAM {vram:.0} MB; candle fps / PyTorch fps = {:.2}",
                    fps(torch_frames),
                    torch_frames / frames as f64,
                    r.ready["load_s"].as_f64().unwrap_or(f64::NAN),
                    r.ready["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                    torch_frames / candle_frames
                ));
            }
        }
        None => lines.push("PyTorch: skipped (set VORTEX_TORCH_PYTHON to compare)".into()),
    }
    lines.push(format!("candle per frame, one batch of {}: {breakdown}", batch.min(frames)));
    lines.push(format!("load average (1, 5, 15 min) before: {load_before}; after: {load_after}"));
    eprintln!("\nsummary:\n{}", lines.join("\n"));
}

/// Seconds per frame of each part of one batch of `motion`, the device synchronised between
/// them: the driving keypoints (S), W's dense motion network, the rest of W, and G.
fn breakdown(pipeline: &LivePortraitPipeline, image: &Frame, motion: &[FrameMotion], device: &Device) -> String {
    let source = pipeline.source(&pipeline.crop(image).unwrap()).unwrap();
    let b = motion.len();
    let timed = |f: &mut dyn FnMut()| {
        device.synchronize().unwrap();
        let started = Instant::now();
        f();
        device.synchronize().unwrap();
        started.elapsed().as_secs_f64() / b as f64
    };
    let mut driving = None;
    let keypoints_s = timed(&mut || driving = Some(pipeline.driving_keypoints(&source, motion).unwrap()));
    let driving = driving.unwrap();
    let mut dims = source.volume.dims().to_vec();
    dims[0] = b;
    let volume = source.volume.broadcast_as(dims).unwrap().contiguous().unwrap();
    let kp_source = source.keypoints.broadcast_as(driving.dims()).unwrap().contiguous().unwrap();
    let w = pipeline.warping();
    let mut motion = None;
    let dense_s = timed(&mut || motion = Some(w.dense_motion().forward(&volume, &driving, &kp_source).unwrap()));
    let mut warped = None;
    let rest_s = timed(&mut || warped = Some(w.warp(&volume, motion.take().unwrap()).unwrap()));
    let warped = warped.unwrap().out;
    let g_s = timed(&mut || drop(pipeline.generator().forward(&warped).unwrap()));
    format!(
        "keypoints {:.1} ms, W's dense motion {:.0} ms, the rest of W {:.0} ms, G {:.0} ms",
        keypoints_s * 1e3,
        dense_s * 1e3,
        rest_s * 1e3,
        g_s * 1e3
    )
}
