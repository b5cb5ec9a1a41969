//! LivePortrait's SPADE generator G: the warped 256 × 64 × 64 feature map to a 512 × 512 RGB
//! frame. Mirrors the reference's `SPADEDecoder` (`src/modules/spade_generator.py`) with its
//! `SPADEResnetBlock` and `SPADE` (`src/modules/util.py`, norm `spadespectralinstance`).
//!
//! - `fc`: a 3 × 3 convolution, 256 → 512 channels;
//! - six `SPADEResnetBlock`s at 512 channels (`G_middle_0` … `G_middle_5`), then a nearest ×2
//!   upsampling, `up_0` (512 → 256), another ×2, `up_1` (256 → 64);
//! - `conv_img`: LeakyReLU(0.2), a 3 × 3 convolution to 3 · 2² channels and a PixelShuffle(2)
//!   (`upscale` 2), or straight to 3 channels (`upscale` 1); a sigmoid.
//!
//! Each block is `shortcut(x) + conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x))))))`, the
//! shortcut being `conv_s(SPADE_s(x))` (1 × 1, no bias) where the width changes. A SPADE is an
//! affine-free instance norm modulated per pixel, `norm(x) · (1 + γ) + β`, with γ and β
//! convolved from the input feature map (the "segmap", resized to x by nearest neighbour)
//! through a shared 128-channel 3 × 3 convolution and a ReLU.
//!
//! The blocks' convolutions are wrapped in `torch.nn.utils.spectral_norm`; the checkpoint holds
//! `weight_orig`, `weight_u` and `weight_v`, folded here into one weight at load
//! ([`spectral_norm_weight`]), as PyTorch's `eval()` would compute on every call. Tensor names
//! (those of `spade_generator.pth`, a plain state dict): `fc.{weight,bias}`;
//! `{G_middle_i,up_0,up_1}.conv_{0,1}.{weight_orig,weight_u,weight_v,bias}`,
//! `{up_0,up_1}.conv_s.{weight_orig,weight_u,weight_v}`,
//! `….norm_{0,1,s}.mlp_shared.0.{weight,bias}`, `….norm_{0,1,s}.mlp_{gamma,beta}.{weight,bias}`;
//! `conv_img.0.{weight,bias}` (`conv_img.{weight,bias}` with `upscale` 1).
//!
//! ```
//! use vortex_real::liveportrait::spade::Config;
//!
//! let cfg = Config::liveportrait();
//! cfg.validate()?;
//! assert_eq!(cfg.input_channels(), 256); // the warped features, (B, 256, 64, 64)
//! assert_eq!(cfg.output_size(64, 64), (512, 512));
//! // SpadeDecoder::new(&cfg, vb)?.forward(&feature)? is (B, 3, 512, 512) in [0, 1]
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::ops::{instance_norm_2d, spectral_norm_weight, Conv2d, INSTANCE_NORM_EPS};

/// `SPADEResnetBlock`s at full width before the upsampling (`G_middle_0` … `G_middle_5`).
pub const MIDDLE_BLOCKS: usize = 6;
/// Channels of SPADE's shared hidden convolution (`nhidden`, fixed in the reference).
pub const SPADE_HIDDEN: usize = 128;
/// Slope of the LeakyReLUs (`F.leaky_relu(x, 2e-1)`).
pub const LEAKY_SLOPE: f64 = 0.2;
/// Output channels of `up_1` (`SPADEDecoder`'s `out_channels`, which models.yaml leaves at its
/// default).
pub const OUT_CHANNELS: usize = 64;
/// Largest channel count accepted.
pub const MAX_CHANNELS: usize = 8192;
/// Most down blocks accepted (the width doubles with each).
pub const MAX_DOWN_BLOCKS: usize = 8;

/// models.yaml's `spade_generator_params`; `hidden` and `out_channels` are this project's keys
/// (the reference fixes them in code), left out of a file when they are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// 2: PixelShuffle(2) doubles the 256 × 256 image to 512 × 512; 1 (or 0, the reference's
    /// `None`): no shuffle.
    pub upscale: usize,
    /// Width of the encoder's first block, doubled per down block.
    pub block_expansion: usize,
    /// Widest the encoder's blocks get.
    pub max_features: usize,
    /// Down blocks of the encoder whose output G decodes.
    pub num_down_blocks: usize,
    /// Channels of each SPADE's shared hidden convolution ([`SPADE_HIDDEN`] in the reference;
    /// smaller only for fast tests).
    #[serde(default = "spade_hidden", skip_serializing_if = "is_spade_hidden")]
    pub hidden: usize,
    /// Output channels of `up_1` ([`OUT_CHANNELS`] in the reference; smaller only for fast tests).
    #[serde(default = "out_channels", skip_serializing_if = "is_out_channels")]
    pub out_channels: usize,
}

fn spade_hidden() -> usize {
    SPADE_HIDDEN
}

fn is_spade_hidden(v: &usize) -> bool {
    *v == SPADE_HIDDEN
}

fn out_channels() -> usize {
    OUT_CHANNELS
}

fn is_out_channels(v: &usize) -> bool {
    *v == OUT_CHANNELS
}

impl Config {
    /// The published G: upscale 2, block_expansion 64, max_features 512, num_down_blocks 2.
    pub fn liveportrait() -> Self {
        Config {
            upscale: 2,
            block_expansion: 64,
            max_features: 512,
            num_down_blocks: 2,
            hidden: SPADE_HIDDEN,
            out_channels: OUT_CHANNELS,
        }
    }

    /// Channels of the input feature map: `min(max_features, block_expansion · 2^num_down_blocks)`
    /// (the reference's `input_channels` after its loop; 256 for the published G).
    pub fn input_channels(&self) -> usize {
        self.max_features.min(self.block_expansion << self.num_down_blocks)
    }

    /// Whether `conv_img` ends in a PixelShuffle(2).
    pub fn shuffles(&self) -> bool {
        self.upscale > 1
    }

    /// The image's (height, width) for a `height` × `width` feature map.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let scale = if self.shuffles() { 8 } else { 4 };
        (height * scale, width * scale)
    }

    /// Refuses widths that are zero or too large, no down block, and upscales other than 0, 1
    /// and 2 (the reference shuffles by 2 for any upscale above 1).
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_DOWN_BLOCKS).contains(&self.num_down_blocks) {
            bail!("SPADE generator config: num_down_blocks {}; need 1 to {MAX_DOWN_BLOCKS}", self.num_down_blocks);
        }
        if !(1..=MAX_CHANNELS).contains(&self.block_expansion) || !(1..=MAX_CHANNELS).contains(&self.max_features) {
            bail!(
                "SPADE generator config: block_expansion {} and max_features {}; need 1 to {MAX_CHANNELS}",
                self.block_expansion,
                self.max_features
            );
        }
        if self.upscale > 2 {
            bail!("SPADE generator config: upscale {}; need 0, 1 or 2 (the reference shuffles by 2)", self.upscale);
        }
        if !(1..=MAX_CHANNELS).contains(&self.hidden) || !(1..=MAX_CHANNELS).contains(&self.out_channels) {
            bail!(
                "SPADE generator config: hidden {} and out_channels {}; need 1 to {MAX_CHANNELS}",
                self.hidden,
                self.out_channels
            );
        }
        Ok(())
    }
}

/// A 3 × 3 (padding 1) or 1 × 1 convolution.
fn conv2d(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Conv2d {
    Conv2d::new(weight, bias, Conv2dConfig { padding, ..Default::default() })
}

/// `nn.Conv2d(in, out, 3, padding=1)` under `vb`.
fn plain_conv3x3(in_channels: usize, out_channels: usize, vb: VarBuilder) -> Result<Conv2d> {
    let weight = vb.get((out_channels, in_channels, 3, 3), "weight")?;
    Ok(conv2d(weight, Some(vb.get(out_channels, "bias")?), 1))
}

/// `spectral_norm(nn.Conv2d(in, out, kernel, padding=kernel / 2))`, folded, under `vb`.
fn spectral_conv(in_channels: usize, out_channels: usize, kernel: usize, bias: bool, vb: VarBuilder) -> Result<Conv2d> {
    let weight = spectral_norm_weight(&vb, (out_channels, in_channels, kernel, kernel))?;
    let bias = if bias { Some(vb.get(out_channels, "bias")?) } else { None };
    Ok(conv2d(weight, bias, kernel / 2))
}

/// The reference's `SPADE`: `instance_norm(x) · (1 + γ) + β`, γ and β convolved from the
/// segmap.
#[derive(Debug, Clone)]
pub struct Spade {
    shared: Conv2d,
    /// `mlp_gamma` and `mlp_beta` as one convolution with both outputs stacked (γ first): they
    /// read the same activations, so one pass over them serves both.
    gamma_beta: Conv2d,
    norm_nc: usize,
    label_nc: usize,
}

impl Spade {
    /// `SPADE(norm_nc, label_nc)` with `hidden` channels: loads `mlp_shared.0.{weight,bias}` `[hidden, label_nc, 3, 3]`,
    /// `mlp_gamma.{weight,bias}` and `mlp_beta.{weight,bias}` `[norm_nc, hidden, 3, 3]`.
    pub fn new(norm_nc: usize, label_nc: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let shared = plain_conv3x3(label_nc, hidden, vb.pp("mlp_shared").pp(0))?;
        let (gamma, beta) = (vb.pp("mlp_gamma"), vb.pp("mlp_beta"));
        let shape = (norm_nc, hidden, 3, 3);
        let weight = Tensor::cat(&[gamma.get(shape, "weight")?, beta.get(shape, "weight")?], 0)?;
        let bias = Tensor::cat(&[gamma.get(norm_nc, "bias")?, beta.get(norm_nc, "bias")?], 0)?;
        Ok(Spade { shared, gamma_beta: conv2d(weight, Some(bias), 1), norm_nc, label_nc })
    }

    /// `x` (B, norm_nc, H, W) modulated by `segmap` (B, label_nc, h, w), resized to H × W.
    pub fn forward(&self, x: &Tensor, segmap: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.norm_nc {
            bail!("SPADE: input of shape {:?}; need {} channels", x.dims(), self.norm_nc);
        }
        match segmap.dims() {
            [sb, sc, _, _] if *sb == b && *sc == self.label_nc => {}
            dims => bail!("SPADE: segmap of shape {dims:?}; need ({b}, {}, height, width)", self.label_nc),
        }
        let normalized = instance_norm_2d(x, INSTANCE_NORM_EPS)?;
        let segmap = if segmap.dims()[2..] == [h, w] { segmap.clone() } else { segmap.upsample_nearest2d(h, w)? };
        let actv = self.shared.forward(&segmap)?.relu()?;
        let gamma_beta = self.gamma_beta.forward(&actv)?;
        let gamma = gamma_beta.narrow(1, 0, self.norm_nc)?;
        let beta = gamma_beta.narrow(1, self.norm_nc, self.norm_nc)?;
        normalized.mul(&(gamma + 1.)?)?.add(&beta)
    }
}

/// The reference's `SPADEResnetBlock` with spectral-normed convolutions (dilation 1, no SE).
#[derive(Debug, Clone)]
pub struct SpadeResnetBlock {
    conv_0: Conv2d,
    conv_1: Conv2d,
    norm_0: Spade,
    norm_1: Spade,
    /// `conv_s` and `norm_s`, when the width changes (`learned_shortcut`).
    shortcut: Option<(Conv2d, Spade)>,
}

impl SpadeResnetBlock {
    /// `SPADEResnetBlock(fin, fout, 'spadespectralinstance', label_nc)` with SPADEs of `hidden`
    /// channels ([`SPADE_HIDDEN`] in the reference): `conv_0` fin →
    /// min(fin, fout), `conv_1` → fout, and where fin ≠ fout the 1 × 1 `conv_s` and `norm_s`.
    pub fn new(fin: usize, fout: usize, label_nc: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let fmiddle = fin.min(fout);
        let shortcut = if fin != fout {
            Some((
                spectral_conv(fin, fout, 1, false, vb.pp("conv_s"))?,
                Spade::new(fin, label_nc, hidden, vb.pp("norm_s"))?,
            ))
        } else {
            None
        };
        Ok(SpadeResnetBlock {
            conv_0: spectral_conv(fin, fmiddle, 3, true, vb.pp("conv_0"))?,
            conv_1: spectral_conv(fmiddle, fout, 3, true, vb.pp("conv_1"))?,
            norm_0: Spade::new(fin, label_nc, hidden, vb.pp("norm_0"))?,
            norm_1: Spade::new(fmiddle, label_nc, hidden, vb.pp("norm_1"))?,
            shortcut,
        })
    }

    /// `x` (B, fin, H, W) with the segmap (B, label_nc, h, w) → (B, fout, H, W).
    pub fn forward(&self, x: &Tensor, seg: &Tensor) -> Result<Tensor> {
        let x_s = match &self.shortcut {
            Some((conv_s, norm_s)) => conv_s.forward(&norm_s.forward(x, seg)?)?,
            None => x.clone(),
        };
        let dx = self.conv_0.forward(&leaky_relu(&self.norm_0.forward(x, seg)?)?)?;
        let dx = self.conv_1.forward(&leaky_relu(&self.norm_1.forward(&dx, seg)?)?)?;
        x_s + dx
    }
}

fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::leaky_relu(x, LEAKY_SLOPE)
}

/// PyTorch's `PixelShuffle(r)`: (B, C·r², H, W) → (B, C, H·r, W·r).
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if r == 0 || c % (r * r) != 0 {
        bail!("pixel shuffle by {r}: input of shape {:?}; need channels divisible by {}", x.dims(), r * r);
    }
    let c = c / (r * r);
    x.reshape((b, c, r, r, h, w))?.permute((0, 1, 4, 2, 5, 3))?.reshape((b, c, h * r, w * r))
}

/// The reference's `SPADEDecoder`: G.
#[derive(Debug, Clone)]
pub struct SpadeDecoder {
    fc: Conv2d,
    middle: Vec<SpadeResnetBlock>,
    up_0: SpadeResnetBlock,
    up_1: SpadeResnetBlock,
    conv_img: Conv2d,
    shuffle: bool,
    input_channels: usize,
}

impl SpadeDecoder {
    /// Loads G from `vb` (names in the module doc).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let input_channels = cfg.input_channels();
        let wide = 2 * input_channels;
        let middle = (0..MIDDLE_BLOCKS)
            .map(|i| SpadeResnetBlock::new(wide, wide, input_channels, cfg.hidden, vb.pp(format!("G_middle_{i}"))))
            .collect::<Result<_>>()?;
        let (img_channels, img_vb) =
            if cfg.shuffles() { (3 * 4, vb.pp("conv_img").pp(0)) } else { (3, vb.pp("conv_img")) };
        Ok(SpadeDecoder {
            fc: plain_conv3x3(input_channels, wide, vb.pp("fc"))?,
            middle,
            up_0: SpadeResnetBlock::new(wide, input_channels, input_channels, cfg.hidden, vb.pp("up_0"))?,
            up_1: SpadeResnetBlock::new(input_channels, cfg.out_channels, input_channels, cfg.hidden, vb.pp("up_1"))?,
            conv_img: plain_conv3x3(cfg.out_channels, img_channels, img_vb)?,
            shuffle: cfg.shuffles(),
            input_channels,
        })
    }

    /// The warped features (B, input_channels, H, W) → the image (B, 3, 8H, 8W) in [0, 1]
    /// (4H × 4W without the shuffle).
    pub fn forward(&self, feature: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.forward_logits(feature)?)
    }

    /// [`SpadeDecoder::forward`] without the final sigmoid: the image's logits, which keep the
    /// differences a saturated sigmoid would flatten (the parity test compares them).
    pub fn forward_logits(&self, feature: &Tensor) -> Result<Tensor> {
        match feature.dims() {
            [_, c, h, w] if *c == self.input_channels && h * w >= 2 => {}
            dims => bail!(
                "SPADE generator: feature of shape {dims:?}; need (batch, {}, height, width) with at least 2 pixels",
                self.input_channels
            ),
        }
        let seg = feature;
        let mut x = self.fc.forward(feature)?;
        for block in &self.middle {
            x = block.forward(&x, seg)?;
        }
        let up = |x: &Tensor| -> Result<Tensor> {
            let (_, _, h, w) = x.dims4()?;
            x.upsample_nearest2d(2 * h, 2 * w)
        };
        let x = self.up_0.forward(&up(&x)?, seg)?;
        let x = self.up_1.forward(&up(&x)?, seg)?;
        let x = self.conv_img.forward(&leaky_relu(&x)?)?;
        if self.shuffle {
            pixel_shuffle(&x, 2)
        } else {
            Ok(x)
        }
    }
}
