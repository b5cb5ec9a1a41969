//! Weight files: what a safetensors file holds, read from its header before anything is loaded,
//! so a missing or malformed file is a clear start-up error and the VRAM budget is known up front.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};

use crate::config::ModelDtype;

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
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Stored dtype.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Elements in the tensor (the header was checked, so the product cannot overflow).
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
    /// Reads and checks the header of `path` with the `safetensors` crate: the header's JSON, every
    /// tensor's data range against its shape and dtype (overflow-checked), and the data filling
    /// the file exactly. The data itself is mapped, not read.
    pub fn inspect(model: &str, path: &Path, published: &'static str) -> Result<WeightsFile, WeightsError> {
        let unreadable = |cause| WeightsError::Unreadable { model: model.into(), path: path.into(), cause, published };
        let malformed =
            |reason: String| WeightsError::Malformed { model: model.into(), path: path.into(), reason, published };
        let file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(malformed("it is not a regular file".into()));
        }
        let file_bytes = meta.len();
        if file_bytes < 8 {
            return Err(malformed(format!("only {file_bytes} bytes long")));
        }
        // SAFETY of the mmap: read-only, and only the header is parsed while it is mapped; a file
        // changed underneath gives a parse error at worst. candle maps the same files to load them.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
        let (_, metadata) = SafeTensors::read_metadata(&map).map_err(|e| malformed(describe(e)))?;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, TensorInfo { dtype: info.dtype, shape: info.shape.clone() }))
            .collect();
        Ok(WeightsFile { path: path.into(), tensors, file_bytes })
    }

    /// Bytes the tensors take once held in `dtype` on the device (float tensors are cast to it).
    pub fn resident_bytes(&self, dtype: ModelDtype) -> u64 {
        self.tensors
            .values()
            .map(|t| {
                let bits = if is_float(t.dtype) { dtype.size() * 8 } else { t.dtype.bitsize() };
                (t.numel() as u64 * bits as u64).div_ceil(8)
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

/// A `safetensors` error in the words of someone who handed us the file.
fn describe(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "its header length does not fit the file".into()
        }
        SafeTensorError::HeaderTooLarge => "it declares a header over 100 MB".into(),
        SafeTensorError::InvalidHeader(_) => "its header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderDeserialization(e) => format!("its header is not a safetensors header: {e}"),
        SafeTensorError::InvalidOffset(name) => format!("tensor {name}: its data range is out of order or overlaps"),
        SafeTensorError::TensorInvalidInfo => "a tensor's data range does not match its shape and dtype".into(),
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large (its size overflows)".into(),
        SafeTensorError::MetadataIncompleteBuffer => "the tensors' data does not fill the file exactly".into(),
        other => other.to_string(),
    }
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
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
        assert!(err.contains("a tensor's data range does not match its shape and dtype"), "{err}");
        let header = r#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#;
        let err = WeightsFile::inspect("m", &write_file(dir.path(), header, 8), "").unwrap_err().to_string();
        assert!(err.contains("a tensor's shape is too large (its size overflows)"), "{err}");
        let err = WeightsFile::inspect("m", dir.path(), "").unwrap_err().to_string();
        assert!(err.contains("is not a safetensors file: it is not a regular file"), "{err}");
        let err = WeightsFile::inspect("m", &dir.path().join("absent.safetensors"), "").unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("absent.safetensors"), "{err}");
    }
}
