//! The audio-driven motion (`vortex_real::liveportrait::driver`): louder audio opens the mouth
//! more, silence keeps it closed, bilabials shut it, blinks come at a natural rate, the frame
//! count is the audio's duration × 24, presets scale the motion, and a seed repeats it exactly.

use vortex::recipe::Expression;
use vortex_real::kokoro::pipeline::PhonemeTiming;
use vortex_real::liveportrait::driver::{drive, frame_count, FrameMotion, MotionError, FPS, MAX_FRAMES};

const SR: u32 = 24_000;

/// A vowel-like tone at `amplitude` for `seconds`.
fn tone(amplitude: f32, seconds: f32) -> Vec<f32> {
    (0..(seconds * SR as f32) as usize)
        .map(|i| amplitude * (i as f32 * 2.0 * std::f32::consts::PI * 180.0 / SR as f32).sin())
        .collect()
}

fn neutral() -> Expression {
    Expression::default()
}

fn preset(name: &str) -> Expression {
    Expression { preset: name.into(), intensity: 0.5 }
}

fn mean(motion: &[FrameMotion], f: impl Fn(&FrameMotion) -> f32) -> f32 {
    motion.iter().map(f).sum::<f32>() / motion.len() as f32
}

#[test]
fn louder_audio_opens_the_mouth_more_and_silence_keeps_it_closed() {
    let mut previous = -1.0;
    for amplitude in [0.0, 0.01, 0.03, 0.1, 0.3] {
        let motion = drive(&tone(amplitude, 2.0), SR, &[], &neutral(), 1).unwrap();
        // Past the envelope's attack.
        let open = mean(&motion[6..], |m| m.lip_open);
        eprintln!("amplitude {amplitude}: mean lip opening {open:.3}");
        assert!(open > previous, "amplitude {amplitude} opens {open}, no more than the quieter {previous}");
        previous = open;
        if amplitude == 0.0 {
            assert!(motion.iter().all(|m| m.lip_open == 0.0), "silence opened the mouth");
        }
    }
    assert!(previous > 0.5, "a loud tone opens the mouth only {previous}");
    // Speech then silence: the mouth closes within a few frames of the silence.
    let mut audio = tone(0.3, 1.0);
    audio.extend(std::iter::repeat_n(0.0, SR as usize));
    let motion = drive(&audio, SR, &[], &neutral(), 1).unwrap();
    assert!(motion[20].lip_open > 0.5);
    assert!(motion[24 + 8..].iter().all(|m| m.lip_open < 0.02), "the mouth stays open in silence");
}

#[test]
fn phonemes_shape_the_lips() {
    // 0.5 s of an open vowel, then 0.5 s of `m`, at the same loudness.
    let half = SR as usize / 2;
    let phonemes =
        [PhonemeTiming { symbol: 'ɑ', start: 0, len: half }, PhonemeTiming { symbol: 'm', start: half, len: half }];
    let motion = drive(&tone(0.3, 1.0), SR, &phonemes, &neutral(), 1).unwrap();
    let vowel = mean(&motion[4..12], |m| m.lip_open);
    let closed = mean(&motion[13..24], |m| m.lip_open);
    eprintln!("ɑ: {vowel:.3}, m: {closed:.3}");
    assert!(vowel > 0.5 && closed < 0.01, "ɑ opens {vowel}, m {closed}");
}

#[test]
fn blinks_come_at_a_natural_rate() {
    let minute = vec![0f32; 60 * SR as usize];
    for (name, low, high) in [("neutral", 10, 30), ("calm", 5, 20), ("manic", 18, 45)] {
        let mut counts = Vec::new();
        for seed in 0..5 {
            let motion = drive(&minute, SR, &[], &preset(name), seed).unwrap();
            // A blink is a run of frames with the eyes more than half shut.
            let shut: Vec<bool> = motion.iter().map(|m| m.eye_open < 0.5).collect();
            let blinks = shut.windows(2).filter(|w| !w[0] && w[1]).count() + usize::from(shut[0]);
            assert!(motion.iter().any(|m| m.eye_open == 0.0 || m.eye_open < 0.2), "{name}: no blink closes the eyes");
            counts.push(blinks);
        }
        eprintln!("{name}: blinks per minute over 5 seeds {counts:?}");
        assert!(counts.iter().all(|&c| (low..=high).contains(&c)), "{name}: {counts:?} outside {low}..={high}");
    }
    let calm = drive(&minute, SR, &[], &preset("calm"), 3).unwrap();
    let manic = drive(&minute, SR, &[], &preset("manic"), 3).unwrap();
    let sway = |m: &[FrameMotion]| m.iter().map(|f| f.yaw_deg.abs()).fold(0f32, f32::max);
    eprintln!("largest yaw: calm {:.2}°, manic {:.2}°", sway(&calm), sway(&manic));
    assert!(sway(&manic) > 2.0 * sway(&calm));
    assert!(sway(&manic) < 20.0, "manic sways {}°", sway(&manic));
}

#[test]
fn frame_count_is_duration_times_24_and_a_seed_repeats_the_motion() {
    assert_eq!(frame_count(45 * SR as usize, SR), 1080);
    assert_eq!(frame_count(SR as usize / 24 + 1, SR), 2, "a started frame counts");
    assert_eq!(frame_count(0, SR), 0);
    for seconds in [0.5f32, 2.0, 3.3] {
        let audio = tone(0.2, seconds);
        let motion = drive(&audio, SR, &[], &neutral(), 11).unwrap();
        assert_eq!(motion.len(), (audio.len() as f64 * f64::from(FPS) / f64::from(SR)).ceil() as usize);
    }
    let audio = tone(0.2, 10.0);
    let a = drive(&audio, SR, &[], &neutral(), 42).unwrap();
    assert_eq!(a, drive(&audio, SR, &[], &neutral(), 42).unwrap(), "the same seed moved differently");
    assert_ne!(a, drive(&audio, SR, &[], &neutral(), 43).unwrap(), "another seed moved the same");
}

#[test]
fn bad_inputs_are_refused() {
    let audio = tone(0.1, 0.1);
    let err = drive(&audio, SR, &[], &preset("sleepy"), 0).unwrap_err();
    assert_eq!(err, MotionError::UnknownPreset("sleepy".into()));
    assert!(err.to_string().contains("neutral, excited, manic, calm"));
    let loud = Expression { preset: "calm".into(), intensity: 1.5 };
    assert_eq!(drive(&audio, SR, &[], &loud, 0).unwrap_err(), MotionError::Intensity(1.5));
    assert_eq!(drive(&audio, 0, &[], &neutral(), 0).unwrap_err(), MotionError::SampleRate(0));
    let mut nan = audio.clone();
    nan[3] = f32::NAN;
    assert_eq!(drive(&nan, SR, &[], &neutral(), 0).unwrap_err(), MotionError::NonFinite(3));
    let long = vec![0f32; (MAX_FRAMES + 1) * (SR / FPS) as usize];
    assert!(matches!(drive(&long, SR, &[], &neutral(), 0), Err(MotionError::TooLong { .. })));
}
