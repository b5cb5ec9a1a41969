//! What every fuzz target (`fuzz/`) and its committed corpus (replayed by ordinary tests) checks
//! beyond "no panic": that an error message reads as one, for a user.
//!
//! Each crate has a `fuzzing` module with the entry points of its targets; they take arbitrary
//! bytes, never panic on any input, and pass every error message they get through
//! [`check_message`].

/// The most characters an error message may have: values and file names are shortened long
/// before, so a longer one echoes something it should not (a whole file, a huge value).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Panics unless `message` is a readable error: not empty, at most [`MAX_MESSAGE_CHARS`],
/// printable, and free of serde's Rust vocabulary (`expected struct Orchestration`) outside the
/// parts that quote what the user typed (`"..."`, `` `...` ``), which may say anything.
pub fn check_message(message: &str) {
    check_shape(message);
    check_words(message);
}

/// [`check_message`] for a config or scenario error: the shape of the whole message, the words
/// of its message part only (its file and key path are the user's).
pub fn check_config_error(e: &crate::ConfigError) {
    check_shape(&e.to_string());
    match e {
        crate::ConfigError::Invalid { message, .. } => check_words(message),
        crate::ConfigError::Io { .. } => {}
    }
}

fn check_shape(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error message");
    let chars = message.chars().count();
    assert!(chars <= MAX_MESSAGE_CHARS, "an error message of {chars} characters: {:.300}...", message);
    let control = message.chars().find(|c| c.is_control() && *c != '\n');
    assert!(control.is_none(), "an unprintable character {control:?} in an error message: {message:?}");
}

fn check_words(message: &str) {
    let ours = outside_quotes(message);
    for rust in ["expected struct ", "expected enum ", "expected tuple struct ", "expected unit struct "] {
        assert!(!ours.contains(rust), "Rust's vocabulary ({rust:?}) in an error message: {message}");
    }
}

/// The config parser (the `orchestration` section, as the simulator reads it): any text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = crate::Orchestration::from_yaml_str("config.yaml", text) {
        check_config_error(&e);
    }
}

/// `message` without its quoted parts: `"..."` (backslash escapes respected) and `` `...` ``.
fn outside_quotes(message: &str) -> String {
    let (mut out, mut quote, mut escaped) = (String::new(), None, false);
    for c in message.chars() {
        match (quote, escaped, c) {
            (Some('"'), false, '\\') => escaped = true,
            (Some(_), true, _) => escaped = false,
            (None, _, '"' | '`') => quote = Some(c),
            (Some(q), false, c) if c == q => quote = None,
            (None, _, c) => out.push(c),
            _ => {}
        }
    }
    out
}
