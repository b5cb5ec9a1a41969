//! Real mode's `config.yaml`: the shipped file, and the sections only real mode reads (device,
//! VRAM, models, verification), each bad value refused with file, key, value and position.

use vortex::ConfigError;
use vortex_real::config::{Config, DeviceName};

const GOOD: &str = "orchestration: {}\n";

fn refused(text: &str) -> String {
    match Config::from_yaml_str("test.yaml", text) {
        Ok(c) => panic!("accepted bad config: {c:?}"),
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn shipped_config_yaml_holds_the_built_in_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.yaml");
    assert_eq!(Config::load(&path).unwrap(), Config::default());
    let effective = Config::default().to_yaml();
    assert_eq!(Config::from_yaml_str("printed", &effective).unwrap(), Config::default(), "round-trips");
}

#[test]
fn unknown_sections_and_models_are_refused() {
    let message = refused(&format!("{GOOD}logging: verbose\n"));
    assert!(message.starts_with("test.yaml: logging: unknown field `logging`"), "{message}");
    let message = refused(&format!("{GOOD}models: {{ sadtalker: /weights/st }}\n"));
    assert!(message.starts_with("test.yaml: models.sadtalker: unknown field `sadtalker`"), "{message}");
    let message = refused("device: { name: cpu }\n");
    assert!(message.contains("missing field `orchestration`"), "{message}");
}

#[test]
fn device_and_vram_sections_are_checked() {
    let message = refused(&format!("{GOOD}device: {{ name: gpu0 }}\n"));
    assert!(
        message.starts_with("test.yaml: device.name: expected `cpu` or `cuda:N` (N from 0 to 63), got \"gpu0\""),
        "{message}"
    );
    let cuda = Config::from_yaml_str("test.yaml", &format!("{GOOD}device: {{ name: \"cuda:1\" }}\n")).unwrap();
    assert_eq!(cuda.device.name, DeviceName::Cuda(1));
    let message = refused(&format!("{GOOD}vram: {{ soft_limit_gb: 12, hard_limit_gb: 11 }}\n"));
    assert!(message.starts_with("test.yaml: vram: soft_limit_gb (12) must not exceed hard_limit_gb (11)"), "{message}");
    let message = refused(&format!("{GOOD}vram: {{ soft_limit_gb: 10, hard_limit_gb: 1e9 }}\n"));
    assert!(
        message.starts_with("test.yaml: vram.hard_limit_gb: expected a number of gigabytes above 0 and at most 1024"),
        "{message}"
    );
}

#[test]
fn the_kokoro_section_names_weights_and_voices_and_holds_f32_only() {
    let config = Config::from_yaml_str(
        "test.yaml",
        &format!("{GOOD}models: {{ kokoro: {{ weights: k.pth, voices: voices/ }} }}\n"),
    )
    .unwrap();
    let kokoro = config.models.kokoro.expect("the section is read");
    assert_eq!(kokoro.weights, std::path::Path::new("k.pth"));
    let message = refused(&format!("{GOOD}models: {{ kokoro: {{ weights: k.pth }} }}\n"));
    assert!(message.contains("models.kokoro: missing field `voices`"), "{message}");
    let message = refused(&format!("{GOOD}models: {{ kokoro: {{ weights: k.pth, voices: v, dtype: f16 }} }}\n"));
    assert!(message.contains("models.kokoro.dtype is f16; only f32 is supported"), "{message}");
}

#[test]
fn the_liveportrait_section_names_its_folder_and_holds_f32_only() {
    let config =
        Config::from_yaml_str("test.yaml", &format!("{GOOD}models: {{ liveportrait: {{ weights: lp/ }} }}\n")).unwrap();
    let lp = config.models.liveportrait.expect("the section is read");
    assert_eq!(lp.weights, std::path::Path::new("lp/"));
    assert_eq!(lp.batch_frames.get(), 1, "the default batch");
    let message = refused(&format!("{GOOD}models: {{ liveportrait: {{ weights: lp, batch_frames: 0 }} }}\n"));
    assert!(
        message.contains("models.liveportrait.batch_frames: expected a number of frames per batch from 1 to 64, got 0"),
        "{message}"
    );
    let message = refused(&format!("{GOOD}models: {{ liveportrait: {{ weights: lp, dtype: bf16 }} }}\n"));
    assert!(message.contains("models.liveportrait.dtype is bf16; only f32 is supported"), "{message}");
    let message = refused(&format!("{GOOD}models: {{ liveportrait: {{ batch_frames: 2 }} }}\n"));
    assert!(message.contains("models.liveportrait: missing field `weights`"), "{message}");
}

#[test]
fn bf16_models_are_refused_on_the_cpu() {
    let flux = "models:\n  flux:\n    transformer: f.gguf\n    vae: ae.safetensors\n    t5: { weights: t.safetensors, config: t.json, tokenizer: t.json }\n    clip: { weights: c.safetensors, config: c.json, tokenizer: c.json }\n    dtype: bf16\n";
    let message = refused(&format!("{GOOD}{flux}"));
    assert!(
        message.starts_with("test.yaml: (top level): models.flux.dtype is bf16, which device.name cpu cannot run"),
        "{message}"
    );
    let cuda = format!("{GOOD}{flux}device: {{ name: \"cuda:0\" }}\n");
    assert!(Config::from_yaml_str("test.yaml", &cuda).is_ok(), "bf16 is fine on a GPU");
}

#[test]
fn verification_values_are_checked_where_they_are_parsed() {
    let section = |body: &str| {
        format!("{GOOD}verification: {{ keyframes: 5, b32_min: 0.7, l14_min: 0.6, b32_weight: 0.4, outlier_gap: 0.3, {body} }}\n")
    };
    let ok = Config::from_yaml_str("test.yaml", &section("")).unwrap();
    assert_eq!(ok.verification, Default::default());
    let message = refused(&section("").replace("keyframes: 5", "keyframes: 0"));
    assert!(
        message.starts_with("test.yaml: verification.keyframes: expected a number of keyframes from 1 to 64, got 0")
    );
    let message = refused(&section("").replace("b32_weight: 0.4", "b32_weight: -0.1"));
    assert!(message.contains("verification.b32_weight: expected a share from 0 to 1, got -0.1"), "{message}");
}

#[test]
fn verification_thresholds_are_clip_scores_from_0_to_2_5() {
    let section = |key: &str, value: &str| {
        let all = "keyframes: 5, b32_min: 0.7, l14_min: 0.6, b32_weight: 0.4, outlier_gap: 0.3";
        let body = all.split(", ").map(|kv| if kv.starts_with(key) { format!("{key}: {value}") } else { kv.into() });
        format!("{GOOD}verification: {{ {} }}\n", body.collect::<Vec<_>>().join(", "))
    };
    for key in ["b32_min", "l14_min"] {
        for bad in ["2.6", "-0.1", ".nan"] {
            let message = refused(&section(key, bad));
            let expected = format!(
                "test.yaml: verification.{key}: expected a CLIPScore (2.5 × cosine similarity) from 0 to 2.5, got"
            );
            assert!(message.starts_with(&expected), "{message}");
        }
        for edge in ["0", "2.5"] {
            assert!(Config::from_yaml_str("test.yaml", &section(key, edge)).is_ok(), "{key}: {edge}");
        }
    }
    let message = refused(&section("outlier_gap", "3"));
    assert!(
        message.starts_with(
            "test.yaml: verification.outlier_gap: expected a difference of CLIPScores from 0 to 2.5, got 3"
        ),
        "{message}"
    );
    assert!(Config::from_yaml_str("test.yaml", &section("outlier_gap", "2.5")).is_ok());
}

#[test]
fn text_encoder_weights_are_one_path_or_a_list_of_shards() {
    let flux = |t5_weights: &str, extra: &str| {
        format!(
            "{GOOD}models:\n  flux:\n    transformer: f.gguf\n    vae: ae.safetensors\n    t5: {{ weights: {t5_weights}, config: t5.json, tokenizer: t.json }}\n    clip: {{ weights: c.safetensors, config: c.json, tokenizer: c.json }}\n{extra}"
        )
    };
    let one = Config::from_yaml_str("test.yaml", &flux("t5.safetensors", "")).unwrap();
    assert_eq!(one.models.flux.as_ref().unwrap().t5.weights.0.len(), 1);
    assert_eq!(one.models.flux.unwrap().image_px.get(), 512, "documented default");
    let two = Config::from_yaml_str("test.yaml", &flux("[a.safetensors, b.safetensors]", "")).unwrap();
    assert_eq!(two.models.flux.as_ref().unwrap().t5.weights.0.len(), 2);
    assert_eq!(Config::from_yaml_str("again", &two.to_yaml()).unwrap(), two, "round-trips through YAML");
    let message = refused(&flux("[]", ""));
    assert!(message.starts_with("test.yaml: models.flux.t5.weights: expected at least one weights file"), "{message}");
    let message = refused(&flux("{ a: 1 }", ""));
    assert!(
        message.contains("models.flux.t5.weights: expected a weights file path, or a list of shard paths"),
        "{message}"
    );
    let message = refused(&flux("t5.safetensors", "    image_px: 100\n"));
    assert!(
        message.starts_with("test.yaml: models.flux.image_px: expected a multiple of 16 from 16 to 2048, got 100"),
        "{message}"
    );
    let message = refused(&flux("t5.safetensors", "    steps: 0\n"));
    assert!(message.contains("models.flux.steps: expected a number of denoising steps from 1 to 50, got 0"));
}
