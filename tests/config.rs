//! `config.yaml` loading: the shipped file, and every kind of bad input refused with an error that
//! names the file, the key path and the bad value.

use vortex::{Config, ConfigError};

const GOOD: &str = "
orchestration:
  deadline_buffer_s: 5
  backoff_base_s: 0.5
  timeouts: { audio_s: 3, image_s: 15, video_s: 10, clip_s: 2 }
  retry_policy: { audio: 1, image: 0, video: 0, clip: 0 }
  targets: { audio_s: 2, image_s: 12, video_s: 8, clip_s: 1 }
";

fn refused(text: &str) -> String {
    match Config::from_yaml_str("test.yaml", text) {
        Ok(c) => panic!("accepted bad config: {c:?}"),
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn shipped_config_yaml_holds_the_built_in_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
    assert_eq!(Config::load(&path).unwrap(), Config::default());
    assert_eq!(Config::from_yaml_str("test.yaml", GOOD).unwrap(), Config::default());
}

#[test]
fn bad_durations_are_refused_with_file_key_and_value() {
    for (bad, shown) in [("-1", "-1"), ("0", "0"), (".nan", ".nan"), (".inf", ".inf"), ("-.inf", "-.inf")] {
        let message = refused(&GOOD.replace("image_s: 15", &format!("image_s: {bad}")));
        assert!(
            message.starts_with(&format!(
                "test.yaml: orchestration.timeouts.image_s: expected a positive, finite number of seconds, got {shown}"
            )),
            "{message}"
        );
    }
    let message = refused(&GOOD.replace("backoff_base_s: 0.5", "backoff_base_s: \"soon\""));
    assert!(message.starts_with("test.yaml: orchestration.backoff_base_s: invalid type: string \"soon\""), "{message}");
}

#[test]
fn deadline_buffer_may_be_zero_but_not_negative() {
    let zero =
        Config::from_yaml_str("test.yaml", &GOOD.replace("deadline_buffer_s: 5", "deadline_buffer_s: 0")).unwrap();
    assert_eq!(zero.orchestration.deadline_buffer_s.get(), 0.0);
    let message = refused(&GOOD.replace("deadline_buffer_s: 5", "deadline_buffer_s: -0.5"));
    assert!(
        message.starts_with(
            "test.yaml: orchestration.deadline_buffer_s: expected a finite number of seconds >= 0, got -0.5"
        ),
        "{message}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let message = refused(&GOOD.replace("audio_s: 3,", "audio_s: 3, audio_ms: 3000,"));
    assert!(message.starts_with("test.yaml: orchestration.timeouts.audio_ms: unknown field `audio_ms`"), "{message}");
    let message = refused(&format!("{GOOD}\nlogging: verbose\n"));
    assert!(message.starts_with("test.yaml: logging: unknown field `logging`"), "{message}");
    let message = refused(&format!("{GOOD}\nmodels: {{ kokoro: /weights/kokoro.pth }}\n"));
    assert!(message.starts_with("test.yaml: models.kokoro: unknown field `kokoro`"), "{message}");
}

#[test]
fn missing_required_keys_are_refused() {
    let message = refused(&GOOD.replace("video_s: 8, ", ""));
    assert!(message.starts_with("test.yaml: orchestration.targets: missing field `video_s`"), "{message}");
    let message = refused(&GOOD.replace("  backoff_base_s: 0.5\n", ""));
    assert!(message.starts_with("test.yaml: orchestration: missing field `backoff_base_s`"), "{message}");
}

#[test]
fn retry_counts_above_the_cap_are_refused() {
    let message = refused(&GOOD.replace("audio: 1,", "audio: 6,"));
    assert!(
        message.starts_with("test.yaml: orchestration.retry_policy.audio: expected a retry count from 0 to 5, got 6"),
        "{message}"
    );
    let message = refused(&GOOD.replace("audio: 1,", "audio: -1,"));
    assert!(message.contains("got -1"), "{message}");
}

#[test]
fn device_and_vram_sections_are_checked() {
    let message = refused(&format!("{GOOD}\ndevice: {{ name: gpu0 }}\n"));
    assert!(message.starts_with("test.yaml: device.name: expected `cpu` or `cuda:N`, got \"gpu0\""), "{message}");
    let cuda = Config::from_yaml_str("test.yaml", &format!("{GOOD}\ndevice: {{ name: \"cuda:1\" }}\n")).unwrap();
    assert_eq!(cuda.device.name, vortex::config::DeviceName::Cuda(1));
    let message = refused(&format!("{GOOD}\nvram: {{ soft_limit_gb: 12, hard_limit_gb: 11 }}\n"));
    assert!(
        message.starts_with("test.yaml: vram.soft_limit_gb: must not exceed vram.hard_limit_gb (11), got 12"),
        "{message}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = Config::load(std::path::Path::new("/nonexistent/config.yaml")).unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent/config.yaml: cannot read:"), "{err}");
}

#[test]
fn predictor_settings_are_checked() {
    let adaptive = Config::from_yaml_str(
        "test.yaml",
        &GOOD.replace("  targets:", "  predictor: adaptive\n  adaptive: { quantile: 0.8, history: 50 }\n  targets:"),
    )
    .unwrap();
    assert_eq!(adaptive.orchestration.predictor, vortex::config::PredictorKind::Adaptive);
    let message = refused(&GOOD.replace("  targets:", "  predictor: oracle\n  targets:"));
    assert!(
        message.starts_with(
            "test.yaml: orchestration.predictor: unknown variant `oracle`, expected `static` or `adaptive`"
        ),
        "{message}"
    );
    let message = refused(&GOOD.replace("  targets:", "  adaptive: { quantile: 1.5, history: 50 }\n  targets:"));
    assert!(
        message.starts_with("test.yaml: orchestration.adaptive.quantile: expected a quantile in (0, 1], got 1.5"),
        "{message}"
    );
    let message = refused(&GOOD.replace("  targets:", "  adaptive: { quantile: 0.5, history: 0 }\n  targets:"));
    assert!(
        message
            .starts_with("test.yaml: orchestration.adaptive.history: expected a history length from 1 to 10000, got 0"),
        "{message}"
    );
}

#[test]
fn text_encoder_weights_are_one_path_or_a_list_of_shards() {
    let flux = |t5_weights: &str| {
        format!(
            "{GOOD}\nmodels:\n  flux:\n    transformer: f.gguf\n    vae: ae.safetensors\n    t5: {{ weights: {t5_weights}, config: t5.json, tokenizer: t.json }}\n    clip: {{ weights: c.safetensors, config: c.json, tokenizer: c.json }}\n"
        )
    };
    let one = Config::from_yaml_str("test.yaml", &flux("t5.safetensors")).unwrap();
    assert_eq!(one.models.flux.unwrap().t5.weights.0.len(), 1);
    let two = Config::from_yaml_str("test.yaml", &flux("[a.safetensors, b.safetensors]")).unwrap();
    assert_eq!(two.models.flux.as_ref().unwrap().t5.weights.0.len(), 2);
    assert_eq!(Config::from_value("again", two.to_value()).unwrap(), two, "round-trips through YAML");
    let message = refused(&flux("[]"));
    assert!(message.starts_with("test.yaml: models.flux.t5.weights: expected at least one weights file"), "{message}");
    let message = refused(&flux("{ a: 1 }"));
    assert!(
        message.contains("models.flux.t5.weights: expected a weights file path, or a list of shard paths"),
        "{message}"
    );
}
