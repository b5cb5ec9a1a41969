//! Text to speech with Kokoro-82M: the audio stage's work. The script is split into chunks of
//! at most 510 phonemes at sentence, then clause boundaries ([`super::g2p`]); each chunk is
//! synthesised with the voice row for its length and a seed derived from the recipe's, and the
//! chunks are joined with a short crossfade. The cancellation token is checked between chunks
//! and inside the model (between its decoder's blocks).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::decoder::Excitation;
use super::g2p::G2p;
use super::model::{input_error, Config, Kokoro, SAMPLE_RATE};
use super::voices::Voices;
use crate::config::KokoroModelConfig;
use crate::executor::{CancelToken, ModelError};
use crate::loading::{mmap_safetensors, open_regular, quote, read_pth, read_text_limited, MAX_JSON_BYTES};
use crate::weights::WeightsFile;
use crate::LoadError;

/// Where Kokoro-82M is published, for load errors.
pub const PUBLISHED: &str =
    "Kokoro-82M is published as hexgrad/Kokoro-82M (kokoro-v1_0.pth, voices/); docs/real-mode.md \
                             says how to obtain it, or its int8 ONNX export, and convert it (tools/kokoro_weights.py)";
/// Overlap of two chunks' audio: long enough to hide a click, short next to the silence Kokoro
/// leaves at each chunk's ends.
pub const CROSSFADE_SAMPLES: usize = SAMPLE_RATE as usize / 100;
/// Largest `.pth` checkpoint read (the published one is 327 MB).
pub const MAX_PTH_BYTES: u64 = 2 << 30;
/// The five parts of the checkpoint, under their names in it.
const PARTS: [&str; 5] = ["bert", "bert_encoder", "predictor", "text_encoder", "decoder"];

/// One phoneme's place in the audio: what the video stage times lips by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhonemeTiming {
    /// The phoneme (a character of Kokoro's vocabulary; a space or punctuation is a pause).
    pub symbol: char,
    /// First sample.
    pub start: usize,
    /// Samples it lasts.
    pub len: usize,
}

/// Synthesised speech.
#[derive(Debug, Clone)]
pub struct Speech {
    /// Mono samples at [`SAMPLE_RATE`].
    pub samples: Vec<f32>,
    /// Every phoneme, in order, with its samples.
    pub phonemes: Vec<PhonemeTiming>,
}

/// Kokoro with its voices and text front end, ready for scripts.
pub struct KokoroPipeline {
    model: Kokoro,
    voices: Voices,
    g2p: G2p,
}

impl KokoroPipeline {
    /// A pipeline from loaded parts.
    pub fn new(model: Kokoro, voices: Voices, g2p: G2p) -> Self {
        KokoroPipeline { model, voices, g2p }
    }

    /// Loads the configured weights (`.safetensors` or the published `.pth`) and voices.
    /// `base_dir` is the config file's folder.
    pub fn load(entry: &KokoroModelConfig, base_dir: &Path, device: &Device) -> Result<Self, LoadError> {
        let weights = base_dir.join(&entry.weights);
        let (cfg, what) = match &entry.architecture {
            None => (Config::kokoro_v1(), "Kokoro-82M v1.0's weights".to_string()),
            Some(arch) => {
                let path = base_dir.join(arch);
                (read_architecture(&path)?, format!("the weights of the architecture in {}", path.display()))
            }
        };
        let vb = weights_var_builder(&weights, device)?;
        let model = Kokoro::new(&cfg, vb)
            .map_err(|e| LoadError::file("kokoro", &weights, format!("not {what}: {}", quote(e)), PUBLISHED))?;
        let voices_path = base_dir.join(&entry.voices);
        let voices = Voices::open(&voices_path)
            .map_err(|e| LoadError::file("kokoro", &voices_path, e.to_string(), PUBLISHED))?;
        Ok(KokoroPipeline { model, voices, g2p: G2p::new() })
    }

    /// The voices loaded.
    pub fn voices(&self) -> &Voices {
        &self.voices
    }

    /// The model.
    pub fn model(&self) -> &Kokoro {
        &self.model
    }

    /// Speaks `script` with `voice` at `speed`. The same script, voice, speed and seed give the
    /// same samples.
    pub fn synthesize(
        &self,
        script: &str,
        voice: &str,
        speed: f32,
        seed: u64,
        cancel: &CancelToken,
    ) -> Result<Speech, ModelError> {
        self.synthesize_with(script, voice, speed, seed, cancel, |_| {})
    }

    /// [`KokoroPipeline::synthesize`], calling `on_chunk(index)` after each chunk (progress, and
    /// the hook tests cancel from).
    pub fn synthesize_with(
        &self,
        script: &str,
        voice: &str,
        speed: f32,
        seed: u64,
        cancel: &CancelToken,
        on_chunk: impl FnMut(usize),
    ) -> Result<Speech, ModelError> {
        let chunks = self.g2p.chunks(script).map_err(input_error)?;
        self.speak(&chunks, voice, speed, seed, cancel, on_chunk)
    }

    /// Speaks a phoneme string as given (Kokoro's alphabet, at most 510 phonemes), without the
    /// text front end: for comparing with another implementation on the very same input.
    pub fn synthesize_phonemes(
        &self,
        phonemes: &str,
        voice: &str,
        speed: f32,
        seed: u64,
        cancel: &CancelToken,
    ) -> Result<Speech, ModelError> {
        let ids = super::g2p::ids(phonemes);
        if ids.is_empty() || ids.len() > super::g2p::MAX_PHONEMES {
            return Err(input_error(format!(
                "{} phonemes of Kokoro's alphabet; one call takes 1 to {}",
                ids.len(),
                super::g2p::MAX_PHONEMES
            )));
        }
        let chunk = super::g2p::Chunk { text: String::new(), phonemes: phonemes.to_string(), ids };
        self.speak(&[chunk], voice, speed, seed, cancel, |_| {})
    }

    fn speak(
        &self,
        chunks: &[super::g2p::Chunk],
        voice: &str,
        speed: f32,
        seed: u64,
        cancel: &CancelToken,
        mut on_chunk: impl FnMut(usize),
    ) -> Result<Speech, ModelError> {
        self.voices.check(voice).map_err(input_error)?;
        let mut speech = Speech { samples: Vec::new(), phonemes: Vec::new() };
        for (index, chunk) in chunks.iter().enumerate() {
            cancel.check()?;
            let symbols: Vec<char> = chunk.phonemes.chars().filter(|c| super::g2p::id(*c).is_some()).collect();
            let mut ids = Vec::with_capacity(chunk.ids.len() + 2);
            ids.push(0);
            ids.extend_from_slice(&chunk.ids);
            ids.push(0);
            // Kokoro's pipeline picks the voice row by the phoneme count (`pack[len(ps) - 1]`).
            let style = self.voices.style(voice, chunk.ids.len()).expect("checked above");
            let chunk_seed = chunk_seed(seed, index as u64);
            let out = self.model.forward(
                &ids,
                style,
                speed,
                |samples, device| Excitation::seeded(chunk_seed, samples, device),
                cancel,
            )?;
            append(&mut speech, out.samples, &out.durations, &symbols, self.model.samples_per_frame());
            on_chunk(index);
        }
        Ok(speech)
    }
}

/// Each chunk's own seed: splitmix64 of the recipe's seed and the chunk's index, so chunks
/// draw independent noise and a recipe repeats exactly.
fn chunk_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Adds a chunk's samples to the speech, overlapping the last [`CROSSFADE_SAMPLES`] with
/// linear ramps, and its phonemes' timings (the padding ids' frames are the chunk's edges).
fn append(speech: &mut Speech, samples: Vec<f32>, durations: &[u32], symbols: &[char], per_frame: usize) {
    let overlap = CROSSFADE_SAMPLES.min(speech.samples.len()).min(samples.len());
    let offset = speech.samples.len() - overlap;
    for (i, (old, &new)) in speech.samples[offset..].iter_mut().zip(&samples[..overlap]).enumerate() {
        let fade_in = (i + 1) as f32 / (overlap + 1) as f32;
        *old = *old * (1. - fade_in) + new * fade_in;
    }
    speech.samples.extend_from_slice(&samples[overlap..]);
    // durations: [pad, one per symbol, pad].
    let mut start = offset + durations.first().map_or(0, |&d| d as usize * per_frame);
    for (&symbol, &frames) in symbols.iter().zip(durations.iter().skip(1)) {
        let len = frames as usize * per_frame;
        speech.phonemes.push(PhonemeTiming { symbol, start, len });
        start += len;
    }
}

/// What an architecture error points to.
pub const ARCHITECTURE_HELP: &str = "models.kokoro.architecture names a file in the layout of Kokoro's config.json \
     (hexgrad/Kokoro-82M); docs/real-mode.md lists its keys and docs/reliability.md their bounds";

/// Reads the architecture file `models.kokoro.architecture` names (at most
/// [`crate::loading::MAX_JSON_BYTES`]).
pub fn read_architecture(path: &Path) -> Result<Config, LoadError> {
    let refuse = |reason: String| {
        LoadError::file("kokoro", path, format!("models.kokoro.architecture: {reason}"), ARCHITECTURE_HELP)
    };
    let text = read_text_limited(path, MAX_JSON_BYTES, "an architecture file").map_err(refuse)?;
    super::architecture::from_json(&text).map_err(|e| refuse(e.to_string()))
}

/// A `VarBuilder` over Kokoro's weights: a safetensors file (memory-mapped, checked), or the
/// published `.pth` (read into memory, `module.` prefixes removed, part names put in front).
pub fn weights_var_builder(path: &Path, device: &Device) -> Result<VarBuilder<'static>, LoadError> {
    let is_pth = matches!(path.extension().and_then(|e| e.to_str()), Some("pth" | "pt"));
    if !is_pth {
        let (vb, _) = mmap_safetensors("kokoro", &[path], DType::F32, device, PUBLISHED)?;
        return Ok(vb);
    }
    let parts = PARTS.map(Some);
    let tensors = read_pth("kokoro", path, &parts, MAX_PTH_BYTES, PUBLISHED)?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// Bytes and tensor count once resident (f32), from the safetensors header or the `.pth` size.
pub fn resident_size(entry: &KokoroModelConfig, base_dir: &Path) -> Result<(u64, usize), LoadError> {
    let path: PathBuf = base_dir.join(&entry.weights);
    if matches!(path.extension().and_then(|e| e.to_str()), Some("pth" | "pt")) {
        let (_, len) =
            open_regular(&path, "a weights file").map_err(|e| LoadError::file("kokoro", &path, e, PUBLISHED))?;
        // A float32 checkpoint's size is its resident size, within the pickle's few kilobytes.
        return Ok((len, 0));
    }
    let w = WeightsFile::inspect("kokoro", &path, PUBLISHED)?;
    Ok((w.resident_bytes(entry.dtype), w.tensors.len()))
}
