//! The `orchestration` section: the shipped file, the design's own section, and every kind of bad
//! input refused with an error that names the file, the key path, the value and where it is.
//! (Real mode's sections are tested in `real/tests/config.rs`.)

use std::time::Duration;

use vortex::config::{Orchestration, PredictorKind, DEFAULT_TARGETS};
use vortex::{ConfigError, Predictor, Remaining, Stage, StaticPredictor};

const GOOD: &str = "
deadline_buffer_s: 5
backoff_base_s: 0.5
timeouts: { audio_s: 3, image_s: 15, video_s: 10, clip_s: 2 }
retry_policy: { audio: 1, image: 0, video: 0, clip: 0 }
targets: { audio_s: 2, image_s: 12, video_s: 8, clip_s: 1 }
";

fn parse(text: &str) -> Result<Orchestration, ConfigError> {
    vortex::yaml::parse("test.yaml", text)
}

fn refused(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted a bad section: {c:?}"),
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn shipped_config_yaml_holds_the_built_in_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
    assert_eq!(Orchestration::load(&path).unwrap(), Orchestration::default());
    assert_eq!(parse(GOOD).unwrap(), Orchestration::default());
}

#[test]
fn the_designs_own_section_loads_as_written() {
    // The design names only these three keys, and its retry_policy only some stages.
    let design = "
deadline_buffer_s: 5
timeouts: { audio_s: 3, image_s: 15, video_s: 10, clip_s: 2 }
retry_policy: { audio: 1 }
";
    assert_eq!(parse(design).unwrap(), Orchestration::default());
    let partial = parse("retry_policy: { image: 2 }\ntimeouts: { video_s: 12 }").unwrap();
    assert_eq!((partial.retry_policy.audio.get(), partial.retry_policy.image.get()), (1, 2));
    assert_eq!((partial.timeouts.video.get(), partial.timeouts.audio.get()), (12.0, 3.0));
    assert_eq!(parse("{}").unwrap(), Orchestration::default());
}

#[test]
fn the_predictive_abort_thresholds_are_pinned() {
    // Ours: 9 s of work left before video, 1 s before verification (docs/decisions.md says why
    // we keep them rather than the design's 10 s and 2 s).
    let p = StaticPredictor::new(Orchestration::default().target_durations());
    assert_eq!(p.remaining(Remaining::From(Stage::Video)), Duration::from_secs(9));
    assert_eq!(p.remaining(Remaining::From(Stage::Clip)), Duration::from_secs(1));
    assert_eq!(p.remaining(Remaining::Slot), Duration::from_secs(21));
    // The design's thresholds are one key away: targets.clip_s: 2.
    let mut design = Orchestration::default();
    design.targets.clip = vortex::units::Seconds::new(2.0).unwrap();
    let p = StaticPredictor::new(design.target_durations());
    assert_eq!(p.remaining(Remaining::From(Stage::Video)), Duration::from_secs(10));
    assert_eq!(p.remaining(Remaining::From(Stage::Clip)), Duration::from_secs(2));
    assert_eq!(Orchestration::default().targets, DEFAULT_TARGETS);
}

#[test]
fn bad_durations_are_refused_with_file_key_value_and_position() {
    let range = "expected a number of seconds above 0 and at most 86400, got";
    for (bad, shown) in
        [("-1", "-1"), ("0", "0"), (".nan", ".nan"), (".inf", ".inf"), ("-.inf", "-.inf"), ("1e19", "1e19")]
    {
        let message = refused(&GOOD.replace("image_s: 15", &format!("image_s: {bad}")));
        assert!(message.starts_with(&format!("test.yaml: timeouts.image_s: {range} {shown}")), "{message}");
        assert!(message.contains("line 4 column"), "{message}");
    }
    let message = refused(&GOOD.replace("backoff_base_s: 0.5", "backoff_base_s: \"soon\""));
    assert!(message.starts_with("test.yaml: backoff_base_s: invalid type: string \"soon\""), "{message}");
}

#[test]
fn deadline_buffer_may_be_zero_but_not_negative() {
    let zero = parse(&GOOD.replace("deadline_buffer_s: 5", "deadline_buffer_s: 0")).unwrap();
    assert_eq!(zero.deadline_buffer_s.get(), 0.0);
    let message = refused(&GOOD.replace("deadline_buffer_s: 5", "deadline_buffer_s: -0.5"));
    assert!(
        message.starts_with("test.yaml: deadline_buffer_s: expected a number of seconds from 0 to 86400, got -0.5"),
        "{message}"
    );
}

#[test]
fn unknown_and_repeated_keys_are_refused() {
    let message = refused(&GOOD.replace("audio_s: 3,", "audio_s: 3, audio_ms: 3000,"));
    assert!(
        message.starts_with(
            "test.yaml: timeouts.audio_ms: unknown field `audio_ms`, expected one of `audio_s`, `image_s`"
        ),
        "{message}"
    );
    let message = refused(&format!("{GOOD}\nlogging: verbose\n"));
    assert!(message.starts_with("test.yaml: logging: unknown field `logging`"), "{message}");
    let message = refused(&GOOD.replace("image: 0,", "image: 0, image: 1,"));
    assert!(message.contains("retry_policy"), "{message}");
}

#[test]
fn retry_counts_above_the_cap_are_refused() {
    let message = refused(&GOOD.replace("audio: 1,", "audio: 6,"));
    assert!(
        message.starts_with("test.yaml: retry_policy.audio: expected a retry count from 0 to 5, got 6"),
        "{message}"
    );
    let message = refused(&GOOD.replace("audio: 1,", "audio: -1,"));
    assert!(message.contains("got -1"), "{message}");
    let message = refused(&GOOD.replace("audio: 1,", "audio: 99999999999999999999,"));
    assert!(message.contains("expected a retry count from 0 to 5"), "{message}");
}

#[test]
fn predictor_settings_are_checked() {
    let adaptive = parse(&format!("{GOOD}predictor: adaptive\nadaptive: {{ quantile: 0.8, history: 50 }}\n")).unwrap();
    assert_eq!(adaptive.predictor, PredictorKind::Adaptive);
    assert_eq!(adaptive.adaptive.history.get(), 50);
    let message = refused(&format!("{GOOD}predictor: oracle\n"));
    assert!(message.starts_with("test.yaml: predictor: unknown variant `oracle`, expected `static` or `adaptive`"));
    let message = refused(&format!("{GOOD}adaptive: {{ quantile: 1.5 }}\n"));
    assert!(
        message.starts_with("test.yaml: adaptive.quantile: expected a quantile above 0 and at most 1, got 1.5"),
        "{message}"
    );
    let message = refused(&format!("{GOOD}adaptive: {{ history: 0 }}\n"));
    assert!(
        message.starts_with("test.yaml: adaptive.history: expected a history length from 1 to 10000, got 0"),
        "{message}"
    );
}

#[test]
fn a_config_file_needs_its_orchestration_section_and_keeps_the_others_for_real_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, format!("orchestration:\n{}\ndevice: {{ name: cpu }}\n", GOOD.replace('\n', "\n  ")))
        .unwrap();
    assert_eq!(Orchestration::load(&path).unwrap(), Orchestration::default());
    std::fs::write(&path, "orchestraton: {}\n").unwrap();
    let err = Orchestration::load(&path).unwrap_err().to_string();
    assert!(err.contains("missing field `orchestration`") && err.contains("config.yaml"), "{err}");
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let err = Orchestration::load(std::path::Path::new("/nonexistent/config.yaml")).unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent/config.yaml: cannot read:"), "{err}");
    let err = Orchestration::load(std::path::Path::new("/dev/zero")).unwrap_err();
    assert_eq!(err.to_string(), "/dev/zero: (file): is not a regular file (a device, FIFO or socket)");
    let dir = tempfile::tempdir().unwrap();
    let err = Orchestration::load(dir.path()).unwrap_err();
    assert!(err.to_string().ends_with("(file): is a directory, expected a file"), "{err}");
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; (vortex::yaml::MAX_YAML_BYTES + 1) as usize]).unwrap();
    let err = Orchestration::load(&big).unwrap_err();
    assert!(err.to_string().contains("larger than the limit of 1048576 bytes"), "{err}");
}
