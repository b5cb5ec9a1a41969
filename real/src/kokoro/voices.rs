//! Kokoro voice packs: one style table per voice, `[510, 256]` float32 (row n − 1 is the style
//! for an utterance of n phonemes: the first 128 values drive the decoder, the last 128 the
//! prosody predictor).
//!
//! Four published layouts are read, from a folder of voices or from one archive:
//! - `NAME.bin`: raw little-endian float32, 510 × 256 (npm `kokoro-js`'s `voices/`);
//! - `NAME.npy`: a NumPy array `[510, 1, 256]` or `[510, 256]`, `<f4`;
//! - `NAME.pt`: a PyTorch-saved tensor of those shapes (Kokoro's Hugging Face `voices/`);
//! - `voices-v1.0.bin` (any name, a file rather than a folder): a NumPy `.npz` archive of
//!   `NAME.npy` entries (kokoro-onnx's).
//!
//! Every file is bounded before it is read: a voice is at most [`MAX_VOICE_BYTES`], an archive
//! at most [`MAX_VOICES`] voices and [`MAX_ARCHIVE_BYTES`], and a header that claims another
//! shape or dtype is refused before any data is allocated.
//!
//! ```no_run
//! use vortex_real::kokoro::voices::Voices;
//! let voices = Voices::open(std::path::Path::new("/models/kokoro/voices"))?;
//! let style = voices.style("af_heart", 42)?; // the style for 42 phonemes, [256] values
//! assert_eq!(style.len(), 256);
//! # Ok::<(), vortex_real::kokoro::voices::VoiceError>(())
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Rows of a voice pack: one per utterance length, 1 to 510 phonemes.
pub const ROWS: usize = 510;
/// Values per row: 128 for the decoder, then 128 for the prosody predictor.
pub const STYLE_DIM: usize = 256;
/// Largest voice file read: the data (510 KiB) plus generous room for headers.
pub const MAX_VOICE_BYTES: u64 = 1 << 20;
/// Most voices one folder or archive may hold.
pub const MAX_VOICES: usize = 1024;
/// Largest voice archive read (54 voices take 28 MB).
pub const MAX_ARCHIVE_BYTES: u64 = 512 << 20;
/// Largest pickle (a `.pt` file's `data.pkl`) read; a saved tensor's is a few hundred bytes.
const MAX_PICKLE_BYTES: u64 = 64 << 10;

const VALUES: usize = ROWS * STYLE_DIM;

/// Why voices could not be read, or a voice is not there.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// A voice file or archive is unreadable or malformed.
    #[error("voice file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The folder or archive holds no voice.
    #[error("{}: no voices found (expected NAME.bin, NAME.npy or NAME.pt files, or a .npz archive such as voices-v1.0.bin)", path.display())]
    Empty {
        /// The folder or archive.
        path: PathBuf,
    },
    /// A recipe asked for a voice that is not loaded.
    #[error("unknown voice \"{name}\"; available: {available}")]
    Unknown {
        /// The requested name (quoted and shortened).
        name: String,
        /// Some of the loaded names.
        available: String,
    },
}

/// Loaded voice packs by name, each `ROWS × STYLE_DIM` values.
#[derive(Debug, Clone, Default)]
pub struct Voices {
    packs: BTreeMap<String, Vec<f32>>,
}

impl Voices {
    /// Reads every voice of a folder (`NAME.bin`, `NAME.npy`, `NAME.pt`) or of an `.npz`
    /// archive file. Other files in a folder are ignored; a voice file that cannot be read is
    /// an error naming it.
    pub fn open(path: &Path) -> Result<Voices, VoiceError> {
        let file_err = |reason: String| VoiceError::File { path: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let mut packs = BTreeMap::new();
        if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| file_err(format!("cannot list the folder: {e}")))?;
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                let (Some(stem), Some(ext)) = (file.file_stem().and_then(|s| s.to_str()), file.extension()) else {
                    continue;
                };
                let values = match ext.to_str() {
                    Some("bin") => read_raw(&file)?,
                    Some("npy") => read_npy_file(&file)?,
                    Some("pt") => read_pt(&file)?,
                    _ => continue,
                };
                if packs.len() == MAX_VOICES {
                    return Err(file_err(format!("more than {MAX_VOICES} voices")));
                }
                packs.insert(stem.to_string(), values);
            }
        } else {
            packs = read_npz(path)?;
        }
        if packs.is_empty() {
            return Err(VoiceError::Empty { path: path.to_path_buf() });
        }
        Ok(Voices { packs })
    }

    /// A set of voices from tables already in memory (tests, conversions).
    pub fn from_tables(tables: impl IntoIterator<Item = (String, Vec<f32>)>) -> Voices {
        let packs =
            tables.into_iter().inspect(|(_, v)| assert_eq!(v.len(), VALUES, "a voice has 510 × 256 values")).collect();
        Voices { packs }
    }

    /// The loaded voice names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.packs.keys().map(String::as_str)
    }

    /// True when `name` is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.packs.contains_key(name)
    }

    /// The style row for an utterance of `phonemes` phonemes (row `phonemes − 1`, clamped to
    /// the table, as Kokoro's pipeline indexes it): `STYLE_DIM` values.
    pub fn style(&self, name: &str, phonemes: usize) -> Result<&[f32], VoiceError> {
        let pack = self.packs.get(name).ok_or_else(|| self.unknown(name))?;
        let row = phonemes.clamp(1, ROWS) - 1;
        Ok(&pack[row * STYLE_DIM..(row + 1) * STYLE_DIM])
    }

    /// `Ok` when `name` is loaded, else the error a recipe gets.
    pub fn check(&self, name: &str) -> Result<(), VoiceError> {
        if self.contains(name) {
            Ok(())
        } else {
            Err(self.unknown(name))
        }
    }

    fn unknown(&self, name: &str) -> VoiceError {
        const SHOWN: usize = 12;
        let mut available: Vec<&str> = self.names().take(SHOWN).collect();
        if self.packs.len() > SHOWN {
            available.push("...");
        }
        VoiceError::Unknown { name: crate::loading::quote(name), available: available.join(", ") }
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> VoiceError {
    VoiceError::File { path: path.to_path_buf(), reason: reason.into() }
}

/// Opens a regular file of at most `limit` bytes.
fn open_bounded(path: &Path, limit: u64) -> Result<(std::fs::File, u64), VoiceError> {
    let (file, len) = crate::loading::open_regular(path, "a voice file").map_err(|e| bad(path, e))?;
    if len > limit {
        return Err(bad(path, format!("{len} bytes, more than the {limit} a voice file may have")));
    }
    Ok((file, len))
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Checks a table's values: every one finite.
fn finite(path: &Path, what: &str, values: Vec<f32>) -> Result<Vec<f32>, VoiceError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(bad(path, format!("{what}: value {i} is {}", values[i]))),
        None => Ok(values),
    }
}

fn read_raw(path: &Path) -> Result<Vec<f32>, VoiceError> {
    let (mut file, len) = open_bounded(path, MAX_VOICE_BYTES)?;
    if len != (VALUES * 4) as u64 {
        return Err(bad(path, format!("{len} bytes; a raw voice is 510 × 256 float32 = {} bytes", VALUES * 4)));
    }
    let mut bytes = vec![0u8; VALUES * 4];
    file.read_exact(&mut bytes).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    finite(path, "voice", floats(&bytes))
}

fn read_npy_file(path: &Path) -> Result<Vec<f32>, VoiceError> {
    let (file, _) = open_bounded(path, MAX_VOICE_BYTES)?;
    read_npy(path, "voice", &mut file.take(MAX_VOICE_BYTES))
}

/// Reads one `.npy` array of shape `[510, 1, 256]` or `[510, 256]`, little-endian float32, C
/// order; anything else is refused from the header alone.
fn read_npy(path: &Path, what: &str, r: &mut impl Read) -> Result<Vec<f32>, VoiceError> {
    let err = |reason: String| bad(path, format!("{what}: {reason}"));
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| err(format!("not a NumPy array: {e}")))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(err("not a NumPy array (no \\x93NUMPY magic)".into()));
    }
    let header_len = if magic[6] == 1 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).map_err(|e| err(e.to_string()))?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(|e| err(e.to_string()))?;
        u32::from_le_bytes(b) as usize
    };
    if header_len > 4096 {
        return Err(err(format!("a NumPy header of {header_len} bytes; a voice's is under 128")));
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(|e| err(e.to_string()))?;
    let header: String = String::from_utf8_lossy(&header).chars().filter(|c| !c.is_whitespace()).collect();
    if !header.contains("'descr':'<f4'") {
        return Err(err(format!(
            "dtype is not little-endian float32 ('<f4'): header {}",
            crate::loading::quote(&header)
        )));
    }
    if !header.contains("'fortran_order':False") {
        return Err(err("Fortran-ordered arrays are not read".into()));
    }
    if !(header.contains("'shape':(510,1,256)") || header.contains("'shape':(510,256)")) {
        return Err(err(format!(
            "shape is not (510, 1, 256) or (510, 256): header {}",
            crate::loading::quote(&header)
        )));
    }
    let mut bytes = vec![0u8; VALUES * 4];
    r.read_exact(&mut bytes).map_err(|e| err(format!("data ends early: {e}")))?;
    finite(path, what, floats(&bytes))
}

fn read_npz(path: &Path) -> Result<BTreeMap<String, Vec<f32>>, VoiceError> {
    let (file, _) = open_bounded(path, MAX_ARCHIVE_BYTES)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, format!("neither a voices folder nor a .npz archive: {e}")))?;
    if zip.len() > MAX_VOICES {
        return Err(bad(path, format!("{} entries, more than the {MAX_VOICES} voices an archive may hold", zip.len())));
    }
    let mut packs = BTreeMap::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| bad(path, format!("entry {i}: {e}")))?;
        let name = entry.name().map_err(|e| bad(path, format!("entry {i}: {e}")))?.into_owned();
        let Some(stem) = name.strip_suffix(".npy") else { continue };
        let what = format!("entry {}", crate::loading::quote(&name));
        packs.insert(stem.to_string(), read_npy(path, &what, &mut entry.take(MAX_VOICE_BYTES))?);
    }
    Ok(packs)
}

/// Reads a `torch.save`d tensor: a zip whose `*/data.pkl` rebuilds one tensor from a storage
/// `*/data/KEY`. The pickle is read with candle's reader, bounded, and the storage is checked
/// against the expected size before it is read.
fn read_pt(path: &Path) -> Result<Vec<f32>, VoiceError> {
    use candle_core::pickle::{Object, Stack};
    let (file, _) = open_bounded(path, MAX_VOICE_BYTES)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, format!("not a PyTorch file (zip): {e}")))?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i)?.ok().map(|n| n.into_owned()))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| bad(path, "not a PyTorch file: no data.pkl"))?;
    let dir = Path::new(pkl.strip_suffix(".pkl").expect("ends with .pkl")).to_path_buf();
    let info = {
        let entry = zip.by_name(&pkl).map_err(|e| bad(path, e.to_string()))?;
        let mut reader = std::io::BufReader::new(entry.take(MAX_PICKLE_BYTES));
        let mut stack = Stack::empty();
        // candle's pickle reader was written for trusted checkpoints: contain a panic as an error.
        let obj = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stack.read_loop(&mut reader)?;
            stack.finalize()
        }))
        .map_err(|_| bad(path, "malformed pickle"))?
        .map_err(|e| bad(path, format!("malformed pickle: {e}")))?;
        obj.into_tensor_info(Object::Unicode("voice".into()), &dir)
            .map_err(|e| bad(path, format!("not a saved tensor: {e}")))?
            .ok_or_else(|| bad(path, "not a saved tensor"))?
    };
    let dims = info.layout.dims().to_vec();
    if info.dtype != candle_core::DType::F32 || !(dims == [ROWS, 1, STYLE_DIM] || dims == [ROWS, STYLE_DIM]) {
        return Err(bad(path, format!("a {:?} tensor of shape {dims:?}; a voice is f32 [510, 1, 256]", info.dtype)));
    }
    if !info.layout.is_contiguous() || info.layout.start_offset() != 0 {
        return Err(bad(path, "the tensor is a strided view; save a contiguous voice (tensor.contiguous())"));
    }
    let mut entry = zip.by_name(&info.path).map_err(|e| bad(path, format!("storage {}: {e}", info.path)))?;
    let mut bytes = vec![0u8; VALUES * 4];
    entry.read_exact(&mut bytes).map_err(|e| bad(path, format!("storage ends early: {e}")))?;
    finite(path, "voice", floats(&bytes))
}
