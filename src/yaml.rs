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

/// Builds the error for a bad key.
pub fn invalid(origin: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file: origin.to_string(), key: key.to_string(), message: message.into() }
}

/// Reads a text file of at most `limit` bytes. Anything but a regular file (a directory, a FIFO
/// that would block, a device that never ends) is refused before it is read.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ConfigError> {
    let file = path.display().to_string();
    let io = |cause| ConfigError::Io { file: file.clone(), cause };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(invalid(&file, "(file)", "not a regular file"));
    }
    if meta.len() > limit {
        return Err(invalid(&file, "(file)", format!("{} bytes, larger than the limit of {limit} bytes", meta.len())));
    }
    let mut text = String::new();
    // The length may grow between the check and the read: read at most one byte past the limit.
    std::fs::File::open(path).map_err(io)?.take(limit + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > limit {
        return Err(invalid(&file, "(file)", format!("larger than the limit of {limit} bytes")));
    }
    Ok(text)
}

/// Deserializes YAML text strictly; `origin` names it in errors, which keep line and column.
pub fn parse<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(origin, e))
}

/// Deserializes an already parsed YAML value (for example a file merged with overrides).
pub fn from_value<T: serde::de::DeserializeOwned>(origin: &str, value: serde_yaml_ng::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(origin, e))
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
