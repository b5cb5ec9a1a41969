//! Tiny random-weight models for smoke tests, in the production file layout: every real stage's
//! model (both CLIPs, Flux, Kokoro with voices, LivePortrait) at fifty thousand to a million
//! parameters, loaded by the same code as the published models (through their `config.json` /
//! architecture files), so that `vortex run`, `vortex serve` and the tests run whole slots on a
//! CPU in about a second. They are not models: every image, voice and frame they make is noise.
//!
//! Weights come from the counter generator ([`counter_values`]): each value is a pure function
//! of (seed, tensor name, element index), so a seed gives byte-identical files on any machine,
//! and `tools/counter_weights.py` makes the same values in PyTorch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::config::{
    ClipModelConfig, Config, DenoiseSteps, FluxModelConfig, ImagePx, KokoroModelConfig, LivePortraitModelConfig,
    ModelDtype, ModelsConfig, T5Tokens, TextEncoderFiles,
};
use crate::kokoro::{albert, architecture as kokoro_architecture, decoder, model as kokoro_model, voices};
use crate::liveportrait::{
    appearance, architecture as lp_architecture, motion, pipeline as lp, spade, stitching, warping,
};

/// What `vortex models tiny` and every file it writes say about these models.
pub const NOTICE: &str = "random weights for smoke tests, not models: every image, voice and frame they make is noise";

/// The voices written: the one recipes default to and two more (docs/recipes.md).
pub const VOICES: [&str; 3] = ["af_heart", "am_adam", "bf_emma"];

fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64's finaliser: the counter generator's mixing function.
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The counter generator's uniform numbers in [-1, 1) for `name`: `u_i` of element `i`.
pub fn counter_uniform(seed: u64, name: &str, n: usize) -> impl Iterator<Item = f64> {
    let h = fnv1a64(name) ^ seed;
    (0..n as u64).map(move |i| (splitmix64(h.wrapping_add(i)) >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0)
}

/// The f32 values of tensor `name` with `dims`: `h = fnv1a64(name) ^ seed`,
/// `u_i = (splitmix64(h + i) >> 11) · 2⁻⁵³ · 2 − 1`; rank-1 tensors named `…weight`, `…scale`
/// (norm gains) or `…running_var` (batch norm's variances, which must be positive) get
/// `1 + 0.1 u`, other rank-1 tensors (biases) `0.1 u`, rank ≥ 2 `u · √(3 / fan_in)` with
/// `fan_in` the product of all dims but the first; computed in f64, rounded to f32.
pub fn counter_values(seed: u64, name: &str, dims: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let scale = if dims.len() >= 2 { (3.0 / dims[1..].iter().product::<usize>() as f64).sqrt() } else { 0.0 };
    let gain = name.ends_with("weight") || name.ends_with("scale") || name.ends_with("running_var");
    counter_uniform(seed, name, n)
        .map(|u| {
            let v = match dims.len() {
                1 if gain => 1.0 + 0.1 * u,
                1 => 0.1 * u,
                _ => u * scale,
            };
            v as f32
        })
        .collect()
}

/// A weights backend that draws every tensor a model asks for from the counter generator and
/// keeps it, so that the model built over it can be written out ([`RecordedWeights::save`]).
/// It claims to hold every name, so a model's optional tensors are the ones it asks for first.
#[derive(Clone)]
pub struct RecordedWeights {
    seed: u64,
    tensors: Arc<Mutex<BTreeMap<String, Tensor>>>,
}

impl RecordedWeights {
    /// An empty record drawing with `seed`.
    pub fn new(seed: u64) -> Self {
        RecordedWeights { seed, tensors: Arc::default() }
    }

    /// A `VarBuilder` over this record (f32, CPU).
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// Writes the tensors asked for so far as one safetensors file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tensors = self.tensors.lock().expect("not poisoned").clone();
        candle_core::safetensors::save(&tensors.into_iter().collect(), path)
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl SimpleBackend for RecordedWeights {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut tensors = self.tensors.lock().expect("not poisoned");
        if let Some(t) = tensors.get(name) {
            if t.dims() != s.dims() {
                candle_core::bail!("{name} asked for as {s:?} and as {:?}", t.dims());
            }
            return t.to_dtype(dtype)?.to_device(dev);
        }
        let t = Tensor::from_vec(counter_values(self.seed, name, s.dims()), s, &Device::Cpu)?;
        tensors.insert(name.to_string(), t.clone());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.lock().expect("not poisoned").get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("the counter generator needs a shape for {name}"),
        }
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Each model's own stream: the setup's seed mixed with the model's name.
fn seed_for(seed: u64, model: &str) -> u64 {
    splitmix64(seed ^ fnv1a64(model))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// A tiny CLIP `config.json`: vocabulary 100, widths 32, 2 layers, 32 × 32 images in 8 × 8
/// patches, projection 16; `context` text tokens.
pub fn clip_config_json(context: usize) -> String {
    format!(
        r#"{{"projection_dim": 16,
  "text_config": {{"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": {context}, "hidden_act": "quick_gelu"}},
  "vision_config": {{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu"}}}}"#
    )
}

/// A word-level `tokenizer.json`: `<unk>` = 0, `w1`..`w97` = 1..97, `<|startoftext|>` = 98 and
/// `<|endoftext|>` = 99 (the largest id, as in CLIP), added around every text. Any other word is
/// `<unk>`.
pub fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for i in 1..98 {
        vocab.insert(format!("w{i}"), i.into());
    }
    vocab.insert("<|startoftext|>".into(), 98.into());
    vocab.insert("<|endoftext|>".into(), 99.into());
    let special = |t: &str, id: u32| serde_json::json!({"id": t, "ids": [id], "tokens": [t]});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|startoftext|>": special("<|startoftext|>", 98), "<|endoftext|>": special("<|endoftext|>", 99)}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// Writes a tiny CLIP (weights, `config.json`, `tokenizer.json`) into `dir/name/` and returns
/// its entry (paths under `dir`); `context` is the text context length.
pub fn write_clip(dir: &Path, name: &str, context: usize, seed: u64) -> anyhow::Result<ClipModelConfig> {
    let root = dir.join(name);
    create_dir(&root)?;
    let config_json = clip_config_json(context);
    write(&root.join("config.json"), &config_json)?;
    write(&root.join("tokenizer.json"), &tokenizer_json())?;
    let arch: crate::clip::HfClipConfig = serde_json::from_str(&config_json)?;
    let weights = RecordedWeights::new(seed_for(seed, name));
    candle_transformers::models::clip::ClipModel::new(weights.var_builder(), &arch.to_candle())?;
    weights.save(&root.join("model.safetensors"))?;
    Ok(ClipModelConfig {
        weights: root.join("model.safetensors"),
        tokenizer: root.join("tokenizer.json"),
        config: root.join("config.json"),
        dtype: ModelDtype::F32,
    })
}

/// Writes a tiny Flux (transformer, autoencoder, T5 and CLIP-L text encoders, their
/// architectures and tokenizer) into `dir/flux/` and returns its entry: 64 × 64 images in 4 steps.
pub fn write_flux(dir: &Path, seed: u64) -> anyhow::Result<FluxModelConfig> {
    use candle_transformers::models::clip::text_model::ClipTextTransformer;
    use candle_transformers::models::flux::autoencoder::{AutoEncoder, Config as VaeConfig};
    use candle_transformers::models::flux::model::{Config as FluxConfig, Flux};
    use candle_transformers::models::t5;

    let root = dir.join("flux");
    create_dir(&root)?;
    let save = |name: &str, build: &dyn Fn(VarBuilder) -> candle_core::Result<()>| -> anyhow::Result<()> {
        let weights = RecordedWeights::new(seed_for(seed, &format!("flux/{name}")));
        build(weights.var_builder())?;
        weights.save(&root.join(name))
    };

    let arch = r#"{"in_channels": 64, "vec_in_dim": 32, "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 2.0,
        "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000, "qkv_bias": true}"#;
    write(&root.join("transformer.json"), arch)?;
    let flux_cfg = FluxConfig {
        in_channels: 64,
        vec_in_dim: 32,
        context_in_dim: 32,
        hidden_size: 64,
        mlp_ratio: 2.0,
        num_heads: 2,
        depth: 1,
        depth_single_blocks: 1,
        axes_dim: vec![8, 12, 12],
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: false,
    };
    save("transformer.safetensors", &|vb| Flux::new(&flux_cfg, vb).map(|_| ()))?;

    let vae_json = r#"{"resolution": 64, "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 16,
        "scale_factor": 0.3611, "shift_factor": 0.1159}"#;
    write(&root.join("vae.json"), vae_json)?;
    let vae_cfg = VaeConfig {
        resolution: 64,
        in_channels: 3,
        ch: 32,
        out_ch: 3,
        ch_mult: vec![1, 1, 1, 1],
        num_res_blocks: 1,
        z_channels: 16,
        scale_factor: 0.3611,
        shift_factor: 0.1159,
    };
    save("ae.safetensors", &|vb| AutoEncoder::new(&vae_cfg, vb).map(|_| ()))?;

    let t5_json = r#"{"vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4,
        "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "dropout_rate": 0.0,
        "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
        "is_encoder_decoder": true, "tie_word_embeddings": false, "pad_token_id": 0, "eos_token_id": 1}"#;
    write(&root.join("t5.json"), t5_json)?;
    let t5_cfg: t5::Config = serde_json::from_str(t5_json)?;
    save("t5.safetensors", &|vb| t5::T5EncoderModel::load(vb, &t5_cfg).map(|_| ()))?;

    let clip_json = r#"{"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu"}"#;
    write(&root.join("clip.json"), clip_json)?;
    let tower: crate::hf::HfTower = serde_json::from_str(clip_json)?;
    let clip_cfg = crate::hf::text_config(&tower, 32).map_err(anyhow::Error::msg)?;
    save("clip.safetensors", &|vb| ClipTextTransformer::new(vb.pp("text_model"), &clip_cfg).map(|_| ()))?;
    write(&root.join("tokenizer.json"), &tokenizer_json())?;

    let files = |weights: &str, config: &str| TextEncoderFiles {
        weights: root.join(weights).into(),
        config: root.join(config),
        tokenizer: root.join("tokenizer.json"),
    };
    Ok(FluxModelConfig {
        transformer: root.join("transformer.safetensors"),
        transformer_config: Some(root.join("transformer.json")),
        vae: root.join("ae.safetensors"),
        vae_config: Some(root.join("vae.json")),
        t5: files("t5.safetensors", "t5.json"),
        clip: files("clip.safetensors", "clip.json"),
        dtype: ModelDtype::F32,
        image_px: ImagePx::new(64).map_err(anyhow::Error::msg)?,
        steps: DenoiseSteps::new(4).map_err(anyhow::Error::msg)?,
        t5_tokens: T5Tokens::new(16).map_err(anyhow::Error::msg)?,
    })
}

/// Kokoro's shape at small widths (its full size is checked against PyTorch in
/// `real/tests/kokoro_e2e.rs`); `max_dur` 6 keeps random-weight durations near 3 frames (75 ms)
/// per phoneme.
pub fn kokoro_config() -> kokoro_model::Config {
    kokoro_model::Config {
        hidden_dim: 32,
        n_layer: 2,
        max_dur: 6,
        plbert: albert::Config {
            embedding_size: 16,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            ..albert::Config::kokoro()
        },
        istftnet: decoder::Config {
            resblock_kernel_sizes: vec![3],
            resblock_dilation_sizes: vec![vec![1, 3, 5]],
            upsample_initial_channel: 32,
            decode_width: 64,
            ..decoder::Config::kokoro()
        },
        ..kokoro_model::Config::kokoro_v1()
    }
}

/// Writes a tiny Kokoro into `dir/kokoro/`: `kokoro.safetensors`, its `config.json`, and
/// `voices/NAME.bin` for each of [`VOICES`] (510 × 256 values from -0.1 to 0.1). Its frames are
/// 5 ms (upsampling 4 × 3 instead of 10 × 6) and a phoneme lasts about 1.3 of them (`max_dur`
/// 2): a script's audio, and so the video's frame count, is a fifth of a real voice's, which
/// keeps a slot near a second in a debug build.
pub fn write_kokoro(dir: &Path, seed: u64) -> anyhow::Result<KokoroModelConfig> {
    let root = dir.join("kokoro");
    create_dir(&root.join("voices"))?;
    let small = kokoro_config();
    let cfg = kokoro_model::Config {
        max_dur: 2,
        istftnet: decoder::Config {
            upsample_rates: vec![4, 3],
            upsample_kernel_sizes: vec![8, 5],
            ..small.istftnet.clone()
        },
        ..small
    };
    write(&root.join("config.json"), &kokoro_architecture::to_json(&cfg))?;
    let weights = RecordedWeights::new(seed_for(seed, "kokoro"));
    kokoro_model::Kokoro::new(&cfg, weights.var_builder())?;
    weights.save(&root.join("kokoro.safetensors"))?;
    for voice in VOICES {
        let bytes: Vec<u8> = counter_uniform(seed_for(seed, "kokoro/voices"), voice, voices::ROWS * voices::STYLE_DIM)
            .flat_map(|u| ((0.1 * u) as f32).to_le_bytes())
            .collect();
        std::fs::write(root.join("voices").join(format!("{voice}.bin")), bytes)
            .with_context(|| format!("writing the voice {voice}"))?;
    }
    Ok(KokoroModelConfig {
        weights: root.join("kokoro.safetensors"),
        architecture: Some(root.join("config.json")),
        voices: root.join("voices"),
        dtype: ModelDtype::F32,
    })
}

/// LivePortrait's shape for smoke tests: 32 × 32 crops, a 4 × 4 × 8 × 8 volume, 64 × 64 frames,
/// 4 keypoints (stitching, lip and eye MLPs sized to them): about 20 ms a frame in a debug build,
/// where the published 21 keypoints' dense motion alone takes 65.
pub fn liveportrait_config() -> lp::Config {
    let kp3 = 3 * 4;
    let mlp = |input_size, output_size| stitching::MlpConfig { input_size, hidden_sizes: vec![16, 16], output_size };
    lp::Config {
        appearance: appearance::Config {
            image_channel: 3,
            block_expansion: 8,
            num_down_blocks: 2,
            max_features: 16,
            reshape_channel: 4,
            reshape_depth: 4,
            num_resblocks: 1,
        },
        motion: motion::Config {
            num_kp: 4,
            depths: vec![1, 1, 1, 1],
            dims: vec![8, 8, 8, 16],
            ..motion::Config::liveportrait()
        },
        warping: warping::Config {
            num_kp: 4,
            block_expansion: 4,
            max_features: 16,
            num_down_blocks: 2,
            reshape_channel: 4,
            estimate_occlusion_map: true,
            dense_motion_params: warping::DenseMotionParams {
                block_expansion: 4,
                max_features: 16,
                num_blocks: 2,
                reshape_depth: 4,
                compress: 1,
            },
        },
        spade: spade::Config {
            upscale: 2,
            block_expansion: 4,
            max_features: 16,
            num_down_blocks: 2,
            hidden: 4,
            out_channels: 4,
        },
        stitching: stitching::Config {
            stitching: mlp(2 * kp3, kp3 + 2),
            lip: mlp(kp3 + 2, kp3),
            eye: mlp(kp3 + 3, kp3),
        },
        input_size: 32,
    }
}

/// Writes a tiny LivePortrait into `dir/liveportrait/`: the five checkpoints as safetensors in
/// the published layout and `models.yaml`.
pub fn write_liveportrait(dir: &Path, seed: u64) -> anyhow::Result<LivePortraitModelConfig> {
    let root = dir.join("liveportrait");
    let cfg = liveportrait_config();
    create_dir(&root)?;
    write(&root.join("models.yaml"), &lp_architecture::to_yaml(&cfg))?;
    let files: [RecordedWeights; 5] =
        std::array::from_fn(|i| RecordedWeights::new(seed_for(seed, &format!("liveportrait/{}", lp::FILES[i].0))));
    let vbs = [0, 1, 2, 3, 4].map(|i| files[i].var_builder());
    lp::LivePortraitPipeline::new(cfg, vbs, 1)?;
    for (weights, (_, stem)) in files.iter().zip(lp::FILES) {
        let path = root.join(format!("{stem}.safetensors"));
        create_dir(path.parent().expect("a file under the folder"))?;
        weights.save(&path)?;
    }
    Ok(LivePortraitModelConfig {
        weights: root.clone(),
        architecture: Some(root.join("models.yaml")),
        dtype: ModelDtype::F32,
        batch_frames: crate::config::BatchFrames::new(8).map_err(anyhow::Error::msg)?,
    })
}

/// Every model of a slot, tiny, under `dir`, and the config naming them (paths under `dir`).
pub fn write_models(dir: &Path, seed: u64) -> anyhow::Result<ModelsConfig> {
    Ok(ModelsConfig {
        // The published CLIPs' context: a prompt the director accepts for them fits these too.
        clip_b32: Some(write_clip(dir, "clip_b32", 77, seed)?),
        clip_l14: Some(write_clip(dir, "clip_l14", 77, seed)?),
        // T5 holds 64 tokens here, so that an ordinary prompt is not cut (and warned about).
        flux: Some(FluxModelConfig {
            t5_tokens: T5Tokens::new(64).map_err(anyhow::Error::msg)?,
            ..write_flux(dir, seed)?
        }),
        kokoro: Some(write_kokoro(dir, seed)?),
        liveportrait: Some(write_liveportrait(dir, seed)?),
    })
}

/// `path` relative to `dir` (the models are written under it).
fn relative(path: &mut PathBuf, dir: &Path) {
    if let Ok(rest) = path.strip_prefix(dir) {
        *path = rest.to_path_buf();
    }
}

/// The config of a tiny setup: production orchestration, device cpu, `models` with paths
/// relative to the config's folder, and the self-check's thresholds at their lowest, so that
/// every finished clip passes (random CLIPs score noise).
fn setup_config(dir: &Path, mut models: ModelsConfig) -> anyhow::Result<Config> {
    for clip in [models.clip_b32.as_mut(), models.clip_l14.as_mut()].into_iter().flatten() {
        for p in [&mut clip.weights, &mut clip.tokenizer, &mut clip.config] {
            relative(p, dir);
        }
    }
    if let Some(f) = models.flux.as_mut() {
        for p in [
            &mut f.transformer,
            &mut f.vae,
            &mut f.t5.config,
            &mut f.t5.tokenizer,
            &mut f.clip.config,
            &mut f.clip.tokenizer,
        ] {
            relative(p, dir);
        }
        for p in f.transformer_config.iter_mut().chain(f.vae_config.iter_mut()) {
            relative(p, dir);
        }
        for p in f.t5.weights.0.iter_mut().chain(f.clip.weights.0.iter_mut()) {
            relative(p, dir);
        }
    }
    if let Some(k) = models.kokoro.as_mut() {
        for p in [&mut k.weights, &mut k.voices].into_iter().chain(k.architecture.iter_mut()) {
            relative(p, dir);
        }
    }
    if let Some(l) = models.liveportrait.as_mut() {
        for p in std::iter::once(&mut l.weights).chain(l.architecture.iter_mut()) {
            relative(p, dir);
        }
    }
    let mut config = Config::from_yaml_str("the tiny setup", "orchestration: {}\n")?;
    config.models = models;
    let lowest = |what: &str| {
        serde_json::from_value(serde_json::json!(0.0)).with_context(|| format!("the lowest {what} threshold"))
    };
    config.verification.b32_min = lowest("b32_min")?;
    config.verification.l14_min = lowest("l14_min")?;
    Ok(config)
}

/// Writes a complete tiny real-mode setup into `dir` (which must not exist, or be empty):
/// `config.yaml` and every model's files. All or nothing: everything is written into a scratch
/// folder beside `dir`, then renamed into place; on error nothing is left. Returns the
/// config's path.
pub fn write_setup(dir: &Path, seed: u64) -> anyhow::Result<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!("--out {}: the folder is not empty; give a new or empty folder", dir.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("--out {}: {e}", dir.display()),
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        anyhow::bail!("--out {}: its parent folder {} does not exist", dir.display(), parent.display());
    }
    let scratch = tempfile::Builder::new()
        .prefix(".vortex-tiny")
        .tempdir_in(parent)
        .with_context(|| format!("--out {}: cannot create a scratch folder in {}", dir.display(), parent.display()))?;
    let models = write_models(scratch.path(), seed)?;
    let config = setup_config(scratch.path(), models)?;
    let text = format!(
        "# Tiny real-mode setup written by `vortex models tiny --seed {seed}`: {NOTICE}.\n\
         # Every CLIP score passes (b32_min and l14_min at 0); raise them to 2.5 to fail every clip.\n{}",
        config.to_yaml()
    );
    // The file must read back as the config it was written from.
    Config::from_yaml_str("the tiny config", &text)?;
    write(&scratch.path().join("config.yaml"), &text)?;
    if dir.exists() {
        // Empty, checked above; rename cannot replace a folder on every platform.
        std::fs::remove_dir(dir).with_context(|| format!("--out {}", dir.display()))?;
    }
    let kept = scratch.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow::anyhow!("--out {}: {e}", dir.display())
    })?;
    Ok(dir.join("config.yaml"))
}
