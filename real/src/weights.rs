//! Weight files: what a safetensors file holds, read from its header before anything is loaded,
//! so a missing or malformed file is a clear start-up error and the VRAM budget is known up front.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::ModelDtype;
use serde::Deserialize;

/// Largest header a safetensors file may declare (the format's own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Why a model's files cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file is missing or unreadable.
    #[error("{model}: cannot read {path}: {cause}. {published}")]
    Unreadable {
        /// Which model (config key).
        model: String,
        /// The file.
        path: PathBuf,
        /// The I/O error (shown in the message, so not chained as a source too).
        cause: std::io::Error,
        /// Where such weights are published.
        published: &'static str,
    },
    /// The file is not a safetensors file.
    #[error("{model}: {path} is not a safetensors file: {reason}. {published}")]
    Malformed {
        /// Which model.
        model: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// Where such weights are published.
        published: &'static str,
    },
    /// Tensors the architecture needs are absent.
    #[error("{model}: {path} lacks {} tensor(s) the architecture needs, e.g. {}. {published}", missing.len(), missing.iter().take(3).cloned().collect::<Vec<_>>().join(", "))]
    MissingTensors {
        /// Which model.
        model: String,
        /// The file.
        path: PathBuf,
        /// The names that were expected but not found.
        missing: Vec<String>,
        /// Where such weights are published.
        published: &'static str,
    },
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TensorInfo {
    /// Stored dtype, e.g. `F32`, `F16`, `BF16`.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Byte range in the data section.
    pub data_offsets: [u64; 2],
}

impl TensorInfo {
    /// Elements in the tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The header of a safetensors file: every tensor's name, dtype and shape.
#[derive(Debug, Clone)]
pub struct WeightsFile {
    /// The file.
    pub path: PathBuf,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The file's size in bytes.
    pub file_bytes: u64,
}

impl WeightsFile {
    /// Reads and checks the header of `path` (the data is not read).
    pub fn inspect(model: &str, path: &Path, published: &'static str) -> Result<WeightsFile, WeightsError> {
        let unreadable = |cause| WeightsError::Unreadable { model: model.into(), path: path.into(), cause, published };
        let malformed =
            |reason: String| WeightsError::Malformed { model: model.into(), path: path.into(), reason, published };
        let mut file = File::open(path).map_err(unreadable)?;
        let file_bytes = file.metadata().map_err(unreadable)?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|_| malformed(format!("only {file_bytes} bytes long")))?;
        let header_bytes = u64::from_le_bytes(len);
        if header_bytes > MAX_HEADER_BYTES || 8 + header_bytes > file_bytes {
            return Err(malformed(format!("header length {header_bytes} does not fit a {file_bytes}-byte file")));
        }
        let mut header = vec![0u8; header_bytes as usize];
        file.read_exact(&mut header).map_err(unreadable)?;
        let mut raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| malformed(format!("header is not JSON: {e}")))?;
        raw.remove("__metadata__");
        let data_bytes = file_bytes - 8 - header_bytes;
        let mut tensors = BTreeMap::new();
        for (name, value) in raw {
            let info: TensorInfo =
                serde_json::from_value(value).map_err(|e| malformed(format!("tensor {name}: {e}")))?;
            let bytes = info.numel() as u64
                * dtype_bytes(&info.dtype)
                    .ok_or_else(|| malformed(format!("tensor {name}: unknown dtype {}", info.dtype)))?;
            if info.data_offsets[1] - info.data_offsets[0] != bytes || info.data_offsets[1] > data_bytes {
                return Err(malformed(format!("tensor {name}: its data range does not match its shape and dtype")));
            }
            tensors.insert(name, info);
        }
        Ok(WeightsFile { path: path.into(), tensors, file_bytes })
    }

    /// Bytes the tensors take once held in `dtype` on the device (float tensors are cast to it).
    pub fn resident_bytes(&self, dtype: ModelDtype) -> u64 {
        self.tensors
            .values()
            .map(|t| {
                let size = if is_float(&t.dtype) { dtype.size() as u64 } else { dtype_bytes(&t.dtype).unwrap_or(1) };
                t.numel() as u64 * size
            })
            .sum()
    }

    /// Checks that every name in `expected` is present.
    pub fn require(&self, model: &str, expected: &[String], published: &'static str) -> Result<(), WeightsError> {
        let missing: Vec<String> = expected.iter().filter(|n| !self.tensors.contains_key(*n)).cloned().collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(WeightsError::MissingTensors { model: model.into(), path: self.path.clone(), missing, published })
        }
    }
}

fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

fn is_float(dtype: &str) -> bool {
    matches!(dtype, "F64" | "F32" | "F16" | "BF16")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, header: &str, data: usize) -> PathBuf {
        let path = dir.join("w.safetensors");
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn header_is_read_and_sizes_follow_the_resident_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"I64","shape":[2],"data_offsets":[24,40]}}"#;
        let w = WeightsFile::inspect("m", &write_file(dir.path(), header, 40), "see docs").unwrap();
        assert_eq!(w.tensors.len(), 2);
        assert_eq!(w.resident_bytes(ModelDtype::F32), 24 + 16);
        assert_eq!(w.resident_bytes(ModelDtype::F16), 12 + 16);
        let err = w.require("m", &["a".into(), "c".into()], "see docs").unwrap_err().to_string();
        assert!(err.contains("lacks 1 tensor(s) the architecture needs, e.g. c"), "{err}");
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.safetensors");
        std::fs::write(&path, b"abc").unwrap();
        let err = WeightsFile::inspect("clip_b32", &path, "Published at X.").unwrap_err().to_string();
        assert!(
            err.starts_with("clip_b32: ")
                && err.contains("is not a safetensors file: only 3 bytes long. Published at X."),
            "{err}"
        );
        let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#;
        let err = WeightsFile::inspect("m", &write_file(dir.path(), header, 8), "").unwrap_err().to_string();
        assert!(err.contains("tensor a: its data range does not match"), "{err}");
        let err = WeightsFile::inspect("m", &dir.path().join("absent.safetensors"), "").unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("absent.safetensors"), "{err}");
    }
}
