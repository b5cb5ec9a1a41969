//! Model latency on the CPU at the tiny test size, against a baseline measured in the same run
//! (a plain matrix product of the same width), so the figure says how much of a call is model
//! overhead. `cargo bench -p vortex-real --bench real_models`.
//!
//! With `VORTEX_BENCH_CONFIG=path/to/config.yaml` it measures the models that config names
//! instead (full size, on the configured device): see tools/measure_models.sh.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vortex_real::clip::{self, ClipEncoder};
use vortex_real::config::Config;
use vortex_real::executor::CancelToken;
use vortex_real::flux::FluxPipeline;
use vortex_real::media::Frame;

#[path = "../real/tests/common/mod.rs"]
mod common;

fn encoders() -> (Vec<(String, ClipEncoder)>, Option<tempfile::TempDir>) {
    if let Ok(path) = std::env::var("VORTEX_BENCH_CONFIG") {
        let path = PathBuf::from(path);
        let config = Config::load(&path).expect("VORTEX_BENCH_CONFIG names a valid config");
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let device = vortex_real::models::device(config.device.name).expect("a usable device");
        let mut out = Vec::new();
        for (name, entry, published) in [
            ("clip_b32", config.models.clip_b32.as_ref(), clip::B32_PUBLISHED),
            ("clip_l14", config.models.clip_l14.as_ref(), clip::L14_PUBLISHED),
        ] {
            if let Some(entry) = entry {
                out.push((name.to_string(), ClipEncoder::load(name, entry, &base, &device, published).unwrap()));
            }
        }
        return (out, None);
    }
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_clip(dir.path(), "tiny", 16);
    let enc = ClipEncoder::load("clip_tiny", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).unwrap();
    (vec![("clip_tiny".into(), enc)], Some(dir))
}

fn flux() -> (Option<FluxPipeline>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    if let Ok(path) = std::env::var("VORTEX_BENCH_CONFIG") {
        let path = PathBuf::from(path);
        let config = Config::load(&path).expect("VORTEX_BENCH_CONFIG names a valid config");
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let device = vortex_real::models::device(config.device.name).expect("a usable device");
        let pipeline = config.models.flux.as_ref().map(|f| FluxPipeline::load(f, &base, &device).unwrap());
        return (pipeline, dir);
    }
    let entry = common::write_tiny_flux(dir.path());
    (Some(FluxPipeline::load(&entry, dir.path(), &Device::Cpu).unwrap()), dir)
}

fn bench(c: &mut Criterion) {
    let (encoders, _dir) = encoders();
    let (mut flux, _flux_dir) = flux();
    let frames: Vec<Frame> =
        (0..5).map(|i| Frame::from_fn(512, 512, |x, y| image::Rgb([(x + i) as u8, y as u8, 128]))).collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let mut group = c.benchmark_group("models");
    group.sample_size(10);
    for (name, enc) in &encoders {
        group.bench_function(format!("{name}: 5 keyframes of 512x512 + prompt"), |b| {
            b.iter(|| black_box(clip::score(enc, "a news anchor in a studio", &refs, &CancelToken::default()).unwrap()))
        });
        group.bench_function(format!("{name}: preprocessing only"), |b| {
            b.iter(|| black_box(clip::preprocess(&refs, enc.image_size(), &Device::Cpu).unwrap()))
        });
    }
    if let Some(flux) = flux.as_mut() {
        group.bench_function("flux: one image (4 steps, text encoders and decode included)", |b| {
            b.iter(|| {
                black_box(flux.generate("a news anchor in a studio", 1, &CancelToken::default(), |_| {}).unwrap())
            })
        });
    }
    // Baseline: one (5x256)·(256x256) matrix product, the order of work of the tiny towers.
    let a = Tensor::randn(0f32, 1.0, (5, 256), &Device::Cpu).unwrap();
    let w = Tensor::randn(0f32, 1.0, (256, 256), &Device::Cpu).unwrap();
    group.bench_function("baseline: 5x256 by 256x256 matmul", |b| b.iter(|| black_box(a.matmul(&w).unwrap())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
