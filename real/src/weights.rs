//! Weight files: what a safetensors file holds, read from its header before anything is loaded,
//! so a missing or malformed file is a clear start-up error and the VRAM budget is known up front.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};

use crate::config::ModelDtype;
use crate::loading::{open_regular, shown_name};

/// Why a model's files cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file is missing, unreadable, or not a regular file.
    #[error("{model}: {path}: {reason}. {published}")]
    Unreadable {
        /// Which model (config key).
        model: String,
        /// The file.
        path: PathBuf,
        /// What is wrong (the I/O error, or what the path is instead of a file).
        reason: String,
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
    /// The shards of one model do not fit together: a file listed twice, or a tensor in two.
    #[error("{model}: {reason}. {published}")]
    Shards {
        /// Which model.
        model: String,
        /// What is wrong, naming the files.
        reason: String,
        /// Where such weights are published.
        published: &'static str,
    },
    /// A tensor holds NaN or an infinity.
    #[error("{model}: {path}: tensor {tensor} holds {value} at element {index}: the file is damaged, or was saved from a run that diverged. {published}")]
    NonFinite {
        /// Which model.
        model: String,
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The first bad element's index.
        index: usize,
        /// `NaN` or `an infinity`.
        value: &'static str,
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
    /// Its data's byte range, relative to the end of the header.
    pub data_offsets: (usize, usize),
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
    /// Where the tensors' data starts: the 8-byte length and the header before it.
    pub data_start: u64,
}

impl WeightsFile {
    /// Reads and checks the header of `path` with the `safetensors` crate: the header's JSON, every
    /// tensor's data range against its shape and dtype (overflow-checked), and the data filling
    /// the file exactly. The data itself is mapped, not read. Before the crate's checks, the
    /// header is read once more to name the tensor a problem is in (the crate does not always).
    pub fn inspect(model: &str, path: &Path, published: &'static str) -> Result<WeightsFile, WeightsError> {
        let unreadable =
            |reason: String| WeightsError::Unreadable { model: model.into(), path: path.into(), reason, published };
        // Quoted: a hostile header's tensor names may be huge or hold control characters.
        let malformed = |reason: String| WeightsError::Malformed {
            model: model.into(),
            path: path.into(),
            reason: crate::loading::quote(reason),
            published,
        };
        let (file, file_bytes) = open_regular(path, "a .safetensors file").map_err(unreadable)?;
        if file_bytes < 8 {
            return Err(malformed(format!("only {file_bytes} bytes long")));
        }
        // SAFETY of the mmap: read-only, and only the header is parsed while it is mapped; a file
        // changed underneath gives a parse error at worst. candle maps the same files to load them.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| unreadable(format!("cannot map: {e}")))?;
        if let Some(reason) = named_header_problem(&map) {
            return Err(malformed(reason));
        }
        let (header_len, metadata) = SafeTensors::read_metadata(&map).map_err(|e| malformed(describe(e)))?;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let tensor =
                    TensorInfo { dtype: info.dtype, shape: info.shape.clone(), data_offsets: info.data_offsets };
                (name, tensor)
            })
            .collect();
        Ok(WeightsFile { path: path.into(), tensors, file_bytes, data_start: 8 + header_len as u64 })
    }

    /// [`WeightsFile::inspect`] for the shards of one model, checked together: the same file
    /// listed twice (it would be counted twice in the VRAM budget) and a tensor name found in two
    /// shards are refused.
    pub fn inspect_shards(
        model: &str,
        paths: &[&Path],
        published: &'static str,
    ) -> Result<Vec<WeightsFile>, WeightsError> {
        let shards_error = |reason: String| WeightsError::Shards { model: model.into(), reason, published };
        let mut files: Vec<WeightsFile> = Vec::with_capacity(paths.len());
        let mut seen: Vec<PathBuf> = Vec::with_capacity(paths.len());
        for path in paths {
            let file = WeightsFile::inspect(model, path, published)?;
            // The file exists (inspect opened it), so it has a canonical path.
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if let Some(i) = seen.iter().position(|p| *p == canonical) {
                return Err(shards_error(format!(
                    "the weights file {} is listed twice (as {} and {})",
                    canonical.display(),
                    paths[i].display(),
                    path.display()
                )));
            }
            for earlier in &files {
                if let Some(name) = file.tensors.keys().find(|n| earlier.tensors.contains_key(*n)) {
                    return Err(shards_error(format!(
                        "tensor {} is in two shards, {} and {}",
                        shown_name(name),
                        earlier.path.display(),
                        path.display()
                    )));
                }
            }
            seen.push(canonical);
            files.push(file);
        }
        Ok(files)
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

    /// Scans every float tensor's data for NaN and infinities, in parallel over tensors, and
    /// names the first bad tensor. Reads the whole file once (through the page cache the load
    /// then reuses).
    pub fn check_finite(&self, model: &str, published: &'static str) -> Result<(), WeightsError> {
        let unreadable = |reason: String| WeightsError::Unreadable {
            model: model.into(),
            path: self.path.clone(),
            reason,
            published,
        };
        let (file, len) = open_regular(&self.path, "a .safetensors file").map_err(unreadable)?;
        if len != self.file_bytes {
            return Err(unreadable("changed while it was being loaded".into()));
        }
        // SAFETY of the mmap: read-only; a file changed underneath gives wrong values at worst,
        // which the length check above and candle's own load make unlikely to go unnoticed.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| unreadable(format!("cannot map: {e}")))?;
        let data = &map[self.data_start as usize..];
        let bad = self.tensors.par_iter().find_map_first(|(name, t)| {
            let bytes = data.get(t.data_offsets.0..t.data_offsets.1)?;
            first_non_finite(t.dtype, bytes).map(|(index, value)| (name.clone(), index, value))
        });
        match bad {
            None => Ok(()),
            Some((tensor, index, value)) => Err(WeightsError::NonFinite {
                model: model.into(),
                path: self.path.clone(),
                tensor: shown_name(&tensor),
                index,
                value,
                published,
            }),
        }
    }
}

/// The first NaN or infinity among `bytes` read as `dtype` (little-endian), with its index.
fn first_non_finite(dtype: Dtype, bytes: &[u8]) -> Option<(usize, &'static str)> {
    // IEEE formats: all exponent bits set is an infinity (mantissa zero) or NaN.
    fn scan<const N: usize>(bytes: &[u8], exponent: u64, mantissa: u64) -> Option<(usize, &'static str)> {
        bytes.chunks_exact(N).position(|b| bits(b) & exponent == exponent).map(|i| {
            let v = bits(&bytes[i * N..(i + 1) * N]);
            (i, if v & mantissa == 0 { "an infinity" } else { "NaN" })
        })
    }
    fn bits(b: &[u8]) -> u64 {
        b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64)
    }
    match dtype {
        Dtype::F64 => scan::<8>(bytes, 0x7ff0_0000_0000_0000, 0x000f_ffff_ffff_ffff),
        Dtype::F32 => scan::<4>(bytes, 0x7f80_0000, 0x007f_ffff),
        Dtype::F16 => scan::<2>(bytes, 0x7c00, 0x03ff),
        Dtype::BF16 => scan::<2>(bytes, 0x7f80, 0x007f),
        Dtype::F8_E5M2 => scan::<1>(bytes, 0x7c, 0x03),
        // E4M3 has no infinity; its only NaN is S.1111.111.
        Dtype::F8_E4M3 => scan::<1>(bytes, 0x7f, 0x7f),
        _ => None,
    }
}

/// Reads the header's entries in order, keeping repeated names (the `safetensors` crate reads
/// them into a map, where a repeated name silently replaces the first).
struct HeaderEntries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for HeaderEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = HeaderEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(HeaderEntries(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A problem in a safetensors header that names its tensor: a name listed twice, a shape whose
/// size overflows, a dtype whose size does not match the tensor's data range. `None` when the
/// header cannot be read this way (the `safetensors` crate then says why) or has none of these.
fn named_header_problem(file: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
    if len > 100_000_000 {
        return None; // refused by the crate
    }
    let header = std::str::from_utf8(file.get(8..8 + len as usize)?).ok()?;
    let HeaderEntries(entries) = serde_json::from_str(header).ok()?;
    let mut names = std::collections::HashSet::with_capacity(entries.len());
    for (name, value) in &entries {
        if !names.insert(name.as_str()) {
            return Some(format!("tensor {} is listed twice in its header", shown_name(name)));
        }
        if name == "__metadata__" {
            continue;
        }
        let dtype: Dtype = serde_json::from_value(value.get("dtype")?.clone()).ok()?;
        let shape: Vec<u64> = serde_json::from_value(value.get("shape")?.clone()).ok()?;
        let [start, end]: [u64; 2] = serde_json::from_value(value.get("data_offsets")?.clone()).ok()?;
        let bits =
            shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).and_then(|n| n.checked_mul(dtype.bitsize() as u64));
        let Some(bits) = bits.filter(|b| usize::try_from(*b).is_ok()) else {
            return Some(format!("tensor {}: its shape {shape:?} is too large (its size overflows)", shown_name(name)));
        };
        let held = end.checked_sub(start)?;
        if bits % 8 != 0 || bits / 8 != held {
            return Some(format!(
                "tensor {}: dtype {dtype} and shape {shape:?} take {} bytes, but its data range [{start}, {end}] holds {held}",
                shown_name(name),
                bits.div_ceil(8)
            ));
        }
    }
    None
}

/// A `safetensors` error in the words of someone who handed us the file.
fn describe(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "its header length does not fit the file".into()
        }
        SafeTensorError::HeaderTooLarge => "it declares a header over 100 MB".into(),
        SafeTensorError::InvalidHeader(_) => "its header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderDeserialization(e) => {
            format!("its header is not a safetensors header: {}", crate::loading::quote(e))
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor {}: its data range is out of order or overlaps", shown_name(&name))
        }
        SafeTensorError::TensorInvalidInfo => "a tensor's data range does not match its shape and dtype".into(),
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large (its size overflows)".into(),
        SafeTensorError::MetadataIncompleteBuffer => "the tensors' data does not fill the file exactly".into(),
        other => crate::loading::quote(other),
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
        assert!(
            err.contains("tensor a: dtype F32 and shape [4] take 16 bytes, but its data range [0, 8] holds 8"),
            "{err}"
        );
        let header = r#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#;
        let err = WeightsFile::inspect("m", &write_file(dir.path(), header, 8), "").unwrap_err().to_string();
        assert!(
            err.contains("tensor a: its shape [4611686018427387904, 4] is too large (its size overflows)"),
            "{err}"
        );
        let err = WeightsFile::inspect("m", dir.path(), "").unwrap_err().to_string();
        assert!(err.contains("is a directory, expected a .safetensors file"), "{err}");
        let err = WeightsFile::inspect("m", &dir.path().join("absent.safetensors"), "").unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("absent.safetensors"), "{err}");
    }
}
