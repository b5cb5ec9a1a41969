//! Full-size CLIP ViT-B/32 and ViT-L/14 on the CPU: this crate's CLIP (`clip_model`, what the
//! self-check runs) and candle-transformers' `ClipModel` (what it ran before), against PyTorch in
//! the same run, on the
//! same counter-generated random weights and the same inputs: the text features of one 77-token
//! prompt and the image features of 5 preprocessed 224×224 frames (one model's share of the
//! self-check). Latency does not depend on weight values, so random weights measure what the
//! published ones would.
//!
//! `VORTEX_TORCH_PYTHON=/path/to/python-with-torch cargo bench -p vortex-real --bench clip_cpu`
//! runs `tools/bench_clip_torch.py` after each model and prints both medians and their ratio;
//! without it only candle is measured. `VORTEX_BENCH_MODELS=b32` (or `l14`) limits the models;
//! `VORTEX_BENCH_THREADS` sets the thread count of both sides (default: every core).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::ClipModel;
use criterion::Criterion;
use vortex_real::clip::HfClipConfig;
use vortex_real::clip_model::Clip;

mod common;
#[path = "../real/tests/common/counter.rs"]
mod counter;

use common::{median, settle, threads, Reference};

/// The seed `tools/bench_clip_torch.py` uses too.
const SEED: u64 = 20261202;

/// Interleaved runs per side.
const RUNS: usize = 7;

fn config(model: &str) -> HfClipConfig {
    let text = |hidden: usize, heads: usize| {
        serde_json::json!({"vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
            "hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": 12, "num_attention_heads": heads})
    };
    let vision = |hidden: usize, layers: usize, heads: usize, patch: usize| {
        serde_json::json!({"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "image_size": 224, "patch_size": patch, "hidden_act": "quick_gelu"})
    };
    let json = match model {
        "b32" => {
            serde_json::json!({"projection_dim": 512, "text_config": text(512, 8), "vision_config": vision(768, 12, 12, 32)})
        }
        "l14" => {
            serde_json::json!({"projection_dim": 768, "text_config": text(768, 12), "vision_config": vision(1024, 24, 16, 14)})
        }
        other => panic!("unknown model {other}"),
    };
    serde_json::from_value(json).expect("a CLIP config")
}

/// The inputs `tools/bench_clip_torch.py` builds: a formula, no randomness to share.
fn inputs() -> (Tensor, Tensor) {
    let mut ids: Vec<u32> = vec![49406];
    ids.extend((0..20u32).map(|i| (i * 7919) % 49000 + 300));
    ids.resize(77, 49407);
    let n = 5 * 3 * 224 * 224;
    let pixels: Vec<f32> = (0..n).map(|i| (i as f64 * 0.001).sin() as f32).collect();
    (
        Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap(),
        Tensor::from_vec(pixels, (5, 3, 224, 224), &Device::Cpu).unwrap(),
    )
}

/// Either CLIP: the text features of `ids` and the image features of `pixels`.
trait Score {
    fn score(&self, ids: &Tensor, pixels: &Tensor) -> (Tensor, Tensor);
}

impl Score for Clip {
    fn score(&self, ids: &Tensor, pixels: &Tensor) -> (Tensor, Tensor) {
        (self.text_features(ids).unwrap(), self.image_features(pixels).unwrap())
    }
}

impl Score for ClipModel {
    fn score(&self, ids: &Tensor, pixels: &Tensor) -> (Tensor, Tensor) {
        (self.get_text_features(ids).unwrap(), self.get_image_features(pixels).unwrap())
    }
}

fn median_ms(model: &dyn Score, ids: &Tensor, pixels: &Tensor, runs: usize) -> f64 {
    black_box(model.score(ids, pixels)); // warm-up, as on the PyTorch side
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            black_box(model.score(ids, pixels));
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn checksum(model: &dyn Score, ids: &Tensor, pixels: &Tensor) -> f64 {
    let (text, image) = model.score(ids, pixels);
    f64::from(
        text.sum_all().unwrap().to_scalar::<f32>().unwrap() + image.sum_all().unwrap().to_scalar::<f32>().unwrap(),
    )
}

fn main() {
    let threads = threads();
    // candle's CPU kernels run on rayon's global pool.
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    // As the `vortex` binary does at start-up; VORTEX_BENCH_MALLOC=default measures without.
    if std::env::var("VORTEX_BENCH_MALLOC").as_deref() != Ok("default") {
        vortex_real::keep_freed_memory();
    }
    let models = std::env::var("VORTEX_BENCH_MODELS").unwrap_or_else(|_| "b32,l14".into());
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let (ids, pixels) = inputs();
    let mut summary = Vec::new();
    for name in models.split(',') {
        let vb = || VarBuilder::from_backend(Box::new(counter::CounterWeights { seed: SEED }), DType::F32, Device::Cpu);
        let started = Instant::now();
        let ours = Clip::new(&config(name).to_model_config(), vb()).expect("a full-size CLIP");
        let build_s = started.elapsed().as_secs_f64();
        c.bench_function(&format!("CLIP {name}, this crate: text + 5 frames, {threads} threads"), |b| {
            b.iter(|| black_box(ours.score(&ids, &pixels)))
        });
        let ours_ms = median_ms(&ours, &ids, &pixels, 5);
        let ours_sum = checksum(&ours, &ids, &pixels);
        drop(ours);
        let theirs = ClipModel::new(vb(), &config(name).to_candle()).expect("a full-size CLIP");
        c.bench_function(&format!("CLIP {name}, candle-transformers: text + 5 frames, {threads} threads"), |b| {
            b.iter(|| black_box(theirs.score(&ids, &pixels)))
        });
        let before_ms = median_ms(&theirs, &ids, &pixels, 5);
        drop(theirs);
        // PyTorch's side loads once in a child process that times one run per request, so that
        // its runs interleave with candle's: this machine's load drifts by ±20% over minutes, and
        // alternating runs puts both sides under the same drift.
        let args = ["--model", name, "--threads", &threads.to_string(), "--serve"].map(String::from);
        let line = match Reference::start("bench_clip_torch.py", &args) {
            Some(mut torch) => {
                let torch_sum = torch.ready["checksum"].as_f64().unwrap();
                assert!(
                    (ours_sum - torch_sum).abs() <= 1e-3 * torch_sum.abs().max(1.0),
                    "{name}: candle and PyTorch computed different things ({ours_sum} vs {torch_sum})"
                );
                let ours = Clip::new(&config(name).to_model_config(), vb()).expect("a full-size CLIP");
                black_box(ours.score(&ids, &pixels));
                let (mut candle_runs, mut torch_runs) = (Vec::new(), Vec::new());
                for _ in 0..RUNS {
                    settle();
                    let started = Instant::now();
                    black_box(ours.score(&ids, &pixels));
                    candle_runs.push(started.elapsed().as_secs_f64() * 1e3);
                    settle();
                    torch_runs.push(torch.ask("run").trim().parse().expect("milliseconds"));
                }
                let (candle_ms, torch_ms) = (median(candle_runs), median(torch_runs));
                format!(
                    "{name}: interleaved, median of {RUNS} each, {threads} threads: this crate {candle_ms:.0} ms, PyTorch \
                     {torch_ms:.0} ms, this crate / PyTorch = {:.2}. Alone: this crate {ours_ms:.0} ms, \
                     candle-transformers {before_ms:.0} ms (= {:.2} × this crate). Weights built in {build_s:.1} s \
                     (PyTorch {:.1} s)",
                    candle_ms / torch_ms,
                    before_ms / ours_ms,
                    torch.ready["load_s"].as_f64().unwrap()
                )
            }
            None => format!(
                "{name}: this crate {ours_ms:.0} ms, candle-transformers {before_ms:.0} ms (median of 5, {threads} \
                 threads); set VORTEX_TORCH_PYTHON to compare with PyTorch"
            ),
        };
        eprintln!("{line}");
        summary.push(line);
    }
    c.final_summary();
    eprintln!("\nsummary:\n{}", summary.join("\n"));
}
