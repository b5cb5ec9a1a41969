//! LivePortrait's stitching and retargeting module S: three small MLPs of the reference's
//! `StitchingRetargetingNetwork` (`src/modules/stitching_retargeting_network.py`), loaded as
//! `load_model(..., 'stitching_retargeting_module')` does from `stitching_retargeting_module.pth`.
//!
//! - stitching (`retarget_shoulder`): source and driving keypoints (2 · 21 · 3 = 126) → a
//!   keypoint delta and a (tx, ty) shift (65), which keep the shoulders and the crop's border
//!   where the source has them;
//! - lip (`retarget_mouth`): source keypoints and two lip-closure ratios (65) → a keypoint delta
//!   (63) that opens or closes the mouth;
//! - eye (`retarget_eye`): source keypoints and three eye-closure ratios (66) → a keypoint delta
//!   (63) that opens or closes the eyes.
//!
//! Each MLP is `Linear → ReLU` per hidden layer, then a last `Linear`, stored as PyTorch's
//! `nn.Sequential` `mlp`: the linear layers are `mlp.0`, `mlp.2`, `mlp.4`, … (the ReLUs hold the
//! odd indices). The checkpoint's three state dicts carry DataParallel's `module.` prefix; the
//! loader strips it, so [`StitchingRetargeting::new`] expects, under its `VarBuilder`,
//! `retarget_shoulder.mlp.{0,2,4,6}.{weight,bias}`, `retarget_mouth.mlp.{0,2,4,6}.{weight,bias}`
//! and `retarget_eye.mlp.{0,2,4,6,8,10}.{weight,bias}` (weights `[out, in]`, biases `[out]`).
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use vortex_real::liveportrait::stitching::{Config, StitchingRetargeting};
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let s = StitchingRetargeting::new(&Config::liveportrait(), vb)?;
//! let features = Tensor::zeros((4, 126), DType::F32, &Device::Cpu)?; // 4 frames
//! assert_eq!(s.stitching.forward(&features)?.dims(), [4, 65]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// The checkpoint's name of the stitching network's state dict.
pub const STITCHING_PART: &str = "retarget_shoulder";
/// The checkpoint's name of the lip retargeting network's state dict.
pub const LIP_PART: &str = "retarget_mouth";
/// The checkpoint's name of the eye retargeting network's state dict.
pub const EYE_PART: &str = "retarget_eye";
/// Largest layer width accepted (the published ones are at most 256).
pub const MAX_WIDTH: usize = 1 << 16;
/// Most hidden layers accepted (the published ones have at most 5).
pub const MAX_HIDDEN_LAYERS: usize = 64;

/// One `StitchingRetargetingNetwork`'s sizes, under models.yaml's names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Features in.
    pub input_size: usize,
    /// Width of each hidden layer, in order.
    pub hidden_sizes: Vec<usize>,
    /// Features out.
    pub output_size: usize,
}

impl MlpConfig {
    /// Refuses sizes that are zero, absurdly large, or without a hidden layer (the reference
    /// reads `hidden_sizes[-1]`, so it needs one).
    pub fn validate(&self, name: &str) -> Result<()> {
        if self.hidden_sizes.is_empty() || self.hidden_sizes.len() > MAX_HIDDEN_LAYERS {
            bail!("stitching config {name}: {} hidden layers; need 1 to {MAX_HIDDEN_LAYERS}", self.hidden_sizes.len());
        }
        let widths =
            std::iter::once(self.input_size).chain(self.hidden_sizes.iter().copied()).chain([self.output_size]);
        for width in widths {
            if !(1..=MAX_WIDTH).contains(&width) {
                bail!("stitching config {name}: a layer width of {width}; need 1 to {MAX_WIDTH}");
            }
        }
        Ok(())
    }
}

/// models.yaml's `stitching_retargeting_module_params`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stitching network (`stitching`).
    pub stitching: MlpConfig,
    /// The lip retargeting network (`lip`).
    pub lip: MlpConfig,
    /// The eye retargeting network (`eye`).
    pub eye: MlpConfig,
}

impl Config {
    /// The published sizes: stitching 126 → [128, 128, 64] → 65, lip 65 → [128, 128, 64] → 63,
    /// eye 66 → [256, 256, 128, 128, 64] → 63.
    pub fn liveportrait() -> Self {
        Config {
            stitching: MlpConfig { input_size: 126, hidden_sizes: vec![128, 128, 64], output_size: 65 },
            lip: MlpConfig { input_size: 65, hidden_sizes: vec![128, 128, 64], output_size: 63 },
            eye: MlpConfig { input_size: 66, hidden_sizes: vec![256, 256, 128, 128, 64], output_size: 63 },
        }
    }

    /// Validates the three networks' sizes.
    pub fn validate(&self) -> Result<()> {
        self.stitching.validate("stitching")?;
        self.lip.validate("lip")?;
        self.eye.validate("eye")
    }
}

/// The reference's `StitchingRetargetingNetwork`: `Linear → ReLU` per hidden layer, then a
/// `Linear`.
#[derive(Debug, Clone)]
pub struct StitchingRetargetingNetwork {
    layers: Vec<Linear>,
    input_size: usize,
}

impl StitchingRetargetingNetwork {
    /// Loads `mlp.{2i}.weight` `[out, in]` and `mlp.{2i}.bias` `[out]` for each layer `i`.
    pub fn new(cfg: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate("network")?;
        let widths: Vec<usize> =
            std::iter::once(cfg.input_size).chain(cfg.hidden_sizes.iter().copied()).chain([cfg.output_size]).collect();
        let vb = vb.pp("mlp");
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, pair)| candle_nn::linear(pair[0], pair[1], vb.pp(2 * i)))
            .collect::<Result<_>>()?;
        Ok(StitchingRetargetingNetwork { layers, input_size: cfg.input_size })
    }

    /// Features in.
    pub fn input_size(&self) -> usize {
        self.input_size
    }
}

impl Module for StitchingRetargetingNetwork {
    /// `x` (B, input_size) → (B, output_size).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [_, n] if *n == self.input_size => {}
            dims => bail!("stitching MLP: input of shape {dims:?}; need (batch, {})", self.input_size),
        }
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().try_fold(x.clone(), |x, (i, layer)| {
            let y = layer.forward(&x)?;
            if i < last {
                y.relu()
            } else {
                Ok(y)
            }
        })
    }
}

/// The three networks of `stitching_retargeting_module.pth`.
#[derive(Debug, Clone)]
pub struct StitchingRetargeting {
    /// Stitching ([`STITCHING_PART`]).
    pub stitching: StitchingRetargetingNetwork,
    /// Lip retargeting ([`LIP_PART`]).
    pub lip: StitchingRetargetingNetwork,
    /// Eye retargeting ([`EYE_PART`]).
    pub eye: StitchingRetargetingNetwork,
}

impl StitchingRetargeting {
    /// Loads the three networks from `vb`'s [`STITCHING_PART`], [`LIP_PART`] and [`EYE_PART`]
    /// (see the module doc for the names).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(StitchingRetargeting {
            stitching: StitchingRetargetingNetwork::new(&cfg.stitching, vb.pp(STITCHING_PART))?,
            lip: StitchingRetargetingNetwork::new(&cfg.lip, vb.pp(LIP_PART))?,
            eye: StitchingRetargetingNetwork::new(&cfg.eye, vb.pp(EYE_PART))?,
        })
    }
}
