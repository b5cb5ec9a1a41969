//! Reading YAML input strictly, with errors that name the file, the key path and the bad value.
//!
//! Shared by every file the project reads (`config.yaml`, scenarios, real mode's sections), so all
//! errors read alike: `config.yaml: orchestration.timeouts.audio_s: expected a number of seconds
//! above 0 and at most 86400, got -1 at line 4 column 14`.
//!
//! ```
//! use vortex::yaml;
//! #[derive(serde::Deserialize, Debug)]
//! #[serde(deny_unknown_fields)]
//! struct Doc { slots: u32 }
//! let err = yaml::parse::<Doc>("doc.yaml", "slots: many").unwrap_err().to_string();
//! assert!(err.starts_with("doc.yaml: slots: invalid type"), "{err}");
//! ```

use std::io::Read;
use std::path::Path;

/// The largest YAML file the project reads (config or scenario): far above any real one, and
/// small enough that `/dev/zero` or a wrong path to a weights file fails at once.
pub const MAX_YAML_BYTES: u64 = 1 << 20;

/// Why a config (or scenario) could not be loaded; the message names the file, key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {cause}")]
    Io {
        /// The file's path as given.
        file: String,
        /// The underlying error (shown in the message, so not chained as a source too).
        cause: std::io::Error,
    },
    /// The file was read but a key or value is wrong.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file's path as given.
        file: String,
        /// Dotted key path, `(top level)` for the document itself.
        key: String,
        /// What is wrong, with the bad value.
        message: String,
    },
}

/// Builds the error for a bad key. Each part is shortened to at most [`MAX_PART_CHARS`], so a
/// huge value or key is quoted, not echoed whole.
pub fn invalid(origin: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: shorten(origin), key: shorten(key), message: shorten(&message.into()) }
}

/// The most characters of a file name, key or message quoted in an error.
pub const MAX_PART_CHARS: usize = 500;

/// `s` made printable (control characters escaped, Rust type names replaced by words: see
/// [`plain_words`]) and, if long, cut to its start and end around an ellipsis: at most
/// [`MAX_PART_CHARS`] characters.
pub fn shorten(s: &str) -> String {
    let s = printable(s);
    let n = s.chars().count();
    if n <= MAX_PART_CHARS {
        return s;
    }
    let keep = (MAX_PART_CHARS - 1) / 2;
    let head: String = s.chars().take(keep).collect();
    let tail: String = s.chars().skip(n - keep).collect();
    format!("{head}…{tail}")
}

/// `s` as an error may show it: in words rather than Rust's types ([`plain_words`]), with control
/// characters (but newlines) escaped.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in plain_words(s).chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How an error quotes a value the user typed: at most 100 characters (then `…`), in quotes,
/// with control characters escaped.
pub fn quoted(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// serde's messages name the Rust type they expected (`expected struct HashMetadata`); a user
/// reads `expected a map` instead. Types of our own say what they expect in words already
/// (`#[serde(expecting)]`); this catches those of other crates (safetensors, JSON configs).
pub fn plain_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("expected ") {
        let (before, after) = rest.split_at(at + "expected ".len());
        out.push_str(before);
        rest = after;
        for (kind, words) in [
            ("tuple struct ", "a list"),
            ("unit struct ", "nothing"),
            ("struct ", "a map"),
            ("enum ", "one of the allowed values"),
        ] {
            if let Some(name_and_rest) = rest.strip_prefix(kind) {
                let end =
                    name_and_rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(name_and_rest.len());
                out.push_str(words);
                rest = &name_and_rest[end..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads a text file of at most `limit` bytes. Anything but a regular file (a directory, a FIFO
/// that would block, a device that never ends) is refused before it is read.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ConfigError> {
    use crate::input::{open_regular, Refused};
    let file = path.display().to_string();
    let (opened, len) = open_regular(path).map_err(|refused| match refused {
        Refused::Directory => invalid(&file, "(file)", "is a directory, expected a file"),
        Refused::NotRegular => invalid(&file, "(file)", "is not a regular file (a device, FIFO or socket)"),
        Refused::Io(cause) => ConfigError::Io { file: shorten(&file), cause },
    })?;
    if len > limit {
        return Err(invalid(&file, "(file)", format!("{len} bytes, larger than the limit of {limit} bytes")));
    }
    let mut text = String::new();
    // The length may grow between the check and the read: read at most one byte past the limit.
    opened
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|cause| ConfigError::Io { file: shorten(&file), cause })?;
    if text.len() as u64 > limit {
        return Err(invalid(&file, "(file)", format!("larger than the limit of {limit} bytes")));
    }
    Ok(text)
}

/// The deepest nesting of flow collections (`[`, `{`) a file may have. Real files nest four or
/// five levels; the YAML parser's time grows with the square of this depth, so a file of a
/// million `[` would take minutes to refuse.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Deserializes YAML text strictly; `origin` names it in errors, which keep line and column.
///
/// Refused before any value is read: a byte-order mark, flow collections nested deeper than
/// [`MAX_FLOW_DEPTH`], and YAML tags (`!name value`), which nothing here gives a meaning to.
pub fn parse<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    Ok(parse_with_value(origin, text)?.0)
}

/// [`parse`], also returning the document as an untyped value (which the tag check parses
/// anyway), for callers that merge overrides into it.
pub fn parse_with_value<T: serde::de::DeserializeOwned>(
    origin: &str,
    text: &str,
) -> Result<(T, serde_yaml_ng::Value), ConfigError> {
    check_text(origin, text)?;
    // Parsed typed from the text, so that errors keep their line and column, and untyped to find
    // tags (which the typed pass ignores silently). The typed error comes first: it names the key,
    // where the untyped pass may stop earlier at a number too large for any YAML value.
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let typed = serde_path_to_error::deserialize(de).map_err(|e| path_error(origin, e))?;
    let value = serde_yaml_ng::from_str(text).map_err(|e| invalid(origin, "(top level)", e.to_string()))?;
    check_value(origin, &value)?;
    Ok((typed, value))
}

/// Deserializes an already parsed YAML value (for example a file merged with overrides).
pub fn from_value<T: serde::de::DeserializeOwned>(origin: &str, value: serde_yaml_ng::Value) -> Result<T, ConfigError> {
    check_value(origin, &value)?;
    serde_path_to_error::deserialize(value).map_err(|e| path_error(origin, e))
}

/// Parses YAML text into an untyped value, with the same checks as [`parse`].
pub fn parse_value(origin: &str, text: &str) -> Result<serde_yaml_ng::Value, ConfigError> {
    check_text(origin, text)?;
    let value = serde_yaml_ng::from_str(text).map_err(|e| invalid(origin, "(top level)", e.to_string()))?;
    check_value(origin, &value)?;
    Ok(value)
}

/// Refuses what the text itself gets wrong, before the YAML parser sees it: a UTF-8 byte-order
/// mark (editors add it; YAML allows it but our parser reads it as a second document, and a
/// clear error beats a confusing one) and flow collections nested deeper than [`MAX_FLOW_DEPTH`].
pub fn check_text(origin: &str, text: &str) -> Result<(), ConfigError> {
    if text.starts_with('\u{feff}') {
        return Err(invalid(
            origin,
            "(file)",
            "starts with a UTF-8 byte-order mark (U+FEFF); save the file as UTF-8 without BOM",
        ));
    }
    if let Some(line) = too_deep(text) {
        return Err(invalid(
            origin,
            "(file)",
            format!("brackets nested more than {MAX_FLOW_DEPTH} levels deep at line {line}"),
        ));
    }
    Ok(())
}

/// The line where flow collections first nest deeper than [`MAX_FLOW_DEPTH`], if they do.
/// Brackets inside quoted strings and comments do not count; a quote only opens a string at
/// the start of a token (so the `'` in `don't` is plain text, as YAML reads it).
fn too_deep(text: &str) -> Option<usize> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let (mut state, mut depth, mut line, mut prev, mut escaped) = (In::Plain, 0usize, 1usize, '\n', false);
    for c in text.chars() {
        match state {
            In::Plain => match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                '#' if prev.is_whitespace() => state = In::Comment,
                '\'' if prev.is_whitespace() || "[{,:-?".contains(prev) => state = In::Single,
                '"' if prev.is_whitespace() || "[{,:-?".contains(prev) => state = In::Double,
                _ => {}
            },
            // A doubled quote inside a single-quoted string closes and reopens it: same result.
            In::Single if c == '\'' => state = In::Plain,
            In::Double if c == '"' && !escaped => state = In::Plain,
            In::Comment if c == '\n' => state = In::Plain,
            _ => {}
        }
        escaped = state == In::Double && c == '\\' && !escaped;
        if c == '\n' {
            line += 1;
        }
        prev = c;
    }
    None
}

/// Refuses YAML tags anywhere in a parsed value, naming the key: `!name value` would otherwise be
/// read as the plain value, silently. `origin` names the file or flag in the error.
pub fn check_value(origin: &str, value: &serde_yaml_ng::Value) -> Result<(), ConfigError> {
    fn walk(value: &serde_yaml_ng::Value, path: &mut String) -> Option<(String, String)> {
        use serde_yaml_ng::Value;
        match value {
            Value::Tagged(t) => Some((path.clone(), t.tag.to_string())),
            Value::Sequence(items) => items.iter().enumerate().find_map(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path);
                path.truncate(len);
                found
            }),
            Value::Mapping(map) => map.iter().find_map(|(k, v)| {
                let len = path.len();
                let name = k.as_str().map_or_else(
                    || serde_yaml_ng::to_string(k).map_or("(key)".into(), |t| t.trim_end().to_string()),
                    str::to_string,
                );
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&name);
                let found = walk(k, path).or_else(|| walk(v, path));
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    match walk(value, &mut String::new()) {
        None => Ok(()),
        Some((key, tag)) => {
            let key = if key.is_empty() { "(top level)".to_string() } else { key };
            Err(invalid(origin, &key, format!("YAML tags such as {tag} are not supported; remove the tag")))
        }
    }
}

fn path_error(origin: &str, e: serde_path_to_error::Error<serde_yaml_ng::Error>) -> ConfigError {
    let key = e.path().to_string();
    let key = if key == "." { "(top level)".to_string() } else { key };
    let message = e.into_inner().to_string();
    // serde_yaml_ng prefixes its own (parent) path, which would repeat ours; its trailing
    // "at line L column C" stays, as it helps find the spot in long files.
    let message = ancestors(&key)
        .find_map(|parent| message.strip_prefix(&format!("{parent}: ")).map(str::to_string))
        .unwrap_or(message);
    invalid(origin, &key, message)
}

/// `a.b.c`, `a.b`, `a`: the key and its parents, longest first.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(key), |k| k.rfind('.').map(|i| &k[..i]))
}

/// Deep-merges `over` into `base`: maps merge key by key, anything else replaces.
pub fn merge(base: &mut serde_yaml_ng::Value, over: serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (k, v) in over {
                match base.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A value as YAML text (for printing effective settings). Only for types that always serialize:
/// plain structs of numbers, strings and paths.
pub fn to_text<T: serde::Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).expect("a plain settings struct always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        let deep = format!("a: {}{}", "[".repeat(MAX_FLOW_DEPTH + 1), "]".repeat(MAX_FLOW_DEPTH + 1));
        assert_eq!(too_deep(&format!("x: 1\n{deep}\n")), Some(2));
        assert_eq!(too_deep(&"[".repeat(MAX_FLOW_DEPTH)), None);
        // Brackets in quoted strings and comments are text; an apostrophe inside a word opens nothing.
        let text = format!("a: '{0}'\nb: \"{0}\"\n# {0}\nc: don't [x]\n", "[".repeat(100));
        assert_eq!(too_deep(&text), None);
        assert!(too_deep(&format!("c: don't {}", "[".repeat(100))).is_some());
    }

    #[test]
    fn tags_and_byte_order_marks_are_refused_with_their_key() {
        let err = parse::<serde_yaml_ng::Value>("t.yaml", "a:\n  b: [1, !x 2]\n").unwrap_err().to_string();
        assert_eq!(err, "t.yaml: a.b[1]: YAML tags such as !x are not supported; remove the tag");
        let err = parse::<serde_yaml_ng::Value>("t.yaml", "\u{feff}a: 1\n").unwrap_err().to_string();
        assert!(err.starts_with("t.yaml: (file): starts with a UTF-8 byte-order mark"), "{err}");
    }

    #[test]
    fn messages_are_printable_short_and_in_words() {
        assert_eq!(
            plain_words("invalid type: string \"a\", expected struct HashMetadata at line 1"),
            "invalid type: string \"a\", expected a map at line 1"
        );
        assert_eq!(
            plain_words("expected enum Kind or expected tuple struct P"),
            "expected one of the allowed values or expected a list"
        );
        let long = shorten(&"x".repeat(10_000));
        assert!(long.chars().count() <= MAX_PART_CHARS && long.contains('…'), "{long}");
        assert_eq!(shorten("a\u{1b}b"), "a\\u{1b}b");
        assert_eq!(quoted("a\0b"), "\"a\\0b\"");
        assert_eq!(quoted(&"y".repeat(500)).chars().count(), 103);
    }
}
