//! What every model's loader shares: opening input files safely, dtypes, memory-mapped weights
//! checked first, JSON architecture files with bounded dimensions, tokenizers, and fitting a
//! prompt's tokens to a model's context.
//!
//! Every file real mode opens goes through [`open_regular`]: it must be a regular file, checked
//! before it is opened (a FIFO would block the open, a device would never end), and opened
//! non-blocking so a file swapped for a FIFO between the check and the open cannot hang either.
//! Files read into memory have a size limit ([`MAX_JSON_BYTES`], [`MAX_TOKENIZER_BYTES`]);
//! weights are memory-mapped, not read, and have none.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use vortex::input::Refused;

use crate::config::ModelDtype;
use crate::weights::WeightsFile;
use crate::LoadError;

/// The largest JSON file real mode reads (`config.json`, architecture files): 16 MiB. The
/// published ones are a few KB.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// The largest `tokenizer.json` real mode reads: 64 MiB. CLIP's and T5's are about 2.5 MB; the
/// largest multilingual vocabularies about 20 MB.
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;
/// Longest error text quoted from a parser (serde_json, tokenizers): they can echo a value of
/// the input, which must not flood the message.
const MAX_QUOTED_CHARS: usize = 240;

/// The candle dtype of a configured model dtype.
pub fn candle_dtype(dtype: ModelDtype) -> DType {
    match dtype {
        ModelDtype::F32 => DType::F32,
        ModelDtype::F16 => DType::F16,
        ModelDtype::Bf16 => DType::BF16,
    }
}

/// [`vortex::input::open_regular`] (a regular file, checked before and after a non-blocking open)
/// with the refusal in words; `expected` says what the file should be (`a .safetensors file`).
pub fn open_regular(path: &Path, expected: &str) -> Result<(File, u64), String> {
    vortex::input::open_regular(path).map_err(|refused| match refused {
        Refused::Directory => format!("is a directory, expected {expected}"),
        Refused::NotRegular => format!("is not a regular file (a FIFO, device or socket), expected {expected}"),
        Refused::Io(e) => format!("cannot read: {e}"),
    })
}

/// Reads a regular text file of at most `limit` bytes (see [`open_regular`]).
pub fn read_text_limited(path: &Path, limit: u64, expected: &str) -> Result<String, String> {
    let (file, len) = open_regular(path, expected)?;
    if len > limit {
        return Err(format!("is {len} bytes long, above the limit of {limit} bytes for {expected}"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow between the check and the read: read at most one byte past the limit.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("grew above the limit of {limit} bytes for {expected} while it was read"));
    }
    String::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

/// A parser's message cut to a readable length (parsers can quote a whole value of the input).
pub fn quote(message: impl std::fmt::Display) -> String {
    // Printable, and in words rather than Rust's types, as every error of the project is.
    let text = vortex::yaml::printable(&message.to_string());
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A tensor's (or metadata key's) name as an error shows it: bare when it looks like a name
/// (letters, digits, `.`, `_`, `-`, `/`; at most 200 characters), else quoted with control
/// characters escaped, so a hostile header's name can neither garble nor pose as the message.
pub fn shown_name(name: &str) -> String {
    let plain =
        name.len() <= 200 && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if plain {
        name.to_string()
    } else {
        vortex::yaml::quoted(name)
    }
}

/// Reads a JSON file (a `config.json` or an architecture file) as a JSON value, at most
/// [`MAX_JSON_BYTES`].
pub fn read_json_value(model: &str, path: &Path, published: &'static str) -> Result<serde_json::Value, LoadError> {
    let text = read_text_limited(path, MAX_JSON_BYTES, "a JSON file")
        .map_err(|reason| LoadError::file(model, path, reason, published))?;
    serde_json::from_str(&text)
        .map_err(|e| LoadError::file(model, path, format!("is not valid JSON: {}", quote(e)), published))
}

/// Reads a JSON file (a `config.json` or an architecture file) into `T`; errors name the key.
pub fn read_json<T: serde::de::DeserializeOwned>(
    model: &str,
    path: &Path,
    published: &'static str,
) -> Result<T, LoadError> {
    from_json(model, path, read_json_value(model, path, published)?, published)
}

/// Deserializes an already read JSON file's value into `T`; errors name the key and the value.
pub fn from_json<T: serde::de::DeserializeOwned>(
    model: &str,
    path: &Path,
    value: serde_json::Value,
    published: &'static str,
) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let reason = if key == "." { quote(e.into_inner()) } else { format!("key {key}: {}", quote(e.into_inner())) };
        LoadError::file(model, path, reason, published)
    })
}

/// The bounds of an architecture file's numbers, checked before the values reach candle: a zero
/// that the network divides by, or a size that would allocate without end, is refused with the
/// file, key, value and allowed range.
pub struct JsonBounds<'a> {
    model: &'a str,
    path: &'a Path,
    published: &'static str,
    value: &'a serde_json::Value,
}

impl<'a> JsonBounds<'a> {
    /// Bounds checks on `value`, the content of `path`.
    pub fn new(model: &'a str, path: &'a Path, value: &'a serde_json::Value, published: &'static str) -> Self {
        JsonBounds { model, path, published, value }
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> LoadError {
        LoadError::file(self.model, self.path, reason, self.published)
    }

    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        key.split('.').try_fold(self.value, |v, part| v.get(part))
    }

    /// The whole number at `key` (dotted), which must be present and from `lo` to `hi`.
    pub fn uint(&self, key: &str, lo: u64, hi: u64) -> Result<usize, LoadError> {
        match self.get(key) {
            None => Err(self.error(format!("key {key} is missing; expected a whole number from {lo} to {hi}"))),
            Some(v) => self.check_uint(key, v, lo, hi),
        }
    }

    /// Like [`JsonBounds::uint`] for a key that may be absent.
    pub fn opt_uint(&self, key: &str, lo: u64, hi: u64) -> Result<Option<usize>, LoadError> {
        self.get(key).filter(|v| !v.is_null()).map(|v| self.check_uint(key, v, lo, hi)).transpose()
    }

    fn check_uint(&self, key: &str, v: &serde_json::Value, lo: u64, hi: u64) -> Result<usize, LoadError> {
        match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(n as usize),
            _ => Err(self.error(format!("key {key} is {}; expected a whole number from {lo} to {hi}", quote(v)))),
        }
    }

    /// The number at `key`, which must be present, finite and from `lo` to `hi`.
    pub fn float(&self, key: &str, lo: f64, hi: f64) -> Result<f64, LoadError> {
        match self.get(key).map(|v| (v, v.as_f64())) {
            Some((_, Some(x))) if (lo..=hi).contains(&x) => Ok(x),
            Some((v, _)) => Err(self.error(format!("key {key} is {}; expected a number from {lo} to {hi}", quote(v)))),
            None => Err(self.error(format!("key {key} is missing; expected a number from {lo} to {hi}"))),
        }
    }

    /// The list of whole numbers at `key`: from `len_lo` to `len_hi` entries, each from `lo` to `hi`.
    pub fn uint_list(&self, key: &str, len: (usize, usize), lo: u64, hi: u64) -> Result<Vec<usize>, LoadError> {
        let expected = format!("a list of {} to {} whole numbers from {lo} to {hi}", len.0, len.1);
        let Some(list) = self.get(key).and_then(|v| v.as_array()) else {
            let shown = self.get(key).map_or("missing".into(), quote);
            return Err(self.error(format!("key {key} is {shown}; expected {expected}")));
        };
        if !(len.0..=len.1).contains(&list.len()) {
            return Err(self.error(format!("key {key} has {} entries; expected {expected}", list.len())));
        }
        list.iter().enumerate().map(|(i, v)| self.check_uint(&format!("{key}[{i}]"), v, lo, hi)).collect()
    }

    /// Refuses `a` that is not a multiple of `b` (both already checked to be at least 1).
    pub fn multiple(&self, a: (&str, usize), b: (&str, usize)) -> Result<(), LoadError> {
        if a.1 % b.1 == 0 {
            Ok(())
        } else {
            Err(self.error(format!("key {} is {}, which is not a multiple of {} ({})", a.0, a.1, b.0, b.1)))
        }
    }
}

/// Reads a `tokenizer.json` of at most [`MAX_TOKENIZER_BYTES`].
pub fn tokenizer(model: &str, path: &Path, published: &'static str) -> Result<tokenizers::Tokenizer, LoadError> {
    let text = read_text_limited(path, MAX_TOKENIZER_BYTES, "a tokenizer.json file")
        .map_err(|reason| LoadError::file(model, path, reason, published))?;
    text.parse::<tokenizers::Tokenizer>()
        .map_err(|e| LoadError::file(model, path, format!("is not a tokenizer.json: {}", quote(e)), published))
}

/// One layer count of an architecture file, and where the weights hold those layers.
pub struct LayerCount<'a> {
    /// The key in the architecture file (`text_config.num_hidden_layers`).
    pub key: &'a str,
    /// Its value.
    pub configured: usize,
    /// The tensor-name prefix before the layer's index (`text_model.encoder.layers.`).
    pub prefix: &'a str,
}

/// Refuses an architecture file whose layer counts differ from the layers the weights hold:
/// fewer configured layers would silently ignore trained ones, more would fail inside candle.
pub fn check_layers<'n>(
    model: &str,
    config: &Path,
    weights: &Path,
    names: impl Iterator<Item = &'n str> + Clone,
    layers: &[LayerCount],
    published: &'static str,
) -> Result<(), LoadError> {
    for layer in layers {
        let found = names
            .clone()
            .filter_map(|n| n.strip_prefix(layer.prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |last| last + 1);
        if found != layer.configured {
            return Err(LoadError::file(
                model,
                config,
                format!(
                    "key {} is {}, but {} holds {found} such layers ({}N.*)",
                    layer.key,
                    layer.configured,
                    weights.display(),
                    layer.prefix
                ),
                published,
            ));
        }
    }
    Ok(())
}

/// Memory-maps a model's safetensors file, or its shards together, after checking each header
/// (and the shards together: no file twice, no tensor in two) and scanning the weights for NaN
/// and infinities. Returns the headers too.
pub fn mmap_safetensors<'a, P: AsRef<Path>>(
    model: &str,
    paths: &[P],
    dtype: DType,
    device: &Device,
    published: &'static str,
) -> Result<(VarBuilder<'a>, Vec<WeightsFile>), LoadError> {
    let paths: Vec<&Path> = paths.iter().map(|p| p.as_ref()).collect();
    for path in &paths {
        read_ahead(path);
    }
    let files = WeightsFile::inspect_shards(model, &paths, published)?;
    for file in &files {
        file.check_finite(model, published)?;
    }
    // SAFETY of the mmap: the files are opened read-only and not modified while mapped; this is
    // candle's documented way to load safetensors.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&paths, dtype, device) }
        .map_err(|e| LoadError::file(model, paths[0], format!("cannot map: {}", quote(e)), published))?;
    Ok((vb, files))
}

/// Asks the kernel to read the whole file into the page cache now, in large requests: a
/// memory-mapped load otherwise pulls a cold file in page-fault by page-fault, which measured
/// twice as slow as from cache for CLIP ViT-L/14 (docs/benchmarks.md). Only a hint: errors are
/// ignored, and elsewhere than Linux it does nothing.
fn read_ahead(path: &Path) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok((file, _)) = open_regular(path, "a weights file") {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads the descriptor, which `file` keeps open for the call.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = path;
}

/// Cuts token ids to `context`, keeping the last id (the end-of-text token) last, as CLIP's
/// tokenizer does. Returns true when the prompt was cut.
pub fn fit_to_context(ids: &mut Vec<u32>, context: usize) -> bool {
    assert!(context > 0, "a model context holds at least one token");
    if ids.len() <= context {
        return false;
    }
    let end = *ids.last().expect("longer than a non-empty context");
    ids.truncate(context);
    ids[context - 1] = end;
    true
}

/// Reads a PyTorch checkpoint (`.pth`, a pickle in a zip) into f32 tensors on the CPU: each
/// of `parts` is a key of the checkpoint's top-level dict holding a state dict (its tensors are
/// named `part.name`), or `None` for a checkpoint that is itself a state dict. `module.`
/// prefixes (left by `DataParallel`) are removed; a file over `max_bytes`, a part with no
/// tensors, a non-finite value or a malformed pickle is an error naming the file and the part.
pub fn read_pth(
    model: &str,
    path: &Path,
    parts: &[Option<&str>],
    max_bytes: u64,
    published: &'static str,
) -> Result<std::collections::HashMap<String, candle_core::Tensor>, LoadError> {
    let err = |reason: String| LoadError::file(model, path, reason, published);
    let (_, len) = open_regular(path, "a weights file").map_err(&err)?;
    if len > max_bytes {
        return Err(err(format!("{len} bytes, more than the {max_bytes} this checkpoint may have")));
    }
    let mut tensors = std::collections::HashMap::new();
    for &part in parts {
        let shown = part.map_or("the top level".to_string(), |p| format!("part {p:?}"));
        // candle's pickle reader was written for trusted checkpoints: contain a panic as an error.
        let read = std::panic::catch_unwind(|| candle_core::pickle::read_all_with_key(path, part))
            .map_err(|_| err(format!("a malformed PyTorch checkpoint (reading {shown})")))?
            .map_err(|e| err(format!("cannot read {shown}: {}", quote(e))))?;
        if read.is_empty() {
            let parts: Vec<_> = parts.iter().map(|p| p.unwrap_or("(top level)")).collect();
            return Err(err(format!("no tensors in {shown}: not a {model} checkpoint (a dict of {parts:?})")));
        }
        for (name, tensor) in read {
            let name = name.strip_prefix("module.").unwrap_or(&name);
            let full = part.map_or(name.to_string(), |p| format!("{p}.{name}"));
            crate::executor::ensure_finite(&tensor, &full).map_err(|e| err(e.to_string()))?;
            tensors.insert(full, tensor.to_dtype(DType::F32).map_err(|e| err(e.to_string()))?);
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_prompt_keeps_its_end_token() {
        let mut ids = vec![49406, 1, 2, 3, 49407];
        assert!(fit_to_context(&mut ids, 3));
        assert_eq!(ids, [49406, 1, 49407]);
        let mut short = vec![49406, 49407];
        assert!(!fit_to_context(&mut short, 3));
        assert_eq!(short, [49406, 49407]);
    }
}
