//! The `vortex` binary: `config check`, `models check` and `animate`'s refusals.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn vortex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vortex")).args(args).output().unwrap()
}

fn repo_config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.yaml").display().to_string()
}

#[test]
fn config_check_prints_effective_values_or_the_error() {
    let ok = vortex(&["config", "check", &repo_config()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert!(stdout.contains("config.yaml: valid") && stdout.contains("deadline_buffer_s: 5.0"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, std::fs::read_to_string(repo_config()).unwrap().replace("clip_s: 2", "clip_s: -2")).unwrap();
    let out = vortex(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "bad.yaml: orchestration.timeouts.clip_s: expected a number of seconds above 0 and at most 86400, got -2"
        ),
        "{stderr}"
    );
}

#[test]
fn models_check_loads_every_configured_model_and_prints_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "", true);
    let out = vortex(&["models", "check", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\n  flux f32 ") && stdout.contains("\nflux "), "{stdout}");
    assert!(stdout.contains("VRAM budget on cpu (soft 10.5 GB, hard 11.5 GB)"), "{stdout}");
    assert!(stdout.contains("clip_b32") && stdout.contains("clip_l14") && stdout.contains("load_ms"), "{stdout}");
    assert!(stdout.contains("models.kokoro not configured: the audio stage will fail until it is"), "{stdout}");
    assert!(stdout.contains("models.liveportrait not configured: the video stage will fail until it is"), "{stdout}");
}

#[test]
fn models_check_fails_clearly() {
    let out = vortex(&["models", "check", "--config", &repo_config()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model is configured in `models`"));

    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config_with_clips(dir.path(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("soft_limit_gb: 10.5", "soft_limit_gb: 0.000001")
        .replace("hard_limit_gb: 11.5", "hard_limit_gb: 0.000001");
    std::fs::write(&config, text).unwrap();
    let out = vortex(&["models", "check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("above vram.hard_limit_gb") && err.contains("clip_b32 f32") && err.contains("clip_l14 f32"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config_with_clips(dir.path(), "");
    std::fs::write(dir.path().join("clip_l14/model.safetensors"), b"not weights").unwrap();
    let out = vortex(&["models", "check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("clip_l14: ")
            && err.contains("model.safetensors is not a safetensors file")
            && err.contains("openai/clip-vit-large-patch14"),
        "{err}"
    );
}

#[test]
fn animate_refuses_bad_inputs_before_loading_any_model() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("actor.png");
    vortex_real::media::Frame::new(64, 64).save(&image).unwrap();
    let audio = dir.path().join("speech.wav");
    std::fs::write(&audio, vortex_real::media::wav_16bit(&[0.1; 2400], 24_000)).unwrap();
    let (image, audio) = (image.to_str().unwrap(), audio.to_str().unwrap());
    let out = dir.path().join("clip.mp4");
    let out = out.to_str().unwrap();
    let config = repo_config();
    let refused = |args: &[&str], expected: &str| {
        let run = vortex(&[&["animate"], args, &["--config", &config]].concat());
        assert_eq!(run.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    refused(&["--image", image, "--audio", audio, "--out", "clip.avi"], "--out clip.avi: expected a .mp4 (or .y4m)");
    refused(&["--image", "missing.png", "--audio", audio, "--out", out], "--image missing.png");
    refused(&["--image", audio, "--audio", audio, "--out", out], "not a readable image");
    refused(&["--image", image, "--audio", image, "--out", out], "not a WAV file");
    refused(&["--image", image, "--audio", audio, "--out", out, "--preset", "sleepy"], "expression.preset \"sleepy\"");
    refused(&["--image", image, "--audio", audio, "--out", out, "--intensity", "2"], "expression.intensity 2");
    // Valid inputs, but the repository's config has no models: said, and nothing written.
    refused(&["--image", image, "--audio", audio, "--out", out], "models.liveportrait is not configured");
    assert!(!dir.path().join("clip.mp4").exists() && !dir.path().join("clip.y4m").exists());
}

#[test]
fn models_tiny_writes_a_setup_that_models_check_loads_whole_and_refuses_a_used_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("tiny");
    let out = vortex(&["models", "tiny", "--out", out_dir.to_str().unwrap(), "--seed", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("random weights for smoke tests, not models"), "{stdout}");
    let config = out_dir.join("config.yaml");
    let check = vortex(&["models", "check", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{stdout}\n{stderr}");
    for model in ["clip_b32", "clip_l14", "flux", "kokoro", "liveportrait"] {
        assert!(stdout.contains(&format!("\n{model} ")), "{model} not loaded:\n{stdout}");
    }
    assert!(stdout.contains("all configured models loaded") && !stdout.contains("not configured"), "{stdout}");

    // A folder in use is refused, and nothing in it changes.
    let before = std::fs::read(&config).unwrap();
    let again = vortex(&["models", "tiny", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("tiny: the folder is not empty"), "{stderr}");
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // A missing parent is refused; no scratch folder is left behind.
    let orphan = dir.path().join("no/such/folder");
    let refused = vortex(&["models", "tiny", "--out", orphan.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not exist"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["tiny"], "only the written setup is there");
}
