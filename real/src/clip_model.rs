//! CLIP's two transformer towers (Radford et al., 2021; reference: transformers' `CLIPModel`),
//! loaded from the Hugging Face checkpoint names and written for the CPU, where the self-check
//! runs when there is no GPU:
//!
//! - q, k and v are one matrix product (their weights concatenated at load), with the attention
//!   scale folded into q's weights;
//! - softmax is candle's one-pass, row-parallel `softmax_last_dim`;
//! - quick GELU (`x · σ(1.702 x)`) is one parallel pass on the CPU instead of three;
//! - the patch embedding (a convolution whose stride is its kernel) is one matrix product.
//!
//! The numbers are the reference's: `real/tests/clip_parity.rs` and `real/tests/parity_shapes.rs`
//! hold this file to transformers within 1e-4 (f32).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use rayon::prelude::*;

/// The sizes of one tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TowerConfig {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
}

/// The sizes of a CLIP model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipModelConfig {
    /// The text tower.
    pub text: TowerConfig,
    /// The vision tower.
    pub vision: TowerConfig,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Text context (77).
    pub max_positions: usize,
    /// Input image side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
}

/// CLIP: text and image features in the shared space (unnormalised, as `get_*_features`).
#[derive(Debug, Clone)]
pub struct Clip {
    text: TextTower,
    vision: VisionTower,
    text_projection: Linear,
    visual_projection: Linear,
}

impl Clip {
    /// Loads from a checkpoint with transformers' names (`text_model.*`, `vision_model.*`,
    /// `text_projection`, `visual_projection`).
    pub fn new(cfg: &ClipModelConfig, vb: VarBuilder) -> Result<Clip> {
        Ok(Clip {
            text: TextTower::new(cfg, vb.pp("text_model"))?,
            vision: VisionTower::new(cfg, vb.pp("vision_model"))?,
            text_projection: linear_no_bias(cfg.text.hidden_size, cfg.projection_dim, vb.pp("text_projection"))?,
            visual_projection: linear_no_bias(cfg.vision.hidden_size, cfg.projection_dim, vb.pp("visual_projection"))?,
        })
    }

    /// Text features of token ids (batch, len): the final state at the first largest id (the
    /// end-of-text token, as in OpenAI's configuration), projected.
    pub fn text_features(&self, ids: &Tensor) -> Result<Tensor> {
        self.text_projection.forward(&self.text.pooled(ids)?)
    }

    /// Image features of preprocessed pixels (batch, 3, size, size): the class token's final
    /// state, projected.
    pub fn image_features(&self, pixels: &Tensor) -> Result<Tensor> {
        self.visual_projection.forward(&self.vision.pooled(pixels)?)
    }
}

/// A linear layer whose weight is stored transposed, (in, out) and contiguous, so that the
/// matrix product reads it row by row (candle's `Linear` keeps PyTorch's (out, in) and reads it
/// through a transposed view, which gemm repacks on every call).
#[derive(Debug, Clone)]
struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// From PyTorch's (out, in) weight.
    fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        Ok(Linear { weight_t: weight.t()?.contiguous()?, bias })
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "openblas")]
        if xs.device().is_cpu() && xs.dtype() == DType::F32 {
            return crate::blas::linear(&xs.contiguous()?, &self.weight_t, self.bias.as_ref());
        }
        let out = xs.broadcast_matmul(&self.weight_t)?;
        match &self.bias {
            Some(b) => out.broadcast_add(b),
            None => Ok(out),
        }
    }
}

fn linear_no_bias(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(vb.get((output, input), "weight")?, None)
}

fn linear(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(vb.get((output, input), "weight")?, Some(vb.get(output, "bias")?))
}

fn layer_norm(size: usize, vb: VarBuilder) -> Result<LayerNorm> {
    // CLIP's layer norms use epsilon 1e-5.
    Ok(LayerNorm::new(vb.get(size, "weight")?, vb.get(size, "bias")?, 1e-5))
}

#[derive(Debug, Clone)]
struct TextTower {
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
}

impl TextTower {
    fn new(cfg: &ClipModelConfig, vb: VarBuilder) -> Result<TextTower> {
        let d = cfg.text.hidden_size;
        let e = vb.pp("embeddings");
        Ok(TextTower {
            token_embedding: e.get((cfg.vocab_size, d), "token_embedding.weight")?,
            position_embedding: e.get((cfg.max_positions, d), "position_embedding.weight")?,
            layers: layers(&cfg.text, vb.pp("encoder.layers"))?,
            final_layer_norm: layer_norm(d, vb.pp("final_layer_norm"))?,
        })
    }

    fn pooled(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let tokens = self.token_embedding.index_select(&ids.flatten_all()?, 0)?.reshape((batch, len, ()))?;
        let mut xs = tokens.broadcast_add(&self.position_embedding.narrow(0, 0, len)?)?;
        let mask = causal_mask(len, xs.dtype(), xs.device())?;
        for layer in &self.layers {
            xs = layer.forward(&xs, Some(&mask))?;
        }
        let xs = self.final_layer_norm.forward(&xs)?;
        // The first position of the largest id in each row (OpenAI's end-of-text is the largest).
        let ids = ids.to_vec2::<u32>()?;
        let rows: Vec<Tensor> = ids
            .iter()
            .enumerate()
            .map(|(b, row)| {
                let max = row.iter().copied().max().unwrap_or(0);
                let at = row.iter().position(|&id| id == max).unwrap_or(0);
                xs.get(b)?.get(at)
            })
            .collect::<Result<_>>()?;
        Tensor::stack(&rows, 0)
    }
}

/// 0 on and below the diagonal, -inf above: each token attends to itself and those before it.
fn causal_mask(len: usize, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    let mask: Vec<f32> =
        (0..len).flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (len, len), device)?.to_dtype(dtype)
}

#[derive(Debug, Clone)]
struct VisionTower {
    patch_embedding: Linear,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layernorm: LayerNorm,
    layers: Vec<Layer>,
    post_layernorm: LayerNorm,
    patch_size: usize,
}

impl VisionTower {
    fn new(cfg: &ClipModelConfig, vb: VarBuilder) -> Result<VisionTower> {
        let (d, p) = (cfg.vision.hidden_size, cfg.patch_size);
        let e = vb.pp("embeddings");
        let patches = (cfg.image_size / p).pow(2);
        // The convolution's kernel as a (d, 3·p·p) matrix: the same sums, one product.
        let patch_embedding =
            Linear::new(e.get((d, 3, p, p), "patch_embedding.weight")?.reshape((d, 3 * p * p))?, None)?;
        Ok(VisionTower {
            patch_embedding,
            class_embedding: e.get(d, "class_embedding")?,
            position_embedding: e.get((patches + 1, d), "position_embedding.weight")?,
            // transformers' spelling.
            pre_layernorm: layer_norm(d, vb.pp("pre_layrnorm"))?,
            layers: layers(&cfg.vision, vb.pp("encoder.layers"))?,
            post_layernorm: layer_norm(d, vb.pp("post_layernorm"))?,
            patch_size: p,
        })
    }

    fn pooled(&self, pixels: &Tensor) -> Result<Tensor> {
        let (batch, channels, h, w) = pixels.dims4()?;
        let p = self.patch_size;
        let (gh, gw) = (h / p, w / p);
        // (b, c, gh, p, gw, p) -> (b, gh, gw, c, p, p): each patch's pixels in the kernel's order.
        let patches = pixels
            .reshape((batch, channels, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((batch, gh * gw, channels * p * p))?;
        let embedded = self.patch_embedding.forward(&patches)?;
        let d = self.class_embedding.dim(0)?;
        let class = self.class_embedding.reshape((1, 1, d))?.broadcast_as((batch, 1, d))?;
        let xs = Tensor::cat(&[&class, &embedded], 1)?.broadcast_add(&self.position_embedding)?;
        let mut xs = self.pre_layernorm.forward(&xs)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, None)?;
        }
        self.post_layernorm.forward(&xs.narrow(1, 0, 1)?.squeeze(1)?)
    }
}

fn layers(cfg: &TowerConfig, vb: VarBuilder) -> Result<Vec<Layer>> {
    (0..cfg.layers).map(|i| Layer::new(cfg, vb.pp(i))).collect()
}

/// One pre-norm transformer layer: x + attention(ln1(x)), then + mlp(ln2(·)).
#[derive(Debug, Clone)]
struct Layer {
    layer_norm1: LayerNorm,
    qkv: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn new(cfg: &TowerConfig, vb: VarBuilder) -> Result<Layer> {
        let d = cfg.hidden_size;
        let a = vb.pp("self_attn");
        let scale = ((d / cfg.heads) as f64).powf(-0.5);
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            let p = a.pp(name);
            Ok((p.get((d, d), "weight")?, p.get(d, "bias")?))
        };
        let ((qw, qb), (kw, kb), (vw, vb_)) = (part("q_proj")?, part("k_proj")?, part("v_proj")?);
        // q · k scaled equals (scale · q) · k: folded into q's weights once.
        let weight = Tensor::cat(&[&(qw * scale)?, &kw, &vw], 0)?;
        let b = Tensor::cat(&[&(qb * scale)?, &kb, &vb_], 0)?;
        let m = vb.pp("mlp");
        Ok(Layer {
            layer_norm1: layer_norm(d, vb.pp("layer_norm1"))?,
            qkv: Linear::new(weight, Some(b))?,
            out_proj: linear(d, d, a.pp("out_proj"))?,
            layer_norm2: layer_norm(d, vb.pp("layer_norm2"))?,
            fc1: linear(d, cfg.intermediate_size, m.pp("fc1"))?,
            fc2: linear(cfg.intermediate_size, d, m.pp("fc2"))?,
            heads: cfg.heads,
        })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = (xs + self.attention(&self.layer_norm1.forward(xs)?, mask)?)?;
        let mlp = self.fc2.forward(&quick_gelu(&self.fc1.forward(&self.layer_norm2.forward(&h)?)?)?)?;
        h + mlp
    }

    fn attention(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (batch, len, d) = xs.dims3()?;
        let head_dim = d / self.heads;
        // (b, s, 3, heads, hd) -> (3, b, heads, s, hd)
        let qkv = self.qkv.forward(xs)?.reshape((batch, len, 3, self.heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
        // (batch · heads, len, head_dim) each.
        let part = |i: usize| qkv.get(i)?.contiguous()?.reshape((batch * self.heads, len, head_dim));
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = products::scores(&q, &k)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = products::weighted(&weights, &v)?;
        let out = out.reshape((batch, self.heads, len, head_dim))?.transpose(1, 2)?.reshape((batch, len, d))?;
        self.out_proj.forward(&out)
    }
}

/// `x · σ(1.702 x)`: one parallel pass over f32 on the CPU, candle's primitives elsewhere.
fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 {
        xs.contiguous()?.apply_op1_no_bwd(&QuickGelu)
    } else {
        xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?
    }
}

struct QuickGelu;

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "quick-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("quick-gelu: f32 only on the CPU path") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("quick-gelu: not contiguous") };
        let out: Vec<f32> =
            data[start..end].par_iter().with_min_len(4096).map(|&x| x / (1.0 + (-1.702 * x).exp())).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Attention's per-head products: through OpenBLAS, one head per task, with the `openblas`
/// feature on the CPU; candle's batched matmul otherwise.
mod products {
    use candle_core::{Result, Tensor};

    /// q · kᵀ per head: (n, len, d) and (n, len, d) to (n, len, len).
    pub fn scores(q: &Tensor, k: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "openblas")]
        if q.device().is_cpu() && q.dtype() == candle_core::DType::F32 {
            return crate::blas::batched_matmul(q, k, true);
        }
        q.matmul(&k.t()?)
    }

    /// weights · v per head: (n, len, len) and (n, len, d) to (n, len, d).
    pub fn weighted(weights: &Tensor, v: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "openblas")]
        if weights.device().is_cpu() && weights.dtype() == candle_core::DType::F32 {
            return crate::blas::batched_matmul(&weights.contiguous()?, v, false);
        }
        weights.matmul(v)
    }
}
