//! One slot end to end: the director runs a recipe through all four real stages (tiny models on
//! the CPU) and writes its folder whole: the WAV at 24 kHz, the clip with as many frames as the
//! speech lasts × 24, the actor, `result.json` and `events.jsonl` in the event-log format. A bad
//! recipe is refused before any model runs; an aborted or failed slot writes its result and
//! events only; a folder that is not new is refused.

use std::path::Path;
use std::time::Duration;

use vortex::events::RecordedEvent;
use vortex::Recipe;
use vortex_real::config::Config;
use vortex_real::director::files::{self, OutDir, ResultFile};
use vortex_real::director::{capture, Director, Verdict};

/// A director over `vortex models tiny`'s models (loaded through `Models::load`, as in
/// production). `video_s` is the video stage's timeout; the others are generous: real threads,
/// a debug build, a shared CPU.
async fn director(dir: &Path, video_s: f64) -> Director {
    assert!(capture::init_logs(), "the slot-event router is installed");
    let models = dir.join("models");
    let path = vortex_real::tiny::write_setup(&models, 0).unwrap();
    let mut config = Config::load(&path).unwrap();
    let s = |v| vortex::units::Seconds::new(v).unwrap();
    let t = &mut config.orchestration.timeouts;
    (t.audio, t.image, t.video, t.clip) = (s(600.0), s(600.0), s(video_s), s(600.0));
    Director::load(&config, &models).await.unwrap()
}

fn read_events(dir: &Path) -> Vec<RecordedEvent> {
    let text = std::fs::read_to_string(dir.join(files::EVENTS_FILE)).unwrap();
    text.lines().map(|l| RecordedEvent::from_json_line(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

fn read_result(dir: &Path) -> ResultFile {
    serde_json::from_slice(&std::fs::read(dir.join(files::RESULT_FILE)).unwrap()).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Frames in a `.y4m` file (each starts with a `FRAME` line).
fn y4m_frames(path: &Path) -> (String, usize) {
    let bytes = std::fs::read(path).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header = String::from_utf8(bytes[..header_end].to_vec()).unwrap();
    let dims: Vec<usize> = ["W", "H"]
        .iter()
        .map(|k| header.split(' ').find_map(|p| p.strip_prefix(k)).unwrap().parse().unwrap())
        .collect();
    let frame = 6 + dims[0] * dims[1] + 2 * dims[0].div_ceil(2) * dims[1].div_ceil(2);
    let body = bytes.len() - header_end - 1;
    assert_eq!(body % frame, 0, "whole frames of {frame} bytes");
    (header, body / frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_runs_end_to_end_and_its_folder_holds_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let director = director(dir.path(), 600.0).await;
    let recipe = Recipe::new(101, "Hello there.", "w1 w2 w3");
    let run = director.run_slot(&recipe, Duration::from_secs(3600)).await.unwrap();
    // The tiny setup's self-check thresholds are 0: every finished clip passes.
    assert_eq!(run.verdict(), Verdict::Delivered);
    let out_path = dir.path().join("slot-101");
    let out = OutDir::check("--out", &out_path).unwrap();
    let written = files::write_run(&run, &out, false).unwrap();
    assert!(written.note.as_deref().unwrap().contains("ffmpeg is not on PATH"), "{:?}", written.note);
    assert_eq!(names(&out_path), ["actor.png", "audio.wav", "events.jsonl", "result.json", "video.y4m"]);
    // Nothing left beside the folder: the staging folder was renamed into place.
    assert_eq!(names(dir.path()), ["models", "slot-101"], "no staging folder is left beside it");

    let wav = hound::WavReader::open(out_path.join("audio.wav")).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (24_000, 1, 16));
    let samples = wav.len() as usize;
    assert!(samples > 0);
    let seconds = samples as f64 / 24_000.0;
    let (header, frames) = y4m_frames(&out_path.join("video.y4m"));
    assert_eq!(frames, (seconds * 24.0).ceil() as usize, "{seconds} s of speech at 24 fps; {header}");
    assert!(header.contains("F24:1"), "{header}");
    let actor = image::open(out_path.join("actor.png")).unwrap();
    assert_eq!((actor.width(), actor.height()), run.report.completed().unwrap().outputs.image.dimensions());

    let result = read_result(&out_path);
    assert_eq!(files::read_result(&out_path).unwrap(), result);
    assert_eq!((result.slot_id, result.outcome.as_str()), (101, "completed"));
    assert_eq!(result.deadline_met, Some(true));
    assert_eq!(result.deadline_ms, 3_600_000.0);
    assert_eq!(result.recipe, recipe);
    let media = result.media.as_ref().unwrap();
    assert_eq!((media.audio_samples, media.sample_rate, media.frames), (samples, 24_000, frames));
    assert_eq!(media.video_file, "video.y4m");
    let clip = result.clip.as_ref().unwrap();
    assert_eq!(Some(clip.passed), result.clip_passed);
    assert!((0.0..=2.5).contains(&clip.score_b32) && (0.0..=2.5).contains(&clip.score_l14), "{clip:?}");
    assert!((-1.0..=1.0).contains(&clip.cosine_b32) && (-1.0..=1.0).contains(&clip.cosine_l14), "{clip:?}");
    let norm: f32 = clip.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "the consensus embedding is L2-normalised: {norm}");
    let t = result.timing_ms;
    for stage in [t.audio_ms, t.image_ms, t.video_ms, t.clip_ms] {
        let ms = stage.expect("every stage finished");
        assert!(ms > 0.0 && ms <= t.total_ms, "{ms} of {}", t.total_ms);
    }
    assert_eq!(
        (result.attempts.audio, result.attempts.image, result.attempts.video, result.attempts.clip),
        (1, 1, 1, 1)
    );
    assert!(result.attempt_log.iter().all(|a| a.result == "ok"), "{:?}", result.attempt_log);
    let (start, end) =
        (humantime::parse_rfc3339(&result.started_at).unwrap(), humantime::parse_rfc3339(&result.ended_at).unwrap());
    assert!(start <= end);
    assert_eq!(result.files, ["audio.wav", "actor.png", "video.y4m", "events.jsonl"]);

    let events = read_events(&out_path);
    // events.jsonl holds the captured events, in order (numbers read back in their shortest form).
    assert_eq!(events.len(), run.events.len());
    for (read, captured) in events.iter().zip(&run.events) {
        assert_eq!(read.name, captured.name);
        let keys = |e: &RecordedEvent| e.fields.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(read), keys(captured));
        for (key, value) in &captured.fields {
            let same = read.field(key) == Some(value.as_str()) || read.number(key) == captured.number(key);
            assert!(same && read.field(key).is_some(), "{key}: {read:?} vs {captured:?}");
        }
    }
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"slot_started"));
    assert_eq!(names.last(), Some(&"slot_complete"));
    for stage in ["audio_complete", "image_complete", "video_complete", "clip_complete"] {
        assert_eq!(names.iter().filter(|n| **n == stage).count(), 1, "{stage} in {names:?}");
    }
    assert!(events.iter().all(|e| e.field("slot_id") == Some("101")), "only this slot's events");
    let last = events.last().unwrap();
    assert!((last.number("total_ms").unwrap() - result.timing_ms.total_ms).abs() < 1.5e-3, "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_only_the_loaded_models_can_judge_are_refused_before_any_model_runs() {
    let dir = tempfile::tempdir().unwrap();
    let director = director(dir.path(), 600.0).await;
    let mut recipe = Recipe::new(102, "Hello.", "w1");
    recipe.voice.name = "zz_nobody".into();
    let err = director.check(&recipe).unwrap_err().to_string();
    assert_eq!(err, "voice.name: \"zz_nobody\": not a loaded voice; the 3 loaded are af_heart, am_adam, bf_emma");
    // One word more than the tiny CLIP's context holds with its two markers.
    let config_json = std::fs::read_to_string(dir.path().join("models/clip_b32/config.json")).unwrap();
    let arch: serde_json::Value = serde_json::from_str(&config_json).unwrap();
    let context = arch["text_config"]["max_position_embeddings"].as_u64().unwrap() as usize;
    let words: Vec<String> = (1..=context - 1).map(|i| format!("w{}", i % 90 + 1)).collect();
    let recipe = Recipe::new(103, "Hello.", words.join(" "));
    let err = director.check(&recipe).unwrap_err().to_string();
    let want = format!(
        "prompt: {} tokens for clip_b32 (start and end markers included); its context holds {context}: shorten the prompt",
        context + 1
    );
    assert_eq!(err, want);
    director.check(&Recipe::new(104, "Hello.", words[1..].join(" "))).unwrap();
    // run_slot checks too, before anything runs: not one event of the slot is emitted.
    let watch = capture::SlotCapture::start(103).unwrap();
    let err = director.run_slot(&recipe, Duration::from_secs(60)).await.err().unwrap();
    assert_eq!(err.to_string(), format!("recipe: {want}"));
    assert_eq!(watch.finish(), []);
    let mut recipe = Recipe::new(105, "Hello.", "w1");
    recipe.expression.preset = "sleepy".into();
    let watch = capture::SlotCapture::start(105).unwrap();
    let err = director.run_slot(&recipe, Duration::from_secs(60)).await.err().unwrap();
    assert!(err.to_string().starts_with("recipe: expression.preset: \"sleepy\": expected one of"), "{err}");
    assert_eq!(watch.finish(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_and_failed_slots_write_their_result_and_events_only() {
    let dir = tempfile::tempdir().unwrap();
    // Every video attempt times out after 10 ms.
    let director = director(dir.path(), 0.01).await;
    let run = director.run_slot(&Recipe::new(106, "Hi.", "w1"), Duration::from_secs(3600)).await.unwrap();
    assert_eq!(run.verdict(), Verdict::Failed);
    assert_eq!(run.verdict().exit_code(), 5);
    let out_path = dir.path().join("failed");
    files::write_run(&run, &OutDir::check("--out", &out_path).unwrap(), false).unwrap();
    assert_eq!(names(&out_path), ["events.jsonl", "result.json"]);
    let result = read_result(&out_path);
    assert_eq!(result.outcome, "failed");
    let failure = result.failure.as_ref().unwrap();
    assert_eq!(
        (failure.stage.as_str(), failure.reason.as_str(), failure.error.as_deref()),
        ("video", "timed_out", None)
    );
    assert_eq!(failure.attempts, result.attempts.video);
    assert!(result.media.is_none() && result.clip.is_none() && result.timing_ms.video_ms.is_none());
    assert_eq!(result.files, ["events.jsonl"]);
    let events = read_events(&out_path);
    let last = events.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.field("stage"), last.field("reason")),
        ("slot_failed", Some("video"), Some("timed_out"))
    );

    // A deadline that has already passed: the predictor aborts before any stage starts.
    let run = director.run_slot(&Recipe::new(107, "Hi.", "w1"), Duration::ZERO).await.unwrap();
    assert_eq!(run.verdict(), Verdict::Aborted);
    let out_path = dir.path().join("aborted");
    std::fs::create_dir(&out_path).unwrap(); // an empty folder may be the target
    files::write_run(&run, &OutDir::check("--out", &out_path).unwrap(), false).unwrap();
    assert_eq!(names(&out_path), ["events.jsonl", "result.json"]);
    let result = read_result(&out_path);
    let abort = result.abort.as_ref().unwrap();
    assert_eq!((result.outcome.as_str(), abort.checkpoint.as_str()), ("aborted", "before_start"));
    assert!(result.attempt_log.is_empty());
    let names: Vec<String> = read_events(&out_path).into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["slot_started", "slot_aborted"]);
}

#[test]
fn a_result_is_read_back_only_from_a_bounded_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = files::read_result(dir.path()).unwrap_err();
    assert!(err.ends_with("result.json: cannot read: No such file or directory (os error 2)"), "{err}");
    let path = dir.path().join("result.json");
    std::fs::write(&path, "{\"slot_id\": 1}").unwrap();
    let err = files::read_result(dir.path()).unwrap_err();
    assert!(err.contains("result.json: not a slot's result: missing field `outcome`"), "{err}");
    std::fs::write(&path, vec![b' '; files::MAX_RESULT_BYTES as usize + 1]).unwrap();
    let err = files::read_result(dir.path()).unwrap_err();
    assert!(err.contains("above the limit of 1048576 bytes"), "{err}");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(files::read_result(dir.path()).unwrap_err().contains("is a directory"));
}

#[test]
fn a_slot_folder_must_be_new_or_empty_and_its_parent_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "keep").unwrap();
    let err = OutDir::check("--out", &full).unwrap_err().to_string();
    assert!(
        err.ends_with("full: exists and is not empty; give a new folder (a slot's files are never mixed with others)"),
        "{err}"
    );
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = OutDir::check("--out", &file).unwrap_err().to_string();
    assert!(err.ends_with("file: exists and is not a folder; give a new folder"), "{err}");
    let err = OutDir::check("--out", &dir.path().join("missing/slot")).unwrap_err().to_string();
    assert!(err.contains("cannot create a folder in"), "{err}");
    OutDir::check("--out", &dir.path().join("new")).unwrap();
    assert_eq!(names(dir.path()), ["file", "full"], "checking creates nothing");
    assert_eq!(names(&full), ["keep.txt"]);
}

#[test]
fn a_slot_is_captured_once_at_a_time_and_the_recipe_bounds_are_the_stages_own() {
    assert!(capture::init_logs());
    let first = capture::SlotCapture::start(900).unwrap();
    let err = capture::SlotCapture::start(900).unwrap_err().to_string();
    assert_eq!(err, "slot 900 is already running: its events are being captured");
    // Events of other slots, and of this one from another thread, are routed by slot_id.
    std::thread::spawn(|| {
        tracing::info!(target: vortex::events::TARGET, event = "slot_started", slot_id = 900u64, elapsed_ms = 0.0, "x");
        tracing::info!(target: vortex::events::TARGET, event = "slot_started", slot_id = 901u64, elapsed_ms = 0.0, "x");
    })
    .join()
    .unwrap();
    let events = first.finish();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to_json_line(), r#"{"event":"slot_started","message":"x","slot_id":900,"elapsed_ms":0.000}"#);
    capture::SlotCapture::start(900).unwrap();
    // The recipe's bounds are the stages' own.
    assert_eq!(vortex::recipe::EXPRESSION_PRESETS, vortex_real::liveportrait::driver::Preset::NAMES);
    assert_eq!(vortex::recipe::MAX_WORD_CHARS, vortex_real::kokoro::g2p::MAX_WORD_CHARS);
    assert_eq!(vortex::recipe::SPEED_RANGE, vortex_real::kokoro::model::SPEED_RANGE);
    const { assert!(vortex::recipe::MAX_SCRIPT_CHARS < vortex_real::kokoro::g2p::MAX_TEXT_CHARS) };
}

/// Runs the `vortex` binary.
fn vortex(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vortex")).args(args).output().unwrap()
}

#[test]
fn vortex_run_refuses_bad_input_before_loading_anything() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    let out = dir.path().join("out");
    // The config does not exist: each refusal comes before the config is even read.
    let missing_config = dir.path().join("no-config.yaml");
    let run = |recipe_text: &str, extra: &[&str]| {
        std::fs::write(&recipe, recipe_text).unwrap();
        let mut args = vec!["run", "--recipe", recipe.to_str().unwrap(), "--config", missing_config.to_str().unwrap()];
        args.extend_from_slice(extra);
        if !extra.contains(&"--out") {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        let output = vortex(&args);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    let good = "slot_id: 1\nscript: Hello.\nprompt: a face\n";
    let err = run(&format!("{good}expression: {{preset: sleepy}}\n"), &[]);
    assert!(
        err.contains("recipe.yaml: expression.preset: \"sleepy\": expected one of neutral, excited, manic, calm"),
        "{err}"
    );
    let err = run("slot_id: 1\nscript: Hello.\n", &[]);
    assert!(err.contains("recipe.yaml: (top level): missing field `prompt`"), "{err}");
    let err = run(&format!("{good}voice: {{speed: 3}}\n"), &[]);
    assert!(err.contains("recipe.yaml: voice.speed: 3: expected a speed from 0.5 to 2"), "{err}");
    for bad in ["0", "-1", "NaN", "100000"] {
        let err = run(good, &["--deadline-s", bad]);
        assert!(err.contains(&format!("--deadline-s {bad}: ")), "{err}");
    }
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "keep").unwrap();
    let err = run(good, &["--out", full.to_str().unwrap()]);
    assert!(err.contains("--out") && err.contains("exists and is not empty"), "{err}");
    // Only now is the config read: the recipe, deadline and folder were fine.
    let err = run(good, &[]);
    assert!(err.contains("no-config.yaml: cannot read"), "{err}");
    assert_eq!(names(dir.path()), ["full", "recipe.yaml"], "nothing was written");
    assert_eq!(names(&full), ["keep.txt"]);
}

/// `dir/name.yaml`: the tiny setup's config with the stages' timeouts set (the production ones
/// are for release builds on a GPU, not a debug build on a shared CPU). Beside the original, so
/// that its relative model paths still hold.
fn with_timeouts(config: &Path, name: &str, video_s: f64) -> String {
    let mut value = vortex::yaml::parse_value("config", &std::fs::read_to_string(config).unwrap()).unwrap();
    let over = format!("orchestration: {{timeouts: {{audio_s: 600, image_s: 600, video_s: {video_s}, clip_s: 600}}}}");
    vortex::yaml::merge(&mut value, vortex::yaml::parse_value("override", &over).unwrap());
    let path = config.with_file_name(format!("{name}.yaml"));
    std::fs::write(&path, vortex::yaml::to_text(&value)).unwrap();
    path.display().to_string()
}

#[test]
fn vortex_run_generates_a_slot_with_the_tiny_models_and_the_exit_code_says_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let tiny = vortex(&["models", "tiny", "--out", models.to_str().unwrap()]);
    assert!(tiny.status.success(), "{tiny:?}");
    let config = with_timeouts(&models.join("config.yaml"), "generous", 600.0);
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(&recipe, "slot_id: 11\nscript: Hi there.\nprompt: a face\nvoice: {name: am_adam}\nseed: 3\n")
        .unwrap();
    let run = |out: &Path, config: &str, extra: &[&str]| {
        let mut args =
            vec!["run", "--recipe", recipe.to_str().unwrap(), "--config", config, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        vortex(&args)
    };

    let out = dir.path().join("slot-11");
    let done = run(&out, &config, &["--deadline-s", "3600"]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(done.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&done.stderr));
    assert!(stdout.starts_with("slot 11: completed within the 3600.0 s deadline, self-check passed"), "{stdout}");
    let mp4 = vortex_real::media::ffmpeg_on_path();
    let video_file = if mp4 { "slot.mp4" } else { "video.y4m" };
    let mut want = vec!["actor.png", "audio.wav", "events.jsonl", "result.json", video_file];
    want.sort();
    assert_eq!(names(&out), want);
    let wav = hound::WavReader::open(out.join("audio.wav")).unwrap();
    assert_eq!((wav.spec().sample_rate, wav.spec().channels, wav.spec().bits_per_sample), (24_000, 1, 16));
    let samples = wav.len() as usize;
    let frames = (samples as f64 / 24_000.0 * 24.0).ceil() as usize;
    let result = read_result(&out);
    assert_eq!(
        (result.outcome.as_str(), result.deadline_met, result.clip_passed),
        ("completed", Some(true), Some(true))
    );
    let media = result.media.as_ref().unwrap();
    assert_eq!((media.audio_samples, media.frames, media.video_file.as_str()), (samples, frames, video_file));
    if !mp4 {
        assert_eq!(y4m_frames(&out.join("video.y4m")).1, frames, "frames = the speech's duration × 24");
        assert!(stdout.contains("ffmpeg is not on PATH"), "said plainly: {stdout}");
    }
    assert_eq!((result.recipe.voice.name.as_str(), result.recipe.seed), ("am_adam", 3));
    let events = read_events(&out);
    let names_of = |events: &[RecordedEvent]| events.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let seen = names_of(&events);
    assert_eq!((seen.first().unwrap().as_str(), seen.last().unwrap().as_str()), ("slot_started", "slot_complete"));
    assert_eq!(seen.len(), 6, "started, four stages, complete: {seen:?}");
    assert!(events.iter().all(|e| e.field("slot_id") == Some("11")));

    // The same recipe and seed give the same bytes (the mp4 is left out: it is the encoder's).
    let again = dir.path().join("slot-11-again");
    assert_eq!(run(&again, &config, &["--deadline-s", "3600"]).status.code(), Some(0));
    for file in ["audio.wav", "actor.png", "video.y4m"].into_iter().filter(|f| !mp4 || *f != "video.y4m") {
        let (a, b) = (std::fs::read(out.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap());
        assert!(a == b, "{file} differs between two runs of the same recipe");
    }

    // An unknown voice is refused once the models are loaded, before the slot runs.
    std::fs::write(&recipe, "slot_id: 12\nscript: Hi.\nprompt: a face\nvoice: {name: zz_nobody}\n").unwrap();
    let refused = run(&dir.path().join("slot-12"), &config, &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("voice.name: \"zz_nobody\": not a loaded voice; the 3 loaded are af_heart, am_adam, bf_emma"),
        "{stderr}"
    );
    assert!(!dir.path().join("slot-12").exists());

    // Every video attempt times out: failed, exit 5, the result and the events only.
    std::fs::write(&recipe, "slot_id: 13\nscript: Hi.\nprompt: a face\n").unwrap();
    let out = dir.path().join("slot-13");
    let failed =
        run(&out, &with_timeouts(&models.join("config.yaml"), "video-times-out", 0.001), &["--deadline-s", "3600"]);
    assert_eq!(failed.status.code(), Some(5), "{}", String::from_utf8_lossy(&failed.stdout));
    assert_eq!(names(&out), ["events.jsonl", "result.json"]);
    let result = read_result(&out);
    assert_eq!(result.failure.as_ref().map(|f| f.stage.as_str()), Some("video"));
    assert_eq!(names_of(&read_events(&out)).last().map(String::as_str), Some("slot_failed"));

    // A deadline shorter than the buffer: aborted before any stage, exit 4.
    let out = dir.path().join("slot-14");
    std::fs::write(&recipe, "slot_id: 14\nscript: Hi.\nprompt: a face\n").unwrap();
    // RUST_LOG picks what the structured logs on standard error show: here every slot event.
    let aborted = std::process::Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(["run", "--recipe", recipe.to_str().unwrap(), "--config", &config, "--out", out.to_str().unwrap()])
        .args(["--deadline-s", "1"])
        .env("RUST_LOG", "vortex::slot=info")
        .output()
        .unwrap();
    assert_eq!(aborted.status.code(), Some(4), "{}", String::from_utf8_lossy(&aborted.stdout));
    let logged: Vec<String> = String::from_utf8_lossy(&aborted.stderr)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            v["fields"]["event"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(logged, ["slot_started", "slot_aborted"]);
    assert_eq!(names(&out), ["events.jsonl", "result.json"]);
    assert_eq!(read_result(&out).abort.map(|a| a.checkpoint), Some("before_start".to_string()));
    assert_eq!(names_of(&read_events(&out)), ["slot_started", "slot_aborted"]);
    // With ffmpeg on PATH the clip is slot.mp4, muxed from the frames and audio.wav. A stand-in
    // ffmpeg (this test must not depend on an encoder being installed) records its arguments
    // and writes the file it is asked for.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("ffmpeg");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = -version ] && exit 0\necho \"$@\" > \"$(dirname \"$0\")/args\"\nfor last; do :; done\necho mp4 > \"$last\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = dir.path().join("slot-15");
    std::fs::write(&recipe, "slot_id: 15\nscript: Hi.\nprompt: a face\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let muxed = std::process::Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(["run", "--recipe", recipe.to_str().unwrap(), "--config", &config, "--out", out.to_str().unwrap()])
        .args(["--deadline-s", "3600"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(muxed.status.code(), Some(0), "{}", String::from_utf8_lossy(&muxed.stderr));
    assert_eq!(names(&out), ["actor.png", "audio.wav", "events.jsonl", "result.json", "slot.mp4"]);
    assert_eq!(read_result(&out).media.unwrap().video_file, "slot.mp4");
    let args = std::fs::read_to_string(bin.join("args")).unwrap();
    assert!(args.contains(".frames.y4m -i ") && args.contains("audio.wav -c:v libx264"), "{args}");
    assert!(!String::from_utf8_lossy(&muxed.stdout).contains("ffmpeg is not on PATH"));

    // Nothing half-written anywhere: no staging folder is left.
    assert!(names(dir.path()).iter().all(|n| !n.starts_with('.')), "{:?}", names(dir.path()));
}
