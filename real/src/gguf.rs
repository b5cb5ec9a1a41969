//! GGUF headers (quantized Flux transformers and T5 encoders), read with bounds before candle
//! sees the file.
//!
//! candle's `gguf_file::Content::read` checks lengths against the file, but a crafted header can
//! still make it panic or allocate far more than the file holds: `general.alignment: 0` divides
//! by zero, a shape whose element count overflows panics in `Shape::elem_count` (debug) or wraps
//! (release), an array of a billion one-byte values becomes a billion 32-byte values in memory,
//! and a tensor name listed twice silently replaces the first. [`GgufHeader::inspect`] walks the
//! same header with every count, length and size bounded and overflow-checked, and names the
//! tensor a problem is in; only a file that passes is handed to candle. The limits are far above
//! any published model's and are listed in docs/real-mode.md.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;

use crate::loading::{open_regular, shown_name};
use crate::LoadError;

/// Tensors a GGUF file may declare (Flux's transformer has about 780, T5-XXL's encoder 220).
pub const MAX_TENSORS: u64 = 65_536;
/// Metadata entries a GGUF file may declare.
pub const MAX_METADATA: u64 = 65_536;
/// Bytes of one string (a key, a tensor name, a text value).
pub const MAX_STRING_BYTES: u64 = 1 << 20;
/// Elements of all metadata arrays together (a tokenizer's vocabulary is the largest, about
/// 250,000 tokens and as many merges).
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 22;
/// Nesting of arrays inside arrays.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Bytes of the header (metadata and tensor entries) before the tensors' data.
pub const MAX_HEADER_BYTES: u64 = 256 << 20;
/// Dimensions of one tensor (ggml's limit).
pub const MAX_DIMS: u32 = 4;
/// The largest `general.alignment`.
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// One tensor's entry in a GGUF header.
#[derive(Debug, Clone)]
pub struct GgufTensor {
    /// Stored (quantized) type.
    pub dtype: GgmlDType,
    /// Dimensions as stored (innermost first).
    pub dims: Vec<u64>,
    /// Bytes of data, at its stored type.
    pub bytes: u64,
    /// Where its data starts in the file.
    pub start: u64,
}

/// A checked GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// The file.
    pub path: PathBuf,
    /// Tensors by name.
    pub tensors: BTreeMap<String, GgufTensor>,
}

impl GgufHeader {
    /// Reads and checks the header of `path`: magic and version, counts, every string and
    /// array against the limits and the file's length, every tensor's dimensions, type, size and
    /// data range. Errors name the model, the file and the tensor.
    pub fn inspect(model: &str, path: &Path, published: &'static str) -> Result<GgufHeader, LoadError> {
        let error = |reason: String| LoadError::file(model, path, reason, published);
        let (file, len) = open_regular(path, "a .gguf file").map_err(error)?;
        let mut r = Bounded { inner: BufReader::new(file), pos: 0, len, version: 0 };
        let tensors =
            r.header().map_err(|reason| error(format!("is not a GGUF file: {}", crate::loading::quote(reason))))?;
        Ok(GgufHeader { path: path.into(), tensors })
    }

    /// Bytes of all tensors at their stored types.
    pub fn bytes(&self) -> u64 {
        self.tensors.values().map(|t| t.bytes).sum()
    }

    /// Scans the float tensors (F32, F16, BF16) and the f16 scales of the legacy quantized
    /// blocks (Q4_0 to Q8_1) for NaN and infinities; names the first bad tensor. The k-quants'
    /// scales are packed and not scanned.
    pub fn check_finite(&self, model: &str, published: &'static str) -> Result<(), LoadError> {
        let error = |reason: String| LoadError::file(model, &self.path, reason, published);
        let (mut file, _) = open_regular(&self.path, "a .gguf file").map_err(error)?;
        let mut buf = Vec::new();
        for (name, t) in &self.tensors {
            let (stride, scales) = match t.dtype {
                GgmlDType::F32 => (4, Scan::F32),
                GgmlDType::F16 => (2, Scan::F16),
                GgmlDType::BF16 => (2, Scan::Bf16),
                GgmlDType::Q4_0
                | GgmlDType::Q4_1
                | GgmlDType::Q5_0
                | GgmlDType::Q5_1
                | GgmlDType::Q8_0
                | GgmlDType::Q8_1 => (t.dtype.type_size(), Scan::F16),
                _ => continue,
            };
            // One tensor at a time: the largest (Flux's 3072 × 12288 at Q4_0) is about 21 MB.
            buf.resize(t.bytes as usize, 0);
            file.seek(SeekFrom::Start(t.start))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(|e| error(format!("cannot read tensor {}: {e}", shown_name(name))))?;
            if let Some(block) = buf.chunks_exact(stride).position(|b| scales.non_finite(b)) {
                return Err(error(format!(
                    "tensor {} holds NaN or an infinity (block {block}): the file is damaged, or was saved from a run that diverged",
                    shown_name(name)
                )));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Scan {
    F32,
    F16,
    Bf16,
}

impl Scan {
    /// True when the value at the start of `b` has all exponent bits set (NaN or infinity).
    fn non_finite(self, b: &[u8]) -> bool {
        match self {
            Scan::F32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000,
            Scan::F16 => u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00,
            Scan::Bf16 => u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80,
        }
    }
}

/// The GGML types candle reads, by their number in the file.
fn ggml_dtype(n: u32) -> Option<GgmlDType> {
    Some(match n {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// A reader that knows its position and the file's length, so every length read from the file
/// is checked against what is left before anything is allocated.
struct Bounded {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
    version: u32,
}

type Check<T> = Result<T, String>;

impl Bounded {
    fn bytes<const N: usize>(&mut self) -> Check<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).map_err(|_| format!("it ends inside its header, at byte {}", self.pos))?;
        self.pos += N as u64;
        if self.pos > MAX_HEADER_BYTES {
            return Err(format!("its header runs past {MAX_HEADER_BYTES} bytes"));
        }
        Ok(b)
    }

    fn u32(&mut self) -> Check<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Check<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// A count or length: u32 in version 1, u64 after.
    fn length(&mut self) -> Check<u64> {
        if self.version == 1 {
            Ok(self.u32()? as u64)
        } else {
            self.u64()
        }
    }

    fn skip(&mut self, n: u64) -> Check<()> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(format!("a value of {n} bytes at byte {} runs past the end of the file", self.pos));
        }
        if self.pos + n > MAX_HEADER_BYTES {
            return Err(format!("its header runs past {MAX_HEADER_BYTES} bytes"));
        }
        self.inner.seek_relative(n as i64).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Check<String> {
        let n = self.length()?;
        if n > MAX_STRING_BYTES {
            return Err(format!("{what} is {n} bytes long, above the limit of {MAX_STRING_BYTES}"));
        }
        if n > self.len.saturating_sub(self.pos) {
            return Err(format!("{what} of {n} bytes runs past the end of the file"));
        }
        if self.pos + n > MAX_HEADER_BYTES {
            return Err(format!("its header runs past {MAX_HEADER_BYTES} bytes"));
        }
        let mut v = vec![0u8; n as usize];
        self.inner.read_exact(&mut v).map_err(|e| e.to_string())?;
        self.pos += n;
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    fn header(&mut self) -> Check<BTreeMap<String, GgufTensor>> {
        let magic = self.u32()?;
        if magic != 0x4655_4747 && magic != 0x4747_5546 {
            return Err("it does not start with GGUF".into());
        }
        self.version = self.u32()?;
        if !(1..=3).contains(&self.version) {
            return Err(format!("version {} is not supported (1 to 3)", self.version));
        }
        let tensor_count = self.length()?;
        let metadata_count = self.length()?;
        if tensor_count > MAX_TENSORS {
            return Err(format!("it declares {tensor_count} tensors, above the limit of {MAX_TENSORS}"));
        }
        if metadata_count > MAX_METADATA {
            return Err(format!("it declares {metadata_count} metadata entries, above the limit of {MAX_METADATA}"));
        }
        let mut alignment = 32u64; // GGUF's default, as candle reads it
        let mut array_elements = 0u64;
        for _ in 0..metadata_count {
            let key = self.string("a metadata key")?;
            let kind = self.u32()?;
            let value = self.value(&key, kind, 0, &mut array_elements)?;
            if key == "general.alignment" {
                // candle reads the alignment from these integer types only, and uses the default
                // otherwise; it divides by it.
                if let Some(a) = value {
                    if a == 0 || a > MAX_ALIGNMENT {
                        return Err(format!("general.alignment is {a}; expected 1 to {MAX_ALIGNMENT}"));
                    }
                    alignment = a;
                }
            }
        }
        let mut tensors = BTreeMap::new();
        let mut entries = Vec::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = self.string("a tensor name")?;
            let entry = self.tensor(&name).map_err(|reason| format!("tensor {}: {reason}", shown_name(&name)))?;
            if tensors.contains_key(&name) {
                return Err(format!("tensor {} is listed twice", shown_name(&name)));
            }
            entries.push(name.clone());
            tensors.insert(name, entry);
        }
        let data_start = self.pos.div_ceil(alignment) * alignment;
        for name in entries {
            let t = tensors.get_mut(&name).expect("inserted above");
            let start = data_start.checked_add(t.start);
            match start.and_then(|s| s.checked_add(t.bytes)) {
                Some(end) if end <= self.len => t.start += data_start,
                _ => {
                    return Err(format!(
                        "tensor {}: its {} bytes at offset {} run past the end of the file ({} bytes)",
                        shown_name(&name),
                        t.bytes,
                        t.start,
                        self.len
                    ))
                }
            }
        }
        Ok(tensors)
    }

    /// One tensor entry after its name; `start` is still relative to the data section.
    fn tensor(&mut self, _name: &str) -> Check<GgufTensor> {
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            return Err(format!("it has {n_dims} dimensions; at most {MAX_DIMS}"));
        }
        let dims: Vec<u64> = (0..n_dims)
            .map(|_| if self.version == 1 { self.u32().map(u64::from) } else { self.u64() })
            .collect::<Check<_>>()?;
        let kind = self.u32()?;
        let dtype = ggml_dtype(kind).ok_or_else(|| format!("its type {kind} is not a GGML type candle reads"))?;
        let offset = self.u64()?;
        let elements = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|n| usize::try_from(*n).is_ok())
            .ok_or_else(|| format!("its shape {dims:?} is too large (its element count overflows)"))?;
        let block = dtype.block_size() as u64;
        if elements % block != 0 {
            return Err(format!("its {elements} elements are not a whole number of {dtype:?} blocks of {block}"));
        }
        let bytes = (elements / block)
            .checked_mul(dtype.type_size() as u64)
            .ok_or_else(|| format!("its shape {dims:?} is too large (its size overflows)"))?;
        Ok(GgufTensor { dtype, dims, bytes, start: offset })
    }

    /// Skips one metadata value of type `kind`, checking its lengths; returns it when it is an
    /// integer of a type candle reads `general.alignment` from.
    fn value(&mut self, key: &str, kind: u32, depth: usize, array_elements: &mut u64) -> Check<Option<u64>> {
        let shown = shown_name(key);
        let fixed = |kind| match kind {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match kind {
            0 => Ok(Some(self.bytes::<1>()?[0] as u64)),
            1 => Ok(u64::try_from(self.bytes::<1>()?[0] as i8).ok()),
            2 => Ok(Some(u16::from_le_bytes(self.bytes()?) as u64)),
            3 => Ok(u64::try_from(i16::from_le_bytes(self.bytes()?)).ok()),
            4 => Ok(Some(self.u32()? as u64)),
            5 => Ok(u64::try_from(i32::from_le_bytes(self.bytes()?)).ok()),
            8 => self.string(&format!("metadata {shown}")).map(|_| None),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!("metadata {shown}: arrays nest deeper than {MAX_ARRAY_DEPTH}"));
                }
                let inner = self.u32()?;
                let n = self.length()?;
                *array_elements = array_elements.saturating_add(n);
                if *array_elements > MAX_ARRAY_ELEMENTS {
                    return Err(format!(
                        "metadata {shown}: its arrays hold more than {MAX_ARRAY_ELEMENTS} elements in all"
                    ));
                }
                match fixed(inner) {
                    Some(size) => self.skip(n * size)?,
                    None => {
                        for _ in 0..n {
                            self.value(key, inner, depth + 1, array_elements)?;
                        }
                    }
                }
                Ok(None)
            }
            _ => match fixed(kind) {
                Some(size) => self.skip(size).map(|_| None),
                None => Err(format!("metadata {shown} has an unknown value type {kind}")),
            },
        }
    }
}
