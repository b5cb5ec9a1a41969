//! Verification: the dual CLIP ensemble (ViT-B/32 and ViT-L/14) scoring a video's keyframes
//! against the visual prompt.
//!
//! - Paper: Radford et al., *Learning Transferable Visual Models From Natural Language
//!   Supervision* (2021). Reference code: `transformers`' `CLIPModel`; the network itself is
//!   this crate's [`crate::clip_model`], loaded from the same checkpoint names.
//! - Each model: the keyframes are preprocessed as CLIP does (shortest side resized to the input
//!   size with a bicubic filter, center crop, per-channel normalisation), embedded, and each
//!   keyframe's cosine similarity with the prompt's embedding is kept.
//! - [`crate::verification`] rescales them to CLIPScore and combines the two models' scores into
//!   the self-check's verdict.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::ClipVisionConfig;
use candle_transformers::models::clip::ClipConfig;
use serde::Deserialize;

use crate::config::ClipModelConfig;
use crate::executor::{ensure_finite, CancelToken, ModelError};
use crate::hf::{check_tower, text_config, HfTower, Tower};
use crate::loading::{candle_dtype, fit_to_context, from_json, mmap_safetensors, read_json_value, tokenizer};
use crate::loading::{check_layers, JsonBounds, LayerCount};
use crate::media::Frame;
use crate::weights::WeightsFile;
use crate::LoadError;

/// Where CLIP ViT-B/32 is published.
pub const B32_PUBLISHED: &str =
    "CLIP ViT-B/32 is published as openai/clip-vit-base-patch32 on Hugging Face (model.safetensors, tokenizer.json, config.json)";
/// Where CLIP ViT-L/14 is published.
pub const L14_PUBLISHED: &str =
    "CLIP ViT-L/14 is published as openai/clip-vit-large-patch14 on Hugging Face (model.safetensors, tokenizer.json, config.json)";

/// CLIP's per-channel pixel mean.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel pixel standard deviation.
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// The token CLIP ends every text with; its id must be the largest, since the text tower pools
/// at the position of the largest id.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The architecture, as Hugging Face's `config.json` gives it (the fields candle needs).
#[derive(Debug, Clone, Deserialize)]
#[serde(expecting = "a CLIP config.json (text_config, vision_config, projection_dim)")]
pub struct HfClipConfig {
    /// Text tower.
    pub text_config: HfTower,
    /// Vision tower.
    pub vision_config: HfTower,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
    /// Initial value of the logit scale (unused for scoring).
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f32,
}

fn default_logit_scale() -> f32 {
    2.6592
}

impl HfClipConfig {
    /// Reads `config.json`; every size is checked against its limit before it reaches the
    /// network (see [`crate::hf::check_tower`]).
    pub fn load(model: &str, path: &Path, published: &'static str) -> Result<Self, LoadError> {
        let value = read_json_value(model, path, published)?;
        let bounds = JsonBounds::new(model, path, &value, published);
        check_tower(&bounds, "text_config.", Tower::Text)?;
        check_tower(&bounds, "vision_config.", Tower::Vision)?;
        bounds.uint("projection_dim", 1, crate::hf::MAX_WIDTH)?;
        let cfg: HfClipConfig = from_json(model, path, value, published)?;
        for (tower, t) in [("text_config", &cfg.text_config), ("vision_config", &cfg.vision_config)] {
            if t.hidden_act != "quick_gelu" {
                return Err(LoadError::file(
                    model,
                    path,
                    format!(
                        "key {tower}.hidden_act is \"{}\"; only quick_gelu is supported",
                        crate::loading::quote(&t.hidden_act)
                    ),
                    published,
                ));
            }
        }
        Ok(cfg)
    }

    /// The sizes of this crate's CLIP (`clip_model`).
    pub fn to_model_config(&self) -> crate::clip_model::ClipModelConfig {
        let tower = |t: &HfTower| crate::clip_model::TowerConfig {
            hidden_size: t.hidden_size,
            intermediate_size: t.intermediate_size,
            layers: t.num_hidden_layers,
            heads: t.num_attention_heads,
        };
        crate::clip_model::ClipModelConfig {
            text: tower(&self.text_config),
            vision: tower(&self.vision_config),
            vocab_size: self.text_config.vocab_size.expect("checked on load"),
            max_positions: self.text_config.max_position_embeddings.expect("checked on load"),
            image_size: self.vision_config.image_size.expect("checked on load"),
            patch_size: self.vision_config.patch_size.expect("checked on load"),
            projection_dim: self.projection_dim,
        }
    }

    /// candle-transformers' config (its `ClipModel`, the reference the benchmark compares with).
    pub fn to_candle(&self) -> ClipConfig {
        let v = &self.vision_config;
        let image_size = v.image_size.expect("checked on load");
        ClipConfig {
            text_config: text_config(&self.text_config, self.projection_dim).expect("checked on load"),
            vision_config: ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: self.projection_dim,
                num_channels: 3,
                image_size,
                patch_size: v.patch_size.expect("checked on load"),
            },
            logit_scale_init_value: self.logit_scale_init_value,
            image_size,
        }
    }

    /// Tensor names the weights must hold. candle would fill a missing class embedding with
    /// random numbers, so it is checked here, with every layer's projections.
    pub fn expected_tensors(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            "text_model.embeddings.token_embedding.weight",
            "text_model.embeddings.position_embedding.weight",
            "text_model.final_layer_norm.weight",
            "vision_model.embeddings.class_embedding",
            "vision_model.embeddings.patch_embedding.weight",
            "vision_model.embeddings.position_embedding.weight",
            "vision_model.pre_layrnorm.weight",
            "vision_model.post_layernorm.weight",
            "visual_projection.weight",
            "text_projection.weight",
        ]
        .map(String::from)
        .to_vec();
        for (tower, layers) in
            [("text_model", self.text_config.num_hidden_layers), ("vision_model", self.vision_config.num_hidden_layers)]
        {
            for i in 0..layers {
                for part in [
                    "self_attn.q_proj",
                    "self_attn.k_proj",
                    "self_attn.v_proj",
                    "self_attn.out_proj",
                    "mlp.fc1",
                    "mlp.fc2",
                ] {
                    names.push(format!("{tower}.encoder.layers.{i}.{part}.weight"));
                }
            }
        }
        names
    }
}

/// One loaded CLIP model with its tokenizer.
pub struct ClipEncoder {
    name: String,
    model: crate::clip_model::Clip,
    tokenizer: tokenizers::Tokenizer,
    end_of_text: u32,
    context: usize,
    image_size: usize,
    device: Device,
    dtype: DType,
}

/// A prompt's embedding and whether it had to be cut to fit.
pub struct TextEmbedding {
    /// L2-normalised, shape (1, projection_dim).
    pub embedding: Tensor,
    /// True when the prompt was longer than the context and was truncated.
    pub truncated: bool,
}

impl ClipEncoder {
    /// Loads one CLIP model from its files; `base_dir` resolves relative paths.
    pub fn load(
        model: &str,
        cfg: &ClipModelConfig,
        base_dir: &Path,
        device: &Device,
        published: &'static str,
    ) -> Result<ClipEncoder, LoadError> {
        let (weights_path, config_path, tokenizer_path) =
            (base_dir.join(&cfg.weights), base_dir.join(&cfg.config), base_dir.join(&cfg.tokenizer));
        let arch = HfClipConfig::load(model, &config_path, published)?;
        let weights = WeightsFile::inspect(model, &weights_path, published)?;
        let layers = [
            LayerCount {
                key: "text_config.num_hidden_layers",
                configured: arch.text_config.num_hidden_layers,
                prefix: "text_model.encoder.layers.",
            },
            LayerCount {
                key: "vision_config.num_hidden_layers",
                configured: arch.vision_config.num_hidden_layers,
                prefix: "vision_model.encoder.layers.",
            },
        ];
        let names = weights.tensors.keys().map(String::as_str);
        check_layers(model, &config_path, &weights_path, names, &layers, published)?;
        weights.require(model, &arch.expected_tensors(), published)?;
        let tokenizer = tokenizer(model, &tokenizer_path, published)?;
        let end_of_text = tokenizer
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| LoadError::file(model, &tokenizer_path, format!("has no {END_OF_TEXT} token"), published))?;
        let vocab = arch.text_config.vocab_size.expect("checked on load");
        if end_of_text as usize + 1 != vocab {
            return Err(LoadError::file(
                model,
                &tokenizer_path,
                format!("{END_OF_TEXT} must be the last id ({}), got {end_of_text}", vocab - 1),
                published,
            ));
        }
        let dtype = candle_dtype(cfg.dtype);
        let (vb, _) = mmap_safetensors(model, &[&weights_path], dtype, device, published)?;
        let model_cfg = arch.to_model_config();
        let clip = crate::clip_model::Clip::new(&model_cfg, vb).map_err(|e| {
            LoadError::file(
                model,
                &weights_path,
                format!("does not fit the architecture in {}: {e}", config_path.display()),
                published,
            )
        })?;
        Ok(ClipEncoder {
            name: model.to_string(),
            model: clip,
            tokenizer,
            end_of_text,
            context: model_cfg.max_positions,
            image_size: model_cfg.image_size,
            device: device.clone(),
            dtype,
        })
    }

    /// Token ids of a prompt, cut to the context (the end-of-text token kept last).
    pub fn tokenize(&self, prompt: &str) -> candle_core::Result<(Vec<u32>, bool)> {
        tokenize(&self.tokenizer, self.end_of_text, self.context, prompt)
    }

    /// The prompt's normalised embedding.
    pub fn embed_text(&self, prompt: &str) -> candle_core::Result<TextEmbedding> {
        let (ids, truncated) = self.tokenize(prompt)?;
        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let embedding = l2_normalize(&self.text_features(&ids)?)?;
        Ok(TextEmbedding { embedding, truncated })
    }

    /// Normalised embeddings of already preprocessed pixels, shape (n, 3, size, size).
    pub fn embed_pixels(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize(&self.image_features(pixels)?)
    }

    /// Normalised embeddings of frames, preprocessed as CLIP does.
    pub fn embed_frames(&self, frames: &[&Frame]) -> candle_core::Result<Tensor> {
        let pixels = preprocess(frames, self.image_size, &self.device)?;
        self.embed_pixels(&pixels)
    }

    /// Unnormalised image features of preprocessed pixels (the reference's
    /// `get_image_features`), f32.
    pub fn image_features(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        self.model.image_features(&pixels.to_dtype(self.dtype)?)?.to_dtype(DType::F32)
    }

    /// Unnormalised text features of token ids, shape (batch, len) (the reference's
    /// `get_text_features`), f32.
    pub fn text_features(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.model.text_features(ids)?.to_dtype(DType::F32)
    }

    /// The model's config key (`clip_b32`, `clip_l14`), as errors name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Input size in pixels.
    pub fn image_size(&self) -> usize {
        self.image_size
    }
}

/// A prompt's token ids as transformers' `CLIPTokenizer(prompt, truncation=True, max_length=77)`
/// gives them: start-of-text, the tokens, end-of-text; a prompt longer than the context is cut,
/// its end-of-text kept last. Returns the ids and whether the prompt was cut.
pub fn tokenize(
    tokenizer: &tokenizers::Tokenizer,
    end_of_text: u32,
    context: usize,
    prompt: &str,
) -> candle_core::Result<(Vec<u32>, bool)> {
    let encoding = tokenizer.encode(prompt, true).map_err(candle_core::Error::wrap)?;
    let mut ids = encoding.get_ids().to_vec();
    if ids.last() != Some(&end_of_text) {
        ids.push(end_of_text);
    }
    let truncated = fit_to_context(&mut ids, context);
    Ok((ids, truncated))
}

/// CLIP's preprocessing, as transformers' `CLIPImageProcessor` does it: the shortest side resized
/// to `size` and the other to `size × long / short` rounded down, with Pillow's bicubic filter;
/// a center crop; scaled to [0, 1]; normalised per channel. Returns (n, 3, size, size) f32.
pub fn preprocess(frames: &[&Frame], size: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(frames.len() * 3 * size * size);
    for frame in frames {
        let (w, h) = (frame.width() as u64, frame.height() as u64);
        let (short, long) = (w.min(h), w.max(h));
        let long_out = (size as u64 * long / short) as u32;
        let (nw, nh) = if w <= h { (size as u32, long_out) } else { (long_out, size as u32) };
        let resized = crate::media::resize_bicubic_like_pil(frame, nw, nh);
        let (x0, y0) = ((nw - size as u32) / 2, (nh - size as u32) / 2);
        for c in 0..3 {
            for y in 0..size as u32 {
                for x in 0..size as u32 {
                    let v = resized.get_pixel(x0 + x, y0 + y)[c] as f32 / 255.0;
                    data.push((v - MEAN[c]) / STD[c]);
                }
            }
        }
    }
    Tensor::from_vec(data, (frames.len(), 3, size, size), device)
}

fn l2_normalize(v: &Tensor) -> candle_core::Result<Tensor> {
    v.broadcast_div(&v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// One model's scores of a video's keyframes.
#[derive(Debug, Clone)]
pub struct ModelScore {
    /// Each keyframe's raw cosine similarity with the prompt, in keyframe order; the verdict
    /// rescales them ([`crate::verification::mean_clip_score`]).
    pub cosines: Vec<f64>,
    /// Mean keyframe embedding, L2-normalised.
    pub mean_embedding: Vec<f32>,
    /// True when the prompt was cut to the context.
    pub truncated: bool,
}

/// Scores keyframes against a prompt with one model; checks the token between units of work.
pub fn score(
    encoder: &ClipEncoder,
    prompt: &str,
    frames: &[&Frame],
    cancel: &CancelToken,
) -> Result<ModelScore, ModelError> {
    cancel.check()?;
    let text = encoder.embed_text(prompt)?;
    cancel.check()?;
    let images = encoder.embed_frames(frames)?;
    ensure_finite(&text.embedding, &format!("{}: the prompt's embedding", encoder.name))?;
    ensure_finite(&images, &format!("{}: the keyframes' embeddings", encoder.name))?;
    let sims = images.matmul(&text.embedding.t()?)?.squeeze(1)?.to_vec1::<f32>()?;
    let cosines = sims.iter().map(|&s| s as f64).collect();
    let mean = l2_normalize(&images.mean_keepdim(0)?)?.squeeze(0)?.to_vec1::<f32>()?;
    Ok(ModelScore { cosines, mean_embedding: mean, truncated: text.truncated })
}

/// Bytes and tensor count of one CLIP model once resident (read from its header only).
pub fn resident_size(
    name: &str,
    entry: &ClipModelConfig,
    base_dir: &Path,
    published: &'static str,
) -> Result<(u64, usize), LoadError> {
    let weights = WeightsFile::inspect(name, &base_dir.join(&entry.weights), published)?;
    Ok((weights.resident_bytes(entry.dtype), weights.tensors.len()))
}
