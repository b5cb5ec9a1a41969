//! What every model's loader shares: dtypes, memory-mapped weights checked first, JSON
//! architecture files, tokenizers, and fitting a prompt's tokens to a model's context.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::ModelDtype;
use crate::weights::WeightsFile;
use crate::LoadError;

/// The candle dtype of a configured model dtype.
pub fn candle_dtype(dtype: ModelDtype) -> DType {
    match dtype {
        ModelDtype::F32 => DType::F32,
        ModelDtype::F16 => DType::F16,
        ModelDtype::Bf16 => DType::BF16,
    }
}

/// Reads a JSON file (a `config.json` or an architecture file) into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(
    model: &str,
    path: &Path,
    published: &'static str,
) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::file(model, path, format!("cannot read: {e}"), published))?;
    serde_json::from_str(&text)
        .map_err(|e| LoadError::file(model, path, format!("not a valid architecture file: {e}"), published))
}

/// Reads a `tokenizer.json`.
pub fn tokenizer(model: &str, path: &Path, published: &'static str) -> Result<tokenizers::Tokenizer, LoadError> {
    tokenizers::Tokenizer::from_file(path)
        .map_err(|e| LoadError::file(model, path, format!("not a tokenizer.json: {e}"), published))
}

/// Memory-maps a model's safetensors file, or its shards together, after checking each header.
pub fn mmap_safetensors<'a, P: AsRef<Path>>(
    model: &str,
    paths: &[P],
    dtype: DType,
    device: &Device,
    published: &'static str,
) -> Result<VarBuilder<'a>, LoadError> {
    for path in paths {
        WeightsFile::inspect(model, path.as_ref(), published)?;
        read_ahead(path.as_ref());
    }
    // SAFETY of the mmap: the files are opened read-only and not modified while mapped; this is
    // candle's documented way to load safetensors.
    unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device) }
        .map_err(|e| LoadError::file(model, paths[0].as_ref(), format!("cannot map: {e}"), published))
}

/// Asks the kernel to read the whole file into the page cache now, in large requests: a
/// memory-mapped load otherwise pulls a cold file in page-fault by page-fault, which measured
/// twice as slow as from cache for CLIP ViT-L/14 (docs/benchmarks.md). Only a hint: errors are
/// ignored, and elsewhere than Linux it does nothing.
fn read_ahead(path: &Path) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Ok(file) = std::fs::File::open(path) {
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
