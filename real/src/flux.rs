//! The actor image: Flux.1-Schnell.
//!
//! - Model: Black Forest Labs, FLUX.1 [schnell] (reference code: github.com/black-forest-labs/flux
//!   and diffusers' `FluxPipeline`); the networks are candle-transformers' `flux`, `t5` and `clip`
//!   modules, loaded from the published checkpoint names.
//! - Text: the prompt through T5 (padded or cut to `t5_tokens`, the sequence the transformer
//!   attends to) and through CLIP-L (its pooled output conditions every block).
//! - Sampling: Gaussian noise from a ChaCha stream seeded by the recipe's seed (the image is
//!   therefore the same on a given device), packed into 2×2 patches, then the Schnell schedule:
//!   `steps` evenly spaced times from 1 to 0, no shift, no guidance; each step is one transformer
//!   call and an Euler update. The cancellation token is checked before every step.
//! - Decode: unpack, the autoencoder's decoder, clamp to [-1, 1], scale to 8-bit RGB.

use std::path::{Path, PathBuf};

use crate::config::FluxModelConfig;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::clip::text_model::ClipTextTransformer;
use candle_transformers::models::flux::autoencoder::{AutoEncoder, Config as VaeConfig};
use candle_transformers::models::flux::model::{Config as FluxConfig, Flux};
use candle_transformers::models::flux::quantized_model::Flux as QuantizedFlux;
use candle_transformers::models::flux::{sampling, WithForward};
use candle_transformers::models::{quantized_t5, t5};
use rand::SeedableRng;
use rand_distr::Distribution;
use serde::Deserialize;

use crate::executor::{ensure_finite, CancelToken, ModelError};
use crate::gguf::GgufHeader;
use crate::hf::{read_text_tower, text_config, MAX_HEADS, MAX_LAYERS, MAX_MLP_WIDTH, MAX_VOCAB, MAX_WIDTH};
use crate::loading::{candle_dtype, check_layers, fit_to_context, mmap_safetensors, quote};
use crate::loading::{from_json, read_json_value, tokenizer, JsonBounds, LayerCount};
use crate::media::Frame;
use crate::weights::WeightsFile;
use crate::LoadError;

/// Where Flux.1-Schnell is published.
pub const PUBLISHED: &str = "FLUX.1-schnell is published as black-forest-labs/FLUX.1-schnell on Hugging Face (flux1-schnell.safetensors, ae.safetensors, text_encoder/ and text_encoder_2/ with their tokenizers)";

/// The transformer's architecture in a JSON file (candle's field names; BFL ships none).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the transformer's architecture (candle's field names)")]
struct FluxArch {
    in_channels: usize,
    vec_in_dim: usize,
    context_in_dim: usize,
    hidden_size: usize,
    mlp_ratio: f64,
    num_heads: usize,
    depth: usize,
    depth_single_blocks: usize,
    axes_dim: Vec<usize>,
    theta: usize,
    qkv_bias: bool,
}

/// The autoencoder's architecture in a JSON file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the autoencoder's architecture")]
struct VaeArch {
    resolution: usize,
    ch: usize,
    ch_mult: Vec<usize>,
    num_res_blocks: usize,
    z_channels: usize,
    scale_factor: f64,
    shift_factor: f64,
}

/// The transformer, from safetensors (bf16/f16/f32) or quantized from GGUF.
pub enum Transformer {
    /// Full precision, in the configured dtype.
    Full(Box<Flux>),
    /// Quantized (e.g. Q4_0) from a `.gguf` file; computes in f32.
    Quantized(Box<QuantizedFlux>),
}

impl WithForward for Transformer {
    fn forward(
        &self,
        img: &Tensor,
        img_ids: &Tensor,
        txt: &Tensor,
        txt_ids: &Tensor,
        timesteps: &Tensor,
        y: &Tensor,
        guidance: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        match self {
            Transformer::Full(m) => m.forward(img, img_ids, txt, txt_ids, timesteps, y, guidance),
            Transformer::Quantized(m) => m.forward(img, img_ids, txt, txt_ids, timesteps, y, guidance),
        }
    }
}

/// True when the transformer file is GGUF (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Bytes a GGUF file's tensors take once loaded (their quantized sizes) and their count, read
/// from its header with bounds ([`GgufHeader::inspect`]).
pub fn gguf_resident_bytes(model: &str, path: &Path) -> Result<(u64, usize), LoadError> {
    let header = GgufHeader::inspect(model, path, PUBLISHED)?;
    Ok((header.bytes(), header.tensors.len()))
}

/// Checks a GGUF file's header and scans it for non-finite values, then loads it with candle.
fn gguf_var_builder(
    path: &Path,
    device: &Device,
) -> Result<(candle_transformers::quantized_var_builder::VarBuilder, GgufHeader), LoadError> {
    let header = GgufHeader::inspect("flux", path, PUBLISHED)?;
    header.check_finite("flux", PUBLISHED)?;
    let vb = candle_transformers::quantized_var_builder::VarBuilder::from_gguf(path, device)
        .map_err(|e| LoadError::file("flux", path, format!("cannot read: {}", quote(e)), PUBLISHED))?;
    Ok((vb, header))
}

/// The largest `in_channels` of the transformer (Flux's is 64).
const MAX_CHANNELS: u64 = 4096;
/// The largest rotary `theta` (Flux's is 10,000).
const MAX_THETA: u64 = 1_000_000_000;
/// The largest `mlp_ratio` (Flux's is 4).
const MAX_MLP_RATIO: f64 = 64.0;

/// Reads the transformer's architecture file, every number checked before it reaches candle:
/// `hidden_size` a multiple of `num_heads`, three rotary axes (even, summing to the head width).
fn read_flux_arch(path: &Path) -> Result<FluxConfig, LoadError> {
    let value = read_json_value("flux", path, PUBLISHED)?;
    let b = JsonBounds::new("flux", path, &value, PUBLISHED);
    b.uint("in_channels", 1, MAX_CHANNELS)?;
    b.uint("vec_in_dim", 1, MAX_WIDTH)?;
    b.uint("context_in_dim", 1, MAX_WIDTH)?;
    let hidden = b.uint("hidden_size", 1, MAX_WIDTH)?;
    b.float("mlp_ratio", 1.0 / 64.0, MAX_MLP_RATIO)?;
    let heads = b.uint("num_heads", 1, MAX_HEADS)?;
    b.multiple(("hidden_size", hidden), ("num_heads", heads))?;
    b.uint("depth", 0, MAX_LAYERS)?;
    b.uint("depth_single_blocks", 0, MAX_LAYERS)?;
    // Positions have three axes (none, row, column), each rotated in pairs of channels.
    let axes = b.uint_list("axes_dim", (3, 3), 2, MAX_WIDTH)?;
    let head = hidden / heads;
    if axes.iter().any(|a| a % 2 != 0) || axes.iter().sum::<usize>() != head {
        return Err(b.error(format!(
            "key axes_dim is {axes:?}; expected three even numbers that sum to the head width, hidden_size / num_heads = {head}"
        )));
    }
    b.uint("theta", 1, MAX_THETA)?;
    let a: FluxArch = from_json("flux", path, value, PUBLISHED)?;
    Ok(FluxConfig {
        in_channels: a.in_channels,
        vec_in_dim: a.vec_in_dim,
        context_in_dim: a.context_in_dim,
        hidden_size: a.hidden_size,
        mlp_ratio: a.mlp_ratio,
        num_heads: a.num_heads,
        depth: a.depth,
        depth_single_blocks: a.depth_single_blocks,
        axes_dim: a.axes_dim,
        theta: a.theta,
        qkv_bias: a.qkv_bias,
        guidance_embed: false, // Schnell is distilled without guidance
    })
}

/// Reads the autoencoder's architecture file, every number checked: `ch` a multiple of 32 (its
/// group norms have 32 groups), `scale_factor` not zero (the decoder divides by it).
fn read_vae_arch(path: &Path) -> Result<VaeConfig, LoadError> {
    let value = read_json_value("flux", path, PUBLISHED)?;
    let b = JsonBounds::new("flux", path, &value, PUBLISHED);
    b.uint("resolution", 1, 16_384)?;
    let ch = b.uint("ch", 32, 4096)?;
    b.multiple(("ch", ch), ("the group norms' 32 groups", 32))?;
    b.uint_list("ch_mult", (1, 8), 1, 64)?;
    b.uint("num_res_blocks", 1, 16)?;
    b.uint("z_channels", 1, 1024)?;
    b.float("scale_factor", 1e-6, 1e6)?;
    b.float("shift_factor", -1e6, 1e6)?;
    let a: VaeArch = from_json("flux", path, value, PUBLISHED)?;
    Ok(VaeConfig {
        resolution: a.resolution,
        in_channels: 3,
        ch: a.ch,
        out_ch: 3,
        ch_mult: a.ch_mult,
        num_res_blocks: a.num_res_blocks,
        z_channels: a.z_channels,
        scale_factor: a.scale_factor,
        shift_factor: a.shift_factor,
    })
}

/// Reads T5's `config.json`, every number checked before it reaches candle (relative attention
/// needs at least 4 buckets: candle divides by a quarter of them).
fn read_t5_config(path: &Path) -> Result<serde_json::Value, LoadError> {
    let value = read_json_value("flux", path, PUBLISHED)?;
    let b = JsonBounds::new("flux", path, &value, PUBLISHED);
    let vocab = b.uint("vocab_size", 1, MAX_VOCAB)? as u64;
    b.uint("d_model", 1, MAX_WIDTH)?;
    b.uint("d_kv", 1, 4096)?;
    b.uint("d_ff", 1, MAX_MLP_WIDTH)?;
    b.uint("num_layers", 1, MAX_LAYERS)?;
    b.opt_uint("num_decoder_layers", 0, MAX_LAYERS)?;
    b.uint("num_heads", 1, MAX_HEADS)?;
    b.uint("relative_attention_num_buckets", 4, 1024)?;
    b.opt_uint("relative_attention_max_distance", 1, 65_536)?;
    b.float("dropout_rate", 0.0, 1.0)?;
    b.float("layer_norm_epsilon", 0.0, 1.0)?;
    b.float("initializer_factor", 0.0, 1e6)?;
    b.uint("pad_token_id", 0, vocab - 1)?;
    b.uint("eos_token_id", 0, vocab - 1)?;
    b.opt_uint("decoder_start_token_id", 0, vocab - 1)?;
    Ok(value)
}

/// The tensor names of a transformer or encoder's weights, safetensors or GGUF.
fn names_of<'a>(files: &'a [WeightsFile], gguf: Option<&'a GgufHeader>) -> Vec<&'a str> {
    let mut names: Vec<&str> = files.iter().flat_map(|f| f.tensors.keys().map(String::as_str)).collect();
    names.extend(gguf.iter().flat_map(|g| g.tensors.keys().map(String::as_str)));
    names
}

/// The T5 encoder, from safetensors (one file or shards) or quantized from GGUF.
pub enum T5Encoder {
    /// Full precision, in the configured dtype.
    Full(Box<t5::T5EncoderModel>),
    /// Quantized from a `.gguf` file; computes in f32.
    Quantized(Box<quantized_t5::T5EncoderModel>),
}

impl T5Encoder {
    /// Hidden states of token ids (batch, len), in `dtype`.
    pub fn forward(&mut self, ids: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
        match self {
            T5Encoder::Full(m) => m.forward_dt(ids, Some(dtype)),
            T5Encoder::Quantized(m) => m.forward(ids)?.to_dtype(dtype),
        }
    }
}

/// Everything Flux needs, loaded.
pub struct FluxPipeline {
    transformer: Transformer,
    vae: AutoEncoder,
    t5: T5Encoder,
    t5_tokenizer: tokenizers::Tokenizer,
    t5_pad: u32,
    t5_tokens: usize,
    clip: ClipTextTransformer,
    clip_tokenizer: tokenizers::Tokenizer,
    clip_context: usize,
    image_px: usize,
    steps: usize,
    z_channels: usize,
    device: Device,
    dtype: DType,
}

/// Loads the transformer (`transformer`, with `transformer_config` or the Schnell preset): a
/// `.gguf` file loads the quantized model, anything else safetensors in the configured dtype.
pub fn load_transformer(
    cfg: &FluxModelConfig,
    base_dir: &Path,
    device: &Device,
) -> Result<(Transformer, FluxConfig), LoadError> {
    let flux_cfg = match &cfg.transformer_config {
        None => FluxConfig::schnell(),
        Some(p) => read_flux_arch(&base_dir.join(p))?,
    };
    let path = base_dir.join(&cfg.transformer);
    // Without an architecture file the counts are the Schnell preset's; the error then names
    // the weights file.
    let arch_file = cfg.transformer_config.as_ref().map_or(path.clone(), |p| base_dir.join(p));
    let layers = [
        LayerCount { key: "depth", configured: flux_cfg.depth, prefix: "double_blocks." },
        LayerCount { key: "depth_single_blocks", configured: flux_cfg.depth_single_blocks, prefix: "single_blocks." },
    ];
    let model = if is_gguf(&path) {
        let (vb, header) = gguf_var_builder(&path, device)?;
        check_layers("flux", &arch_file, &path, names_of(&[], Some(&header)).into_iter(), &layers, PUBLISHED)?;
        Transformer::Quantized(Box::new(
            QuantizedFlux::new(&flux_cfg, vb).map_err(|e| misfit("the transformer", &path, e))?,
        ))
    } else {
        let (vb, files) = mmap_safetensors("flux", &[&path], candle_dtype(cfg.dtype), device, PUBLISHED)?;
        check_layers("flux", &arch_file, &path, names_of(&files, None).into_iter(), &layers, PUBLISHED)?;
        Transformer::Full(Box::new(Flux::new(&flux_cfg, vb).map_err(|e| misfit("the transformer", &path, e))?))
    };
    Ok((model, flux_cfg))
}

/// Loads the autoencoder (`vae`, with `vae_config` or the Schnell preset).
pub fn load_autoencoder(
    cfg: &FluxModelConfig,
    base_dir: &Path,
    device: &Device,
) -> Result<(AutoEncoder, VaeConfig), LoadError> {
    let vae_cfg = match &cfg.vae_config {
        None => VaeConfig::schnell(),
        Some(p) => read_vae_arch(&base_dir.join(p))?,
    };
    let path = base_dir.join(&cfg.vae);
    let arch_file = cfg.vae_config.as_ref().map_or(path.clone(), |p| base_dir.join(p));
    let (vb, files) = mmap_safetensors("flux", &[&path], candle_dtype(cfg.dtype), device, PUBLISHED)?;
    let levels = [LayerCount { key: "ch_mult (its length)", configured: vae_cfg.ch_mult.len(), prefix: "decoder.up." }];
    check_layers("flux", &arch_file, &path, names_of(&files, None).into_iter(), &levels, PUBLISHED)?;
    let model = AutoEncoder::new(&vae_cfg, vb).map_err(|e| misfit("the autoencoder", &path, e))?;
    Ok((model, vae_cfg))
}

/// Loads the T5 encoder (`t5`): a single `.gguf` file loads the quantized encoder, anything else
/// safetensors (one file or its shards) in the configured dtype.
pub fn load_t5(cfg: &FluxModelConfig, base_dir: &Path, device: &Device) -> Result<(T5Encoder, t5::Config), LoadError> {
    let config_path = base_dir.join(&cfg.t5.config);
    let t5_json = read_t5_config(&config_path)?;
    let t5_cfg: t5::Config = from_json("flux", &config_path, t5_json.clone(), PUBLISHED)?;
    let paths: Vec<_> = cfg.t5.weights.0.iter().map(|p| base_dir.join(p)).collect();
    let layers = [LayerCount { key: "num_layers", configured: t5_cfg.num_layers, prefix: "encoder.block." }];
    let model = match paths.as_slice() {
        [one] if is_gguf(one) => {
            let q_cfg: quantized_t5::Config = from_json("flux", &config_path, t5_json, PUBLISHED)?;
            let (vb, header) = gguf_var_builder(one, device)?;
            check_layers("flux", &config_path, one, names_of(&[], Some(&header)).into_iter(), &layers, PUBLISHED)?;
            T5Encoder::Quantized(Box::new(
                quantized_t5::T5EncoderModel::load(vb, &q_cfg).map_err(|e| misfit("the T5 encoder", one, e))?,
            ))
        }
        _ if paths.iter().any(|p| is_gguf(p)) => {
            return Err(LoadError::file("flux", &paths[0], "a quantized T5 is one .gguf file, not shards", PUBLISHED));
        }
        _ => {
            let (vb, files) = mmap_safetensors("flux", &paths, candle_dtype(cfg.dtype), device, PUBLISHED)?;
            check_layers("flux", &config_path, &paths[0], names_of(&files, None).into_iter(), &layers, PUBLISHED)?;
            T5Encoder::Full(Box::new(
                t5::T5EncoderModel::load(vb, &t5_cfg).map_err(|e| misfit("the T5 encoder", &paths[0], e))?,
            ))
        }
    };
    Ok((model, t5_cfg))
}

fn misfit(what: &str, path: &Path, e: candle_core::Error) -> LoadError {
    LoadError::file("flux", path, format!("{what} does not fit its architecture: {}", quote(e)), PUBLISHED)
}

impl FluxPipeline {
    /// Loads the four networks; `base_dir` resolves relative paths.
    pub fn load(cfg: &FluxModelConfig, base_dir: &Path, device: &Device) -> Result<FluxPipeline, LoadError> {
        let dtype = candle_dtype(cfg.dtype);
        let (transformer, flux_cfg) = load_transformer(cfg, base_dir, device)?;
        let (vae, vae_cfg) = load_autoencoder(cfg, base_dir, device)?;
        if flux_cfg.in_channels != 4 * vae_cfg.z_channels {
            return Err(LoadError::file(
                "flux",
                &base_dir.join(&cfg.transformer),
                format!(
                    "the transformer takes {} channels but the autoencoder's latents pack to {}",
                    flux_cfg.in_channels,
                    4 * vae_cfg.z_channels
                ),
                PUBLISHED,
            ));
        }
        let (t5, t5_cfg) = load_t5(cfg, base_dir, device)?;
        if t5_cfg.d_model != flux_cfg.context_in_dim {
            return Err(LoadError::file(
                "flux",
                &base_dir.join(&cfg.t5.config),
                format!(
                    "d_model {} differs from the transformer's context_in_dim {}",
                    t5_cfg.d_model, flux_cfg.context_in_dim
                ),
                PUBLISHED,
            ));
        }
        let clip_tower = read_text_tower("flux", &base_dir.join(&cfg.clip.config), PUBLISHED)?;
        let clip_cfg = text_config(&clip_tower, clip_tower.hidden_size)
            .map_err(|reason| LoadError::file("flux", &base_dir.join(&cfg.clip.config), reason, PUBLISHED))?;
        if clip_cfg.embed_dim != flux_cfg.vec_in_dim {
            return Err(LoadError::file(
                "flux",
                &base_dir.join(&cfg.clip.config),
                format!(
                    "hidden_size {} differs from the transformer's vec_in_dim {}",
                    clip_cfg.embed_dim, flux_cfg.vec_in_dim
                ),
                PUBLISHED,
            ));
        }
        let paths: Vec<_> = cfg.clip.weights.0.iter().map(|p| base_dir.join(p)).collect();
        let (clip_vb, files) = mmap_safetensors("flux", &paths, dtype, device, PUBLISHED)?;
        let layers = [LayerCount {
            key: "num_hidden_layers",
            configured: clip_cfg.num_hidden_layers,
            prefix: "text_model.encoder.layers.",
        }];
        let clip_config = base_dir.join(&cfg.clip.config);
        check_layers("flux", &clip_config, &paths[0], names_of(&files, None).into_iter(), &layers, PUBLISHED)?;
        let clip = ClipTextTransformer::new(clip_vb.pp("text_model"), &clip_cfg)
            .map_err(|e| misfit("the CLIP text encoder", &paths[0], e))?;

        let t5_tokenizer = tokenizer("flux", &base_dir.join(&cfg.t5.tokenizer), PUBLISHED)?;
        let clip_tokenizer = tokenizer("flux", &base_dir.join(&cfg.clip.tokenizer), PUBLISHED)?;
        Ok(FluxPipeline {
            transformer,
            vae,
            t5,
            t5_tokenizer,
            t5_pad: t5_cfg.pad_token_id as u32,
            t5_tokens: cfg.t5_tokens.get() as usize,
            clip,
            clip_tokenizer,
            clip_context: clip_cfg.max_position_embeddings,
            image_px: cfg.image_px.get() as usize,
            steps: cfg.steps.get() as usize,
            z_channels: vae_cfg.z_channels,
            device: device.clone(),
            dtype,
        })
    }

    /// Generates the actor image for `prompt`, the same for the same seed on a given device.
    /// `on_step(k)` runs after step k (for progress and tests).
    pub fn generate(
        &mut self,
        prompt: &str,
        seed: u64,
        cancel: &CancelToken,
        on_step: impl FnMut(usize),
    ) -> Result<Frame, ModelError> {
        cancel.check()?;
        let noise = self.noise(seed)?;
        let packed = self.denoise(prompt, &noise, cancel, on_step)?;
        ensure_finite(&packed, "flux: the denoised latent")?;
        cancel.check()?;
        let (_, _, h, w) = noise.dims4()?;
        to_frame(&self.decode(&packed, h * 8, w * 8)?)
    }

    /// The Schnell schedule from `noise` (1, z, h, w), any h and w: the denoised latent, packed
    /// into 2×2 patches as the transformer sees it, (1, h/2 · w/2, 4z) in f32. The token is
    /// checked before every step.
    pub fn denoise(
        &mut self,
        prompt: &str,
        noise: &Tensor,
        cancel: &CancelToken,
        mut on_step: impl FnMut(usize),
    ) -> Result<Tensor, ModelError> {
        cancel.check()?;
        let t5_emb = self.encode_t5(prompt)?;
        let clip_emb = self.encode_clip(prompt)?;
        let work = self.work_dtype();
        let state = sampling::State::new(&t5_emb.to_dtype(work)?, &clip_emb.to_dtype(work)?, &noise.to_dtype(work)?)?;
        let timesteps = sampling::get_schedule(self.steps, None);
        let mut img = state.img.clone();
        for (k, window) in timesteps.windows(2).enumerate() {
            cancel.check()?;
            let (t_curr, t_prev) = (window[0], window[1]);
            let t = Tensor::full(t_curr as f32, 1, &self.device)?.to_dtype(work)?;
            let pred =
                self.transformer.forward(&img, &state.img_ids, &state.txt, &state.txt_ids, &t, &state.vec, None)?;
            img = (img + pred * (t_prev - t_curr))?;
            on_step(k);
        }
        Ok(img.to_dtype(DType::F32)?)
    }

    /// Unpacks a denoised latent and decodes it: the image (1, 3, height, width) in [-1, 1], f32.
    pub fn decode(&self, packed: &Tensor, height: usize, width: usize) -> Result<Tensor, ModelError> {
        let latent = sampling::unpack(packed, height, width)?.to_dtype(self.dtype)?;
        let image = self.vae.decode(&latent)?.to_dtype(DType::F32)?;
        // Checked before the clamp, which would turn an infinity into a plausible pixel.
        ensure_finite(&image, "flux: the decoded image")?;
        Ok(image.clamp(-1f32, 1f32)?)
    }

    /// The dtype the denoising runs in: the configured one, or f32 for a quantized transformer.
    fn work_dtype(&self) -> DType {
        match self.transformer {
            Transformer::Full(_) => self.dtype,
            Transformer::Quantized(_) => DType::F32,
        }
    }

    fn ids(tokenizer: &tokenizers::Tokenizer, prompt: &str) -> candle_core::Result<Vec<u32>> {
        Ok(tokenizer.encode(prompt, true).map_err(candle_core::Error::wrap)?.get_ids().to_vec())
    }

    fn encode_t5(&mut self, prompt: &str) -> candle_core::Result<Tensor> {
        let mut ids = Self::ids(&self.t5_tokenizer, prompt)?;
        // Cut as transformers' T5 tokenizer cuts (`truncation=True`): the end-of-sequence token
        // stays last. Then padded, as diffusers pads, to the sequence the transformer attends to.
        let tokens = ids.len();
        if fit_to_context(&mut ids, self.t5_tokens) {
            tracing::warn!(target: "vortex::model", event = "prompt_truncated", model = "flux.t5", tokens, "prompt cut to the T5 sequence length");
        }
        ids.resize(self.t5_tokens, self.t5_pad);
        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        self.t5.forward(&ids, self.dtype)
    }

    fn encode_clip(&self, prompt: &str) -> candle_core::Result<Tensor> {
        let mut ids = Self::ids(&self.clip_tokenizer, prompt)?;
        fit_to_context(&mut ids, self.clip_context);
        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        use candle_core::Module;
        self.clip.forward(&ids)?.to_dtype(self.dtype)
    }

    /// Noise of shape (1, z, 2·⌈px/16⌉, 2·⌈px/16⌉) from the seed's ChaCha stream.
    fn noise(&self, seed: u64) -> candle_core::Result<Tensor> {
        let side = self.image_px.div_ceil(16) * 2;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = self.z_channels * side * side;
        let data: Vec<f32> = (0..n).map(|_| rand_distr::StandardNormal.sample(&mut rng)).collect();
        Tensor::from_vec(data, (1, self.z_channels, side, side), &self.device)?.to_dtype(self.dtype)
    }
}

/// Bytes and tensor count of the whole pipeline once resident: the transformer and T5 at their
/// stored (quantized) sizes when GGUF, everything else in the configured dtype. Headers only.
pub fn resident_size(f: &FluxModelConfig, base_dir: &Path) -> Result<(u64, usize), LoadError> {
    let transformer = base_dir.join(&f.transformer);
    let (mut bytes, mut tensors) = if is_gguf(&transformer) {
        gguf_resident_bytes("flux", &transformer)?
    } else {
        let w = WeightsFile::inspect("flux", &transformer, PUBLISHED)?;
        (w.resident_bytes(f.dtype), w.tensors.len())
    };
    let t5: Vec<_> = f.t5.weights.0.iter().map(|p| base_dir.join(p)).collect();
    let t5_safetensors: Vec<&Path> = match t5.as_slice() {
        [one] if is_gguf(one) => {
            let (b, t) = gguf_resident_bytes("flux", one)?;
            bytes += b;
            tensors += t;
            Vec::new()
        }
        many => many.iter().map(PathBuf::as_path).collect(),
    };
    let vae = base_dir.join(&f.vae);
    let clip: Vec<_> = f.clip.weights.0.iter().map(|p| base_dir.join(p)).collect();
    let clip: Vec<&Path> = clip.iter().map(PathBuf::as_path).collect();
    // Each part's shards are checked together, so a shard listed twice is refused rather than
    // counted twice.
    for part in [vec![vae.as_path()], t5_safetensors, clip] {
        for w in WeightsFile::inspect_shards("flux", &part, PUBLISHED)? {
            bytes += w.resident_bytes(f.dtype);
            tensors += w.tensors.len();
        }
    }
    Ok((bytes, tensors))
}

/// An image in [-1, 1], (1, 3, h, w), as 8-bit RGB.
fn to_frame(image: &Tensor) -> Result<Frame, ModelError> {
    let pixels = ((image + 1.0)? * 127.5)?.round()?.to_dtype(DType::U8)?.squeeze(0)?.permute((1, 2, 0))?;
    let (h, w, _) = pixels.dims3()?;
    let data = pixels.flatten_all()?.to_vec1::<u8>()?;
    Frame::from_raw(w as u32, h as u32, data)
        .ok_or_else(|| ModelError::Candle(candle_core::Error::Msg("decoded image has the wrong size".into())))
}
