//! What every fuzz target (`fuzz/`) and its committed corpus (replayed by ordinary tests) checks
//! beyond "no panic": that an error message reads as one, for a user.
//!
//! Each crate has a `fuzzing` module with the entry points of its targets; they take arbitrary
//! bytes, never panic on any input, and pass every error message they get through
//! [`check_message`].

/// The most characters an error message may have: values and file names are shortened long
/// before, so a longer one echoes something it should not (a whole file, a huge value).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Panics unless `message` is a readable error: not empty, at most [`MAX_MESSAGE_CHARS`], and free
/// of Rust's own vocabulary (`struct Orchestration`, `Option<f64>`), which means nothing to a user.
pub fn check_message(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error message");
    let chars = message.chars().count();
    assert!(chars <= MAX_MESSAGE_CHARS, "an error message of {chars} characters: {:.300}...", message);
    for rust in ["struct ", "enum ", "Option<", "Vec<", "PerStage", "::"] {
        assert!(!message.contains(rust), "Rust's vocabulary ({rust:?}) in an error message: {message}");
    }
}

/// The config parser (the `orchestration` section, as the simulator reads it): any text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = crate::Orchestration::from_yaml_str("config.yaml", text) {
        check_message(&e.to_string());
    }
}
