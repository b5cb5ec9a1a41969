//! Architecture files (`models.kokoro.architecture`, `models.liveportrait.architecture`) in the
//! upstream projects' own layouts: the published sizes read back to the built-in defaults, and
//! bad files are refused naming the config key, the file, the field and the allowed range.

use std::path::Path;

use vortex_real::kokoro::{architecture as kokoro_arch, model, pipeline::read_architecture as read_kokoro};
use vortex_real::liveportrait::{architecture as lp_arch, pipeline};

mod common;

#[test]
fn the_published_architectures_round_trip_through_their_files() {
    for cfg in [model::Config::kokoro_v1(), common::small_kokoro()] {
        assert_eq!(kokoro_arch::from_json(&kokoro_arch::to_json(&cfg)).unwrap(), cfg);
    }
    let published = pipeline::Config::liveportrait();
    assert_eq!(lp_arch::from_yaml("m.yaml", &lp_arch::to_yaml(&published)).unwrap(), published);
    // This project's keys are left out where they hold the published values.
    let yaml = lp_arch::to_yaml(&published);
    for key in ["depths", "dims", "hidden", "out_channels", "num_bins", "in_chans"] {
        assert!(!yaml.contains(&format!("{key}:")), "{key} written for the published model:\n{yaml}");
    }
    assert!(!kokoro_arch::to_json(&model::Config::kokoro_v1()).contains("decode_width"));
}

/// Kokoro-82M's config.json as the reference lays it out (values from `Config::kokoro_v1()`),
/// with the keys inference does not read.
fn kokoro_v1_json() -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&kokoro_arch::to_json(&model::Config::kokoro_v1())).unwrap();
    for (key, value) in [
        ("dim_in", serde_json::json!(64)),
        ("dropout", serde_json::json!(0.2)),
        ("max_conv_dim", serde_json::json!(512)),
        ("multispeaker", serde_json::json!(true)),
        ("n_mels", serde_json::json!(80)),
    ] {
        v[key] = value;
    }
    v["plbert"]["dropout"] = serde_json::json!(0.1);
    v
}

#[test]
fn kokoro_reads_the_references_layout_with_its_unused_keys() {
    let cfg = kokoro_arch::from_json(&kokoro_v1_json().to_string()).unwrap();
    assert_eq!(cfg, model::Config::kokoro_v1());
    let mut no_vocab = kokoro_v1_json();
    no_vocab.as_object_mut().unwrap().remove("vocab");
    assert_eq!(kokoro_arch::from_json(&no_vocab.to_string()).unwrap(), model::Config::kokoro_v1());
}

#[test]
fn liveportrait_reads_the_references_layout() {
    // The reference's models.yaml spelling: Python's `True`, block style, comments, the
    // backbone by name; no input_size (the published 256).
    let yaml = "model_params:\n\
        \x20 appearance_feature_extractor_params: # F\n\
        \x20   {image_channel: 3, block_expansion: 64, num_down_blocks: 2, max_features: 512,\n\
        \x20    reshape_channel: 32, reshape_depth: 16, num_resblocks: 6}\n\
        \x20 motion_extractor_params: {num_kp: 21, backbone: convnextv2_tiny}\n\
        \x20 warping_module_params:\n\
        \x20   num_kp: 21\n\
        \x20   block_expansion: 64\n\
        \x20   max_features: 512\n\
        \x20   num_down_blocks: 2\n\
        \x20   reshape_channel: 32\n\
        \x20   estimate_occlusion_map: True\n\
        \x20   dense_motion_params: {block_expansion: 32, max_features: 1024, num_blocks: 5, reshape_depth: 16, compress: 4}\n\
        \x20 spade_generator_params: {upscale: 2, block_expansion: 64, max_features: 512, num_down_blocks: 2}\n\
        \x20 stitching_retargeting_module_params:\n\
        \x20   stitching: {input_size: 126, hidden_sizes: [128, 128, 64], output_size: 65}\n\
        \x20   lip: {input_size: 65, hidden_sizes: [128, 128, 64], output_size: 63}\n\
        \x20   eye: {input_size: 66, hidden_sizes: [256, 256, 128, 128, 64], output_size: 63}\n";
    assert_eq!(lp_arch::from_yaml("models.yaml", yaml).unwrap(), pipeline::Config::liveportrait());
}

/// Writes `text` as `name` in `dir` and returns the loader's error message.
fn kokoro_refusal(dir: &Path, text: &str) -> String {
    let path = dir.join("config.json");
    std::fs::write(&path, text).unwrap();
    read_kokoro(&path).unwrap_err().to_string()
}

#[track_caller]
fn says(message: &str, words: &[&str]) {
    for word in words {
        assert!(message.contains(word), "{message:?} does not say {word:?}");
    }
}

#[test]
fn bad_kokoro_architecture_files_are_refused_with_key_file_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = kokoro_v1_json();
        f(&mut v);
        kokoro_refusal(dir.path(), &v.to_string())
    };
    let key = "models.kokoro.architecture";
    says(
        &edit(&|v| v["plbert"]["hidden_size"] = 100_000.into()),
        &[key, "config.json", "plbert.hidden_size", "100000", "from 1 to 4096"],
    );
    says(&edit(&|v| v["hidden_dim"] = 0.into()), &[key, "hidden_dim", "from 1 to 4096"]);
    says(&edit(&|v| v["n_token"] = 100.into()), &[key, "n_token", "100", "from 178"]);
    says(
        &edit(&|v| v["istftnet"]["upsample_rates"][0] = 1000.into()),
        &["istftnet.upsample_rates[0]", "1000", "from 1 to 64"],
    );
    says(
        &edit(&|v| v["plbert"]["max_position_embeddings"] = 64.into()),
        &["plbert.max_position_embeddings", "from 512"],
    );
    says(&edit(&|v| v["plbert"]["num_attention_heads"] = 7.into()), &["plbert.num_attention_heads", "does not divide"]);
    says(&edit(&|v| v["text_encoder_kernel_size"] = 4.into()), &["text_encoder_kernel_size", "odd"]);
    says(&edit(&|v| v["hidden_dim"] = (-3).into()), &[key, "hidden_dim", "-3"]);
    says(&edit(&|v| v["hidden_dim"] = "wide".into()), &[key, "hidden_dim", "wide"]);
    says(&edit(&|v| v["plbert"]["vocab_size"] = 178.into()), &[key, "plbert", "unknown field", "vocab_size"]);
    says(&edit(&|v| v["decoder_layers"] = 3.into()), &[key, "unknown field", "decoder_layers"]);
    says(&edit(&|v| v["vocab"]["a"] = 5.into()), &[key, "vocab", "another vocabulary is not supported"]);
    says(&edit(&|v| v.as_object_mut().unwrap().remove("istftnet").map(|_| ()).unwrap()), &[key, "istftnet"]);
    says(&kokoro_refusal(dir.path(), "{not json"), &[key, "config.json"]);
    says(&kokoro_refusal(dir.path(), ""), &[key, "config.json"]);
    let missing = read_kokoro(&dir.path().join("absent.json")).unwrap_err().to_string();
    says(&missing, &[key, "absent.json"]);
    let directory = read_kokoro(dir.path()).unwrap_err().to_string();
    says(&directory, &[key]);
}

fn lp_refusal(dir: &Path, text: &str) -> String {
    let path = dir.join("models.yaml");
    std::fs::write(&path, text).unwrap();
    pipeline::read_architecture(&path).unwrap_err().to_string()
}

#[test]
fn bad_liveportrait_architecture_files_are_refused_with_key_file_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let published = lp_arch::to_yaml(&pipeline::Config::liveportrait());
    let edit = |from: &str, to: &str| {
        assert!(published.contains(from), "{from:?} not in\n{published}");
        lp_refusal(dir.path(), &published.replacen(from, to, 1))
    };
    let key = "models.liveportrait.architecture";
    says(
        &edit("input_size: 256", "input_size: 100000"),
        &[key, "models.yaml", "input_size", "100000", "from 16 to 512"],
    );
    says(&edit("input_size: 256", "input_size: 200"), &[key, "input_size", "multiple of 128"]);
    says(
        &edit("num_resblocks: 6", "num_resblocks: 600"),
        &["model_params.appearance_feature_extractor_params.num_resblocks", "600", "from 0 to 16"],
    );
    says(&edit("compress: 4", "compress: 0"), &["dense_motion_params.compress", "from 1 to 4096"]);
    says(&edit("backbone: convnextv2_tiny", "backbone: resnet50"), &["backbone", "resnet50", "convnextv2_tiny"]);
    says(&edit("num_kp: 21", "num_kp: 20"), &["warping_module_params.num_kp", "21; must be 20", "M's"]);
    let both = published.replace("num_kp: 21", "num_kp: 20");
    says(&lp_refusal(dir.path(), &both), &["stitching.input_size", "126; must be 120", "num_kp"]);
    says(&edit("image_channel: 3", "image_channel: 4"), &["image_channel", "RGB"]);
    says(
        &edit("  upscale: 2", "  upscale: 2\n    depth: 3"),
        &[key, "spade_generator_params", "unknown field", "depth"],
    );
    says(&edit("estimate_occlusion_map: true", "estimate_occlusion_map: maybe"), &["estimate_occlusion_map"]);
    says(&lp_refusal(dir.path(), "model_params: [1, 2"), &[key, "models.yaml"]);
    says(&lp_refusal(dir.path(), "input_size: 256\n"), &[key, "model_params"]);
    let missing = pipeline::read_architecture(&dir.path().join("absent.yaml")).unwrap_err().to_string();
    says(&missing, &[key, "absent.yaml"]);
}

#[test]
fn a_seed_writes_the_same_bytes_and_another_seed_other_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    vortex_real::tiny::write_setup(&a, 7).unwrap();
    std::fs::create_dir(&b).unwrap(); // an empty folder is taken
    vortex_real::tiny::write_setup(&b, 7).unwrap();
    vortex_real::tiny::write_setup(&c, 8).unwrap();
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 27, "{:?}", fa.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert!(fa == fb, "seed 7 wrote different bytes twice");
    let weights = |f: &[(String, Vec<u8>)], name: &str| f.iter().find(|x| x.0 == name).unwrap().1.clone();
    assert_ne!(weights(&fa, "kokoro/kokoro.safetensors"), weights(&fc, "kokoro/kokoro.safetensors"));
    assert_ne!(weights(&fa, "clip_b32/model.safetensors"), weights(&fa, "clip_l14/model.safetensors"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_from_the_tiny_setup_runs_all_four_stages_with_nothing_injected() {
    use vortex::{AttemptResult, Recipe, SlotScheduler, Stage, StaticPredictor};
    let dir = tempfile::tempdir().unwrap();
    let path = vortex_real::tiny::write_setup(&dir.path().join("tiny"), 1).unwrap();
    let config = vortex_real::config::Config::load(&path).unwrap();
    let models = vortex_real::models::Models::load(&config, path.parent().unwrap()).unwrap();
    let stages = vortex_real::stages::RealStages::new(models, &config);
    // Real time: the models run on real threads. The config's own timeouts are production's;
    // generous ones here, so that a loaded test machine cannot fail the slot.
    let mut o = config.orchestration.clone();
    let s = |v| vortex::units::Seconds::new(v).unwrap();
    (o.timeouts.audio, o.timeouts.image, o.timeouts.video, o.timeouts.clip) = (s(600.0), s(600.0), s(600.0), s(600.0));
    let scheduler = SlotScheduler::new(stages, StaticPredictor::new(o.target_durations()), &o);
    let recipe = Recipe::new(7, "Hello there, this is a smoke test.", "w1 w2 w3");
    let started = std::time::Instant::now();
    let result = scheduler.run_slot(&recipe, std::time::Duration::from_secs(3600)).await;
    eprintln!("one tiny slot: {:.2} s wall (debug build)", started.elapsed().as_secs_f64());
    let completed = result.completed().unwrap_or_else(|| panic!("{:?}", result.outcome));
    let (audio, video) = (&completed.outputs.audio, &completed.outputs.video);
    let seconds = audio.samples.len() as f64 / f64::from(audio.sample_rate);
    assert!(seconds > 0.0);
    assert_eq!(video.frames.len(), (seconds * 24.0).ceil() as usize, "{seconds} s of audio");
    assert_eq!(video.frames[0].dimensions(), (64, 64), "G doubles the 32-pixel crop");
    for stage in [Stage::Audio, Stage::Image, Stage::Video, Stage::Clip] {
        let attempt = result.log.iter().find(|a| a.stage == stage).unwrap();
        eprintln!("{stage:?}: {:.0} ms", attempt.duration.as_secs_f64() * 1e3);
        assert_eq!(attempt.result, AttemptResult::Ok, "{stage:?}");
    }
    eprintln!("{seconds:.2} s of audio, {} frames", video.frames.len());
}

/// `Models::load`'s error for the config at `path`.
fn load_error(path: &Path) -> String {
    let config = vortex_real::config::Config::load(path).unwrap();
    match vortex_real::models::Models::load(&config, path.parent().unwrap()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loading_refuses_an_architecture_its_weights_do_not_fit_and_a_bad_or_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = vortex_real::tiny::write_setup(&dir.path().join("tiny"), 2).unwrap();
    let root = path.parent().unwrap();
    let rewrite = |file: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains(from), "{from:?} not in {file}:\n{text}");
        std::fs::write(root.join(file), text.replacen(from, to, 1)).unwrap();
    };
    rewrite("kokoro/config.json", "\"hidden_dim\": 32", "\"hidden_dim\": 48");
    says(
        &load_error(&path),
        &["kokoro", "kokoro.safetensors", "not the weights of the architecture in", "config.json"],
    );
    rewrite("kokoro/config.json", "\"hidden_dim\": 48", "\"hidden_dim\": 32");
    rewrite("kokoro/config.json", "\"style_dim\": 128", "\"style_dim\": 64");
    says(&load_error(&path), &["models.kokoro.architecture", "key style_dim: 64; must be 128", "voice row"]);
    rewrite("kokoro/config.json", "\"style_dim\": 64", "\"style_dim\": 128");
    rewrite("liveportrait/models.yaml", "input_size: 32", "input_size: 1024");
    says(
        &load_error(&path),
        &["liveportrait", "models.yaml", "models.liveportrait.architecture", "input_size", "from 16 to 512"],
    );
    rewrite("liveportrait/models.yaml", "input_size: 1024", "input_size: 32");
    rewrite("liveportrait/models.yaml", "reshape_depth: 4", "reshape_depth: 2");
    says(&load_error(&path), &["models.liveportrait.architecture", "reshape_depth"]);
    rewrite("liveportrait/models.yaml", "reshape_depth: 2", "reshape_depth: 4");
    rewrite("config.yaml", "architecture: kokoro/config.json", "architecture: kokoro/nowhere.json");
    says(&load_error(&path), &["models.kokoro.architecture", "nowhere.json"]);
    rewrite("config.yaml", "architecture: kokoro/nowhere.json", "architecture: kokoro/config.json");
    // Restored, it loads again.
    let config = vortex_real::config::Config::load(&path).unwrap();
    assert!(vortex_real::models::Models::load(&config, root).is_ok());
}
