//! Scheduler behaviour, in virtual time: tokio's paused clock in a normal build (`cargo test`),
//! the madsim simulator under `cargo sim-test`. Each test builds a world from scripted stages,
//! injects one fault and checks the outcome.

mod common;

use std::time::Duration;

use common::{assert_ms, policy, policy_with_buffer, policy_with_retries, recipe, secs, Scripted, Seen, Step};
use vortex::config::Orchestration;
use vortex::events::Recorder;
use vortex::{
    AttemptResult, Checkpoint, FailReason, FailureKind, Outcome, SlotReport, SlotScheduler, Stage, StaticPredictor,
};

const DEADLINE: Duration = Duration::from_secs(45);

async fn run(stages: Scripted, policy: &Orchestration, deadline: Duration) -> SlotReport<Scripted> {
    let predictor = StaticPredictor::new(policy.target_durations());
    SlotScheduler::new(stages, predictor, policy).run_slot(&recipe(), deadline).await
}

#[madsim::test(start_paused = true)]
async fn completed_slot_reports_outputs_timing_attempts_and_meta() {
    let result = run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), DEADLINE).await;
    assert_eq!(result.meta.slot_id, 42);
    assert_eq!(result.meta.deadline, DEADLINE);
    assert_ms(result.meta.end.as_secs_f64() * 1e3, 21_000.0);
    let completed = result.completed().expect("slot completed");
    assert!(completed.deadline_met);
    assert!(completed.clip_passed);
    assert!(completed.outputs.verdict.0);
    assert_ms(result.timing.stage_ms.audio.unwrap(), 2_000.0);
    assert_ms(result.timing.stage_ms.image.unwrap(), 12_000.0);
    assert_ms(result.timing.stage_ms.video.unwrap(), 8_000.0);
    assert_ms(result.timing.stage_ms.clip.unwrap(), 1_000.0);
    assert_ms(result.timing.total_ms, 21_000.0);
    assert_eq!(result.attempts, vortex::PerStage::new(1, 1, 1, 1));
    assert_eq!(result.log.len(), 4);
    assert!(result.log.iter().all(|a| a.result == AttemptResult::Ok && a.attempt == 0));
}

#[madsim::test(start_paused = true)]
async fn deadline_check_passes_with_enough_time_and_aborts_with_too_little() {
    // Targets sum to 21 s (max(2, 12) + 8 + 1); with a 5 s buffer a 26 s deadline just fits (the
    // extra millisecond absorbs the simulator's nanosecond scheduling jitter).
    let enough = run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), Duration::from_millis(26_001)).await;
    assert!(enough.completed().is_some(), "26 s - 5 s buffer >= 21 s of work: {:?}", enough.outcome);
    let short =
        run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), Duration::from_secs(25) + Duration::from_millis(999)).await;
    let Outcome::Aborted(abort) = short.outcome else { panic!("expected an abort, got {:?}", short.outcome) };
    assert_eq!(abort.checkpoint, Checkpoint::BeforeStart);
    assert_eq!(abort.elapsed, Duration::ZERO);
    assert_eq!(abort.predicted_finish, Duration::from_secs(21));
    assert!(short.log.is_empty(), "no stage may start after an abort before start");
}

#[madsim::test(start_paused = true)]
async fn hanging_stage_is_cut_at_its_timeout() {
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Video, &[Step::Hang]);
    let result = run(stages, &policy(), DEADLINE).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!(
        (failure.stage, &failure.reason, failure.attempts),
        (Stage::Video, &FailReason::TimedOut { capped_by_deadline: false }, 1)
    );
    // Image ends at 12 s, video's 10 s timeout at 22 s.
    assert_ms(result.timing.total_ms, 22_000.0);
    let video = result.log.iter().find(|a| a.stage == Stage::Video).unwrap();
    assert_eq!(video.result, AttemptResult::Failed(FailureKind::TimedOut));
    assert_ms(video.duration.as_secs_f64() * 1e3, 10_000.0);
}

#[madsim::test(start_paused = true)]
async fn retry_succeeds_on_the_second_attempt() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Audio, &[Step::Err(1.0), Step::Ok(2.0)]);
    let result = run(stages, &policy(), DEADLINE).await;
    assert!(result.completed().unwrap().deadline_met);
    assert_eq!(result.attempts.audio, 2);
    let audio: Vec<_> = result.log.iter().filter(|a| a.stage == Stage::Audio).map(|a| (a.attempt, a.result)).collect();
    assert_eq!(audio, [(0, AttemptResult::Failed(FailureKind::ModelError)), (1, AttemptResult::Ok)]);
    // 1 s failed attempt + 0.5 s backoff + 2 s second attempt.
    assert_ms(result.timing.stage_ms.audio.unwrap(), 3_500.0);
    let retries: Vec<_> = recorder.events().into_iter().filter(|e| e.name == "stage_retry").collect();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].field("stage"), Some("audio"));
    assert_eq!(retries[0].field("backoff_ms"), Some("500.000"));
    assert_eq!(retries[0].field("reason"), Some("model_error"));
    // Logged when the retry starts, after the backoff, not when the first attempt failed.
    assert_ms(retries[0].field("elapsed_ms").unwrap().parse().unwrap(), 1_500.0);
}

#[madsim::test(start_paused = true)]
async fn a_retry_cancelled_during_its_backoff_is_never_announced() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    // Audio fails at 1 s and would retry after 0.5 s of backoff; image fails at 1.2 s, inside it.
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0)
        .with(Stage::Audio, &[Step::Err(1.0), Step::Ok(2.0)])
        .with(Stage::Image, &[Step::Err(1.2)]);
    let result = run(stages, &policy(), DEADLINE).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!(failure.stage, Stage::Image);
    assert_eq!(result.attempts.audio, 1, "the audio retry never started");
    assert!(!recorder.names().contains(&"stage_retry".to_string()), "{:?}", recorder.names());
    assert_eq!(recorder.names().last().map(String::as_str), Some("slot_failed"));
    assert_eq!(recorder.events().last().unwrap().field("reason"), Some("model_error"));
}

#[madsim::test(start_paused = true)]
async fn a_slot_dropped_from_outside_says_so() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0);
    let gave_up = vortex::rt::timeout(Duration::from_secs(5), run(stages.clone(), &policy(), DEADLINE)).await;
    assert!(gave_up.is_err());
    assert_eq!(recorder.names(), ["slot_started", "audio_complete", "slot_cancelled"]);
    assert_ms(recorder.events()[2].field("elapsed_ms").unwrap().parse().unwrap(), 5_000.0);
    assert!(stages.seen().contains(&Seen::Dropped(Stage::Image, 0)), "the running stage was cancelled too");
}

#[madsim::test(start_paused = true)]
async fn exhausted_retries_fail_the_slot_with_exponential_backoff() {
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Audio, &[Step::Err(1.0)]);
    let result = run(stages.clone(), &policy_with_retries(2, 0), DEADLINE).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!(failure.stage, Stage::Audio);
    assert_eq!(failure.attempts, 3);
    assert!(!failure.retry_skipped);
    assert!(matches!(&failure.reason, FailReason::Error(e) if e.message() == "audio failed on attempt 2"));
    // Attempts at 0, 1.5 (1 s + 0.5 s backoff) and 3.5 (1 s + 1 s backoff) s; the last fails at 4.5 s.
    let starts: Vec<f64> =
        result.log.iter().filter(|a| a.stage == Stage::Audio).map(|a| a.start.as_secs_f64()).collect();
    assert_eq!(starts.len(), 3);
    for (got, want) in starts.iter().zip([0.0, 1.5, 3.5]) {
        assert_ms(got * 1e3, want * 1e3);
    }
    assert_ms(result.timing.total_ms, 4_500.0);
    assert_eq!(result.timing.stage_ms.audio, None);
}

#[madsim::test(start_paused = true)]
async fn audio_and_image_really_overlap() {
    let result = run(Scripted::ok(2.5, 10.0, 8.0, 1.0), &policy(), DEADLINE).await;
    // max(2.5, 10) + 8 + 1 = 19 s, far below the 21.5 s sum.
    assert_ms(result.timing.total_ms, 19_000.0);
    let t = result.timing;
    let sum: f64 = vortex::Stage::ALL.iter().map(|&s| t.stage_ms.get(s).unwrap()).sum();
    assert_ms(sum, 21_500.0);
    let starts: Vec<_> = result.log.iter().filter(|a| a.stage <= Stage::Image).map(|a| a.start).collect();
    assert_eq!(starts, [Duration::ZERO, Duration::ZERO], "audio and image start together");
}

#[madsim::test(start_paused = true)]
async fn predictive_abort_fires_at_each_checkpoint() {
    // before_start: 25 s - 5 s buffer < 21 s of targets.
    let r = run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), Duration::from_secs(25)).await;
    assert!(matches!(r.outcome, Outcome::Aborted(a) if a.checkpoint == Checkpoint::BeforeStart));

    // before_video: image takes 14 s; then 27 - 14 - 5 = 8 s < 9 s (video + clip).
    let r = run(Scripted::ok(2.0, 14.0, 8.0, 1.0), &policy(), Duration::from_secs(27)).await;
    let Outcome::Aborted(a) = r.outcome else { panic!("expected an abort, got {:?}", r.outcome) };
    assert_eq!(a.checkpoint, Checkpoint::BeforeVideo);
    assert_ms(a.elapsed.as_secs_f64() * 1e3, 14_000.0);
    assert_ms(a.predicted_finish.as_secs_f64() * 1e3, 23_000.0);
    assert_eq!(r.attempts.video, 0);

    // before_clip: video takes 9.9 s, ending at 21.9 s; 27.5 - 21.9 - 5 = 0.6 s < 1 s (clip).
    let r = run(Scripted::ok(2.0, 12.0, 9.9, 1.0), &policy(), Duration::from_millis(27_500)).await;
    let Outcome::Aborted(a) = r.outcome else { panic!("expected an abort, got {:?}", r.outcome) };
    assert_eq!(a.checkpoint, Checkpoint::BeforeClip);
    assert_ms(a.elapsed.as_secs_f64() * 1e3, 21_900.0);
    assert_eq!(r.attempts.clip, 0);
    assert_ms(r.timing.stage_ms.video.unwrap(), 9_900.0);
}

#[madsim::test(start_paused = true)]
async fn failed_clip_self_check_is_reported_not_aborted() {
    let result = run(Scripted::ok(2.0, 12.0, 8.0, 1.0).clip_fails(), &policy(), DEADLINE).await;
    let completed = result.completed().expect("a failed self-check still completes");
    assert!(!completed.clip_passed);
    assert!(completed.deadline_met);
    assert!(!completed.outputs.verdict.0);
}

#[madsim::test(start_paused = true)]
async fn checkpoint_events_are_emitted_once_each_in_order() {
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), DEADLINE).await;
    assert_eq!(
        recorder.names(),
        ["slot_started", "audio_complete", "image_complete", "video_complete", "clip_complete", "slot_complete"]
    );
    let events = recorder.events();
    let elapsed: Vec<f64> = events.iter().map(|e| e.field("elapsed_ms").unwrap().parse().unwrap()).collect();
    for (got, want) in elapsed.iter().zip([0.0, 2_000.0, 12_000.0, 20_000.0, 21_000.0, 21_000.0]) {
        assert_ms(*got, want);
    }
    assert!(events.iter().all(|e| e.field("slot_id") == Some("42")));
    assert_eq!(events[5].field("deadline_met"), Some("true"));

    // Image first when it is the faster one; the aborted and failed endings are one event too.
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    run(Scripted::ok(2.5, 1.5, 8.0, 1.0).with(Stage::Clip, &[Step::Hang]), &policy(), DEADLINE).await;
    assert_eq!(recorder.names(), ["slot_started", "image_complete", "audio_complete", "video_complete", "slot_failed"]);
    let recorder = Recorder::default();
    let _guard = recorder.set_default();
    run(Scripted::ok(2.0, 12.0, 8.0, 1.0), &policy(), Duration::from_secs(20)).await;
    assert_eq!(recorder.names(), ["slot_started", "slot_aborted"]);
    assert_eq!(recorder.events()[1].field("checkpoint"), Some("before_start"));
}

#[madsim::test(start_paused = true)]
async fn sibling_is_cancelled_when_the_other_parallel_stage_fails() {
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Audio, &[Step::Err(1.0)]);
    let result = run(stages.clone(), &policy(), DEADLINE).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!((failure.stage, failure.attempts), (Stage::Audio, 2));
    // Audio fails at 1 s, retries after 0.5 s, fails again at 2.5 s: the slot ends there, not at 12 s.
    assert_ms(result.timing.total_ms, 2_500.0);
    assert!(stages.seen().contains(&Seen::Dropped(Stage::Image, 0)), "image was not cancelled: {:?}", stages.seen());
    assert!(!stages.seen().contains(&Seen::Finished(Stage::Image, 0)));
    let image = result.log.iter().find(|a| a.stage == Stage::Image).unwrap();
    assert_eq!(image.result, AttemptResult::Cancelled);
    assert_ms(image.duration.as_secs_f64() * 1e3, 2_500.0);
    assert_eq!(result.attempts.video, 0);
    // Nothing runs on for a dead slot: virtual time after the slot shows no late completion.
    vortex::rt::sleep(Duration::from_secs(60)).await;
    assert!(!stages.seen().iter().any(|s| matches!(s, Seen::Finished(Stage::Image, _))));
}

#[madsim::test(start_paused = true)]
async fn attempt_timeout_is_capped_by_the_deadline() {
    // No buffer and small targets so the predictor lets the slot run into its deadline.
    let mut p = policy_with_buffer(0.0);
    p.targets.image = secs(1.0);
    p.targets.video = secs(1.0);
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Image, &[Step::Hang]);
    let result = run(stages, &p, Duration::from_secs(14)).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!((failure.stage, &failure.reason), (Stage::Image, &FailReason::TimedOut { capped_by_deadline: true }));
    // The image timeout is 15 s, but only 14 s were left.
    assert_ms(result.timing.total_ms, 14_000.0);
    let image = result.log.iter().find(|a| a.stage == Stage::Image).unwrap();
    assert_eq!(image.result, AttemptResult::Failed(FailureKind::DeadlineCapped));
    assert_eq!(failure.reason.kind(), FailureKind::DeadlineCapped);
}

#[madsim::test(start_paused = true)]
async fn retry_is_skipped_when_it_can_no_longer_fit() {
    // Audio fails after 2.9 s every time, with 3 retries allowed and a 27 s deadline. After the
    // third failure (10.2 s) the next retry needs 2 s backoff + 11 s of work, but only
    // 27 - 10.2 - 5 = 11.8 s remain: the slot fails at once instead.
    let stages = Scripted::ok(2.0, 12.0, 8.0, 1.0).with(Stage::Audio, &[Step::Err(2.9)]);
    let result = run(stages, &policy_with_retries(3, 0), Duration::from_secs(27)).await;
    let Outcome::Failed(failure) = &result.outcome else { panic!("expected a failure, got {:?}", result.outcome) };
    assert_eq!(failure.stage, Stage::Audio);
    assert_eq!(failure.attempts, 3);
    assert!(failure.retry_skipped);
    assert_ms(result.timing.total_ms, 10_200.0);
}
