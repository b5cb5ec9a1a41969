//! Entry points of real mode's fuzz targets (`fuzz/`), also replayed on the committed corpus by
//! `tests/fuzz_corpus.rs`: arbitrary bytes in, no panic, no huge allocation, every error message
//! checked by [`vortex::fuzzing::check_message`].
//!
//! The header readers take a path (they check the file's kind before opening it), so the bytes
//! are written to a scratch file first, one per thread.

use std::path::PathBuf;

use vortex::fuzzing::check_message;

use crate::config::Config;
use crate::gguf::GgufHeader;
use crate::weights::WeightsFile;

/// Real mode's config parser (every section, the orchestration one included): any text.
pub fn config(data: &[u8]) {
    vortex::fuzzing::config(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::from_yaml_str("config.yaml", text) {
        vortex::fuzzing::check_config_error(&e);
    }
}

/// The safetensors header reader, then the NaN scan of a file it accepts.
pub fn safetensors(data: &[u8]) {
    let path = scratch(data, "safetensors");
    match WeightsFile::inspect("fuzz", &path, "nowhere") {
        Ok(file) => {
            if let Err(e) = file.check_finite("fuzz", "nowhere") {
                check_message(&e.to_string());
            }
        }
        Err(e) => check_message(&e.to_string()),
    }
}

/// The GGUF header reader, then the NaN scan of a file it accepts.
pub fn gguf(data: &[u8]) {
    let path = scratch(data, "gguf");
    match GgufHeader::inspect("fuzz", &path, "nowhere") {
        Ok(header) => {
            if let Err(e) = header.check_finite("fuzz", "nowhere") {
                check_message(&e.to_string());
            }
        }
        Err(e) => check_message(&e.to_string()),
    }
}

/// Writes `data` to this thread's scratch file with extension `ext` and returns its path.
fn scratch(data: &[u8], ext: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = std::env::temp_dir().join(format!("vortex-fuzz-{}-{thread}.{ext}", std::process::id()));
    std::fs::write(&path, data).expect("the scratch file of a fuzz input can be written");
    path
}
