//! Kokoro-82M's decoder: StyleTTS 2's style-conditioned decoder ahead of an iSTFTNet vocoder
//! (kokoro 0.9.4's `istftnet.py`: `Decoder`, `Generator`, `AdaINResBlock1`, `SineGen`,
//! `SourceModuleHnNSF`, `TorchSTFT`), from aligned text features, an F0 curve and an energy curve
//! to 24 kHz audio. `KModel` calls it as `decoder(asr, F0_pred, N_pred, ref_s[:, :128])`.
//!
//! - Decode stack: the F0 and energy curves (two frames per text frame) are brought to the text
//!   rate by strided 3-tap convolutions (`F0_conv`, `N_conv`) and stacked with the text features;
//!   an `AdainResBlk1d` (`encode`, to 1024 channels), then four more (`decode`), each fed the
//!   features again with a 64-channel projection of the text (`asr_res`), F0 and energy; the last
//!   one narrows to 512 channels and doubles the length back to the F0 rate.
//! - Harmonic source (hn-NSF): the F0 curve, repeated to the audio rate, drives 9 sines (the
//!   fundamental and 8 overtones) whose phase is a cumulative sum at the frame rate, interpolated
//!   to the audio rate; samples at or below 10 Hz are unvoiced (noise only); a linear map and a
//!   tanh merge the 9 into one signal, whose STFT magnitude and phase condition the generator.
//! - Generator: per upsampling stage (×10 then ×6), a LeakyReLU(0.1), a transposed convolution,
//!   the source branch added (a strided convolution of the source's STFT and an
//!   `AdaINResBlock1`), then the mean of three `AdaINResBlock1` (Snake activations, kernels
//!   3/7/11, dilations 1/3/5); finally LeakyReLU(0.01), a 7-tap convolution to 11
//!   log-magnitudes and 11 phase logits (through `sin`), and an inverse STFT (n_fft 20, hop 5):
//!   300 samples per F0 frame, 600 per text frame.
//!
//! The source's randomness (initial phases and Gaussian noise) is an explicit [`Excitation`], so
//! a seed repeats the audio exactly and a test can replay the numbers PyTorch drew.
//!
//! ```
//! use candle_core::Device;
//! use vortex_real::kokoro::decoder::{Config, Decoder, Excitation};
//!
//! let cfg = Config::kokoro();
//! cfg.validate()?;
//! let text_frames = 8; // asr is (1, 512, 8)
//! let f0_frames = Decoder::f0_frames(text_frames); // F0 and N are (1, 16)
//! let samples = Excitation::len_for(&cfg, f0_frames); // the audio is (4800,)
//! assert_eq!((f0_frames, samples), (16, 4800));
//! let excitation = Excitation::seeded(42, samples, &Device::Cpu)?;
//! assert_eq!(excitation.noise.dims(), [1, 4800, 9]);
//! // Decoder::new(512, 128, &cfg, vb)?.forward(&asr, &f0, &n, &style, &excitation, &cancel)?
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv1dConfig, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::blocks::{conv1d, same_padding, AdainResBlk1d, Conv1d};
use crate::executor::{ensure_finite, CancelToken, ModelError};
use crate::ops::{
    atan2, interpolate_linear_1d, interpolate_nearest_1d, reflect_pad_1d, weight_norm_weight, AdaIn1d, Resize, Stft,
};

/// The audio's sampling rate, Hz (SineGen's `samp_rate`).
pub const SAMPLE_RATE: usize = 24_000;
/// Sines in the harmonic source: the fundamental and 8 overtones (`harmonic_num=8`).
pub const HARMONICS: usize = 9;
/// Width of the `encode` / `decode` blocks in Kokoro's `Decoder` (hard-coded there; see
/// [`Config::decode_width`]).
pub const HIDDEN: usize = 1024;
/// Width of `asr_res`, the text features' projection fed to every `decode` block.
pub const ASR_RES: usize = 64;
/// Largest channel count (`dim_in`, `style_dim`, `upsample_initial_channel`) accepted.
pub const MAX_CHANNELS: usize = 8192;
/// Largest kernel (resblock, upsampling) accepted.
pub const MAX_KERNEL: usize = 64;
/// Largest dilation or upsampling rate accepted.
pub const MAX_RATE: usize = 64;
/// Most upsampling stages, and most resblocks per stage, accepted.
pub const MAX_STAGES: usize = 8;
/// Largest `gen_istft_n_fft` accepted (the STFT is a dense product, meant for tiny frames).
pub const MAX_N_FFT: usize = 1024;
/// Largest number of audio samples per F0 frame (∏ upsample_rates × hop) accepted.
pub const MAX_SAMPLES_PER_FRAME: usize = 1 << 16;
/// Most audio samples one call may produce: the interpolations index positions in f32, exact
/// below 2²⁴ (about 11.6 minutes at 24 kHz).
pub const MAX_SAMPLES: usize = (1 << 24) - 1;

/// SineGen's `sine_amp`: amplitude of each sine.
const SINE_AMP: f64 = 0.1;
/// SineGen's `noise_std`: the noise's standard deviation on voiced samples (unvoiced ones get
/// `SINE_AMP / 3`).
const NOISE_STD: f64 = 0.003;
/// SourceModuleHnNSF's `voiced_threshod`: F0 above it (Hz) is voiced.
const VOICED_THRESHOLD: f64 = 10.;
/// The generator's LeakyReLU before each upsampling.
const STAGE_SLOPE: f64 = 0.1;
/// `F.leaky_relu`'s default slope, before `conv_post`.
const POST_SLOPE: f64 = 0.01;
/// Taps of `conv_post`.
const POST_KERNEL: usize = 7;
/// The source branch's `AdaINResBlock1` kernels: every stage but the last, and the last.
const NOISE_RES_KERNELS: (usize, usize) = (7, 11);
/// Dilations of the source branch's `AdaINResBlock1`.
const NOISE_RES_DILATIONS: [usize; 3] = [1, 3, 5];

/// The `istftnet` section of Kokoro's `config.json`, under its field names.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Kernel of each `AdaINResBlock1` in a stage (odd, so padding keeps the length).
    pub resblock_kernel_sizes: Vec<usize>,
    /// Rate of each upsampling stage (the transposed convolutions' strides).
    pub upsample_rates: Vec<usize>,
    /// Channels entering the first upsampling (the decode stack's output), halved every stage.
    pub upsample_initial_channel: usize,
    /// The three dilations of each `AdaINResBlock1`, one list per kernel size.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// Kernel of each transposed convolution.
    pub upsample_kernel_sizes: Vec<usize>,
    /// Frame of the generator's STFT and inverse STFT.
    pub gen_istft_n_fft: usize,
    /// Hop of the generator's STFT and inverse STFT.
    pub gen_istft_hop_size: usize,
    /// Width of the `encode` / `decode` blocks: [`HIDDEN`] (1024) in Kokoro, whose code fixes
    /// it rather than its config; narrower only in tests, where the full width would spend
    /// minutes of a debug build on nothing the test checks.
    pub decode_width: usize,
}

impl Config {
    /// Kokoro-82M's: upsampling ×10 (kernel 20) then ×6 (kernel 12) from 512 channels,
    /// resblocks of kernels 3/7/11 with dilations 1/3/5, STFT n_fft 20 hop 5.
    pub fn kokoro() -> Self {
        Config {
            resblock_kernel_sizes: vec![3, 7, 11],
            upsample_rates: vec![10, 6],
            upsample_initial_channel: 512,
            resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
            upsample_kernel_sizes: vec![20, 12],
            gen_istft_n_fft: 20,
            gen_istft_hop_size: 5,
            decode_width: HIDDEN,
        }
    }

    /// Audio samples per F0 frame: ∏ upsample_rates × hop (Kokoro: 300). Meaningful once
    /// [`Config::validate`] passed.
    pub fn samples_per_f0_frame(&self) -> usize {
        self.upsample_rates.iter().product::<usize>() * self.gen_istft_hop_size
    }

    /// Refuses a config no generator can have: empty, oversized or mismatched lists, even
    /// resblock kernels, upsampling kernels that would not multiply the length exactly by their
    /// rate, channels that do not halve at every stage, an STFT without overlap.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CHANNELS).contains(&self.decode_width) {
            bail!("iSTFTNet config: decode_width {}; need 1 to {MAX_CHANNELS}", self.decode_width);
        }
        let stages = self.upsample_rates.len();
        if stages == 0 || stages > MAX_STAGES || self.upsample_kernel_sizes.len() != stages {
            bail!(
                "iSTFTNet config: {} upsample_rates and {} upsample_kernel_sizes; need the same number, 1 to {MAX_STAGES}",
                stages,
                self.upsample_kernel_sizes.len()
            );
        }
        for (&rate, &kernel) in self.upsample_rates.iter().zip(&self.upsample_kernel_sizes) {
            if !(1..=MAX_RATE).contains(&rate) || kernel < rate || kernel > MAX_KERNEL || (kernel - rate) % 2 != 0 {
                bail!(
                    "iSTFTNet config: upsampling by {rate} with kernel {kernel}; need a rate of 1 to {MAX_RATE} and a kernel of rate to {MAX_KERNEL} that exceeds the rate by an even number (so the length is multiplied exactly)"
                );
            }
        }
        if stages > 1 && self.upsample_rates[stages - 1] < 2 {
            bail!(
                "iSTFTNet config: the last upsample rate is 1; with several stages it must be at least 2, or the source branch's strided convolutions do not line up"
            );
        }
        let blocks = self.resblock_kernel_sizes.len();
        if blocks == 0 || blocks > MAX_STAGES || self.resblock_dilation_sizes.len() != blocks {
            bail!(
                "iSTFTNet config: {} resblock_kernel_sizes and {} resblock_dilation_sizes; need the same number, 1 to {MAX_STAGES}",
                blocks,
                self.resblock_dilation_sizes.len()
            );
        }
        for (&kernel, dilations) in self.resblock_kernel_sizes.iter().zip(&self.resblock_dilation_sizes) {
            if kernel % 2 == 0 || kernel > MAX_KERNEL {
                bail!("iSTFTNet config: resblock kernel {kernel}; must be odd and at most {MAX_KERNEL}");
            }
            if dilations.len() != 3 || dilations.iter().any(|d| !(1..=MAX_RATE).contains(d)) {
                bail!("iSTFTNet config: resblock dilations {dilations:?}; need three, each 1 to {MAX_RATE}");
            }
        }
        let halvings = 1usize << stages;
        let channels = self.upsample_initial_channel;
        if channels > MAX_CHANNELS || channels < halvings || channels % halvings != 0 {
            bail!(
                "iSTFTNet config: upsample_initial_channel {channels}; must be a multiple of 2^{stages} (halved at every stage), at most {MAX_CHANNELS}"
            );
        }
        let (n_fft, hop) = (self.gen_istft_n_fft, self.gen_istft_hop_size);
        if !(2..=MAX_N_FFT).contains(&n_fft) || n_fft % 2 != 0 || hop == 0 || hop >= n_fft {
            bail!(
                "iSTFTNet config: gen_istft_n_fft {n_fft}, gen_istft_hop_size {hop}; need an even n_fft of 2 to {MAX_N_FFT} and a hop of 1 to n_fft - 1 (overlapping frames)"
            );
        }
        let per_frame = self.upsample_rates.iter().try_fold(hop, |acc, &r| acc.checked_mul(r));
        if per_frame.is_none_or(|p| p > MAX_SAMPLES_PER_FRAME) {
            bail!("iSTFTNet config: more than {MAX_SAMPLES_PER_FRAME} audio samples per F0 frame");
        }
        Ok(())
    }
}

/// The harmonic source's random numbers, drawn outside the model so that a seed repeats the
/// audio exactly and a test can replay the numbers PyTorch drew. Kokoro draws them inside
/// `SineGen` on every call:
///
/// - `phase` `(1, 9)`: SineGen's `rand_ini`, uniform in [0, 1) (cycles) with column 0 (the
///   fundamental) zero, added to the first sample's phase increment. The linear downsampling
///   that follows reads samples 149 and 150 of every 300, never sample 0, so in Kokoro's
///   configuration it cannot change the audio (the fixture's generator checks this); it is
///   applied anyway, as in PyTorch.
/// - `noise` `(1, samples, 9)`: SineGen's `randn_like(sine_waves)`, standard normal, scaled by
///   0.003 on voiced samples and 0.1/3 on unvoiced ones; `samples` is [`Excitation::len_for`].
///
/// SourceModuleHnNSF draws a third tensor, `randn_like(uv)`, which it returns as the noise
/// source and the Generator never uses: it is not drawn here.
#[derive(Debug, Clone)]
pub struct Excitation {
    /// `(1, 9)` initial phases in cycles, column 0 zero.
    pub phase: Tensor,
    /// `(1, samples, 9)` standard normal noise, one column per harmonic.
    pub noise: Tensor,
}

impl Excitation {
    /// The `samples` an excitation needs for an F0 curve of `f0_frames` (twice the text
    /// frames): f0_frames × [`Config::samples_per_f0_frame`], also the audio's length.
    pub fn len_for(cfg: &Config, f0_frames: usize) -> usize {
        f0_frames.saturating_mul(cfg.samples_per_f0_frame())
    }

    /// Draws an excitation of `samples` samples from a ChaCha8 stream seeded by `seed`: the 9
    /// phases first (column 0 then set to 0, as PyTorch does), then the noise sample by sample,
    /// harmonic by harmonic. The same seed and length give the same tensors on every platform.
    pub fn seeded(seed: u64, samples: usize, device: &Device) -> Result<Self> {
        if samples == 0 || samples > MAX_SAMPLES {
            bail!("excitation of {samples} samples; must be 1 to {MAX_SAMPLES}");
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut phase: Vec<f32> = (0..HARMONICS).map(|_| rng.gen::<f32>()).collect();
        phase[0] = 0.;
        let noise: Vec<f32> = (0..samples * HARMONICS).map(|_| StandardNormal.sample(&mut rng)).collect();
        Ok(Excitation {
            phase: Tensor::from_vec(phase, (1, HARMONICS), device)?,
            noise: Tensor::from_vec(noise, (1, samples, HARMONICS), device)?,
        })
    }
}

/// One of `AdaINResBlock1`'s three residual layers: AdaIN, Snake, a dilated convolution, AdaIN,
/// Snake, a plain convolution.
#[derive(Debug, Clone)]
struct SnakeLayer {
    adain1: AdaIn1d,
    /// Snake's α, `[1, channels, 1]` (`alpha1.k`).
    alpha1: Tensor,
    conv1: Conv1d,
    adain2: AdaIn1d,
    /// `alpha2.k`.
    alpha2: Tensor,
    conv2: Conv1d,
}

/// iSTFTNet's `AdaINResBlock1`: three residual [`SnakeLayer`]s with dilations `d₀, d₁, d₂`.
#[derive(Debug, Clone)]
struct AdaInResBlock1 {
    layers: Vec<SnakeLayer>,
}

impl AdaInResBlock1 {
    /// Loads `convs1.k`, `convs2.k` (weight-normed), `adain1.k`, `adain2.k`, `alpha1.k`,
    /// `alpha2.k` for k = 0, 1, 2.
    fn new(channels: usize, kernel: usize, dilations: &[usize], style_dim: usize, vb: VarBuilder) -> Result<Self> {
        let layers = (0..3)
            .map(|k| {
                let conv = |name: &str, dilation: usize| {
                    conv1d(
                        channels,
                        channels,
                        kernel,
                        same_padding(kernel, dilation),
                        true,
                        vb.pp(format!("{name}.{k}")),
                    )
                };
                Ok(SnakeLayer {
                    adain1: AdaIn1d::new(style_dim, channels, vb.pp(format!("adain1.{k}")))?,
                    alpha1: vb.get((1, channels, 1), &format!("alpha1.{k}"))?,
                    conv1: conv("convs1", dilations[k])?,
                    adain2: AdaIn1d::new(style_dim, channels, vb.pp(format!("adain2.{k}")))?,
                    alpha2: vb.get((1, channels, 1), &format!("alpha2.{k}"))?,
                    conv2: conv("convs2", 1)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdaInResBlock1 { layers })
    }

    fn forward(&self, x: &Tensor, style: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            let xt = l.conv1.forward(&l.adain1.forward_snake(&x, style, &l.alpha1)?)?;
            let xt = l.conv2.forward(&l.adain2.forward_snake(&xt, style, &l.alpha2)?)?;
            x = (xt + x)?;
        }
        Ok(x)
    }
}

/// A weight-normed dense `nn.ConvTranspose1d(in, out, kernel, stride, padding)` computed as ONE
/// ordinary convolution in polyphase form: output phase r (of `stride`) at block q is
/// Σ_m x[q − m] · w[r + m·stride], a full convolution of the input with every stride-th tap, so
/// all phases stack into one kernel `[stride·out, in, ⌈kernel / stride⌉]` whose outputs
/// interleave into the upsampled signal. No multiply by the zeros a zero-stuffed input would
/// hold, candle's fast im2col convolution on every device, and none of the batch bug of candle
/// 0.11.1's CPU `conv_transpose1d`.
#[derive(Debug, Clone)]
struct UpsampleConv {
    /// `[stride·out, in, taps]`: row r·out + o, tap j holds w[:, o, r + (taps − 1 − j)·stride].
    phases: Tensor,
    /// `[1, out, 1]`.
    bias: Tensor,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl UpsampleConv {
    /// Loads `weight_g` `[in, 1, 1]` and `weight_v` `[in, out, kernel]` (weight norm over dim 0,
    /// the input channels, as PyTorch does for a transposed convolution), or a folded `weight`,
    /// and `bias` `[out]`.
    fn new(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let weight = weight_norm_weight(&vb, (in_channels, out_channels, kernel), 0)?;
        let bias = vb.get(out_channels, "bias")?.reshape((1, out_channels, 1))?;
        let taps = kernel.div_ceil(stride);
        let phases = weight
            .pad_with_zeros(2, 0, taps * stride - kernel)?
            .reshape((in_channels, out_channels, taps, stride))?
            .permute((3, 1, 0, 2))?
            .contiguous()? // candle flips by gathering, which needs a contiguous tensor
            .flip(&[3])?
            .contiguous()?
            .reshape((stride * out_channels, in_channels, taps))?;
        Ok(UpsampleConv { phases, bias, out_channels, kernel, stride, padding: (kernel - stride) / 2 })
    }

    /// `(batch, in, length)` → `(batch, out, (length − 1)·stride + kernel − 2·padding)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, _, len) = x.dims3()?;
        let taps = self.phases.dim(2)?;
        let blocks = len + taps - 1;
        let y = x.conv1d(&self.phases, taps - 1, 1, 1, 1)?;
        let y = y.reshape((batch, self.stride, self.out_channels, blocks))?.permute((0, 2, 3, 1))?.reshape((
            batch,
            self.out_channels,
            blocks * self.stride,
        ))?;
        let out_len = (len - 1) * self.stride + self.kernel - 2 * self.padding;
        y.narrow(2, self.padding, out_len)?.broadcast_add(&self.bias)
    }
}

/// `SourceModuleHnNSF` with its `SineGen`: the merged harmonic source at the audio rate.
#[derive(Debug, Clone)]
struct HarmonicSource {
    /// `l_linear`: `[1, 9]` weight, `[1]` bias.
    weight: Tensor,
    bias: Tensor,
    /// Audio samples per F0 frame.
    upsample: usize,
}

impl HarmonicSource {
    fn new(upsample: usize, vb: VarBuilder) -> Result<Self> {
        let linear = candle_nn::linear(HARMONICS, 1, vb.pp("l_linear"))?;
        let bias = linear.bias().expect("candle_nn::linear has a bias").reshape((1, 1))?;
        Ok(HarmonicSource { weight: linear.weight().clone(), bias, upsample })
    }

    /// `f0` `(1, frames)` in Hz → `(1, frames·upsample)`, PyTorch's `har_source`. Channels-first
    /// `(1, 9, samples)` throughout, where PyTorch has `(1, samples, 9)`: the same elementwise
    /// operations in the same order, so the f32 roundings are the same.
    fn forward(&self, f0: &Tensor, excitation: &Excitation) -> Result<Tensor> {
        let device = f0.device();
        let up = self.upsample as f64;
        // nn.Upsample(scale_factor=300): each frame's F0 repeated.
        let f0 = interpolate_nearest_1d(&f0.unsqueeze(1)?, Resize::Scale(up))?;
        let samples = f0.dim(2)?;
        let harmonics =
            Tensor::arange(1u32, HARMONICS as u32 + 1, device)?.to_dtype(DType::F32)?.reshape((1, HARMONICS, 1))?;
        // (f · h / 24000) mod 1, the phase increment per sample in cycles; a true division,
        // as PyTorch's, not a product with a rounded reciprocal.
        let rate = Tensor::new(SAMPLE_RATE as f32, device)?;
        let rad = f0.broadcast_mul(&harmonics)?.broadcast_div(&rate)?;
        let rad = (&rad - rad.floor()?)?;
        let first = rad.narrow(2, 0, 1)?.broadcast_add(&excitation.phase.reshape((1, HARMONICS, 1))?)?;
        let rad = Tensor::cat(&[&first, &rad.narrow(2, 1, samples - 1)?], 2)?;
        // The phase is accumulated at the frame rate, then interpolated back: PyTorch's cumsum
        // adds in f64 and rounds each partial sum to f32, which a cumsum in f64 reproduces
        // exactly where a sum in f32 would drift by an ulp or so: at phases of thousands of
        // radians an ulp is 10⁻⁴ rad, and the audio would carry it.
        let rad = interpolate_linear_1d(&rad, Resize::Scale(1. / up))?;
        let phase = cumsum_f64(&rad.to_dtype(DType::F64)?.squeeze(0)?)?.to_dtype(DType::F32)?.unsqueeze(0)?;
        let phase = phase.affine(2., 0.)?.affine(std::f64::consts::PI, 0.)?.affine(up, 0.)?;
        let sines = interpolate_linear_1d(&phase, Resize::Scale(up))?.sin()?.affine(SINE_AMP, 0.)?;
        let uv = f0.gt(VOICED_THRESHOLD)?.to_dtype(DType::F32)?;
        let noise_amp = (uv.affine(NOISE_STD, 0.)? + uv.affine(-1., 1.)?.affine(SINE_AMP / 3., 0.)?)?;
        let noise = excitation.noise.transpose(1, 2)?.broadcast_mul(&noise_amp)?;
        let waves = (sines.broadcast_mul(&uv)? + noise)?;
        // l_linear then tanh: [1, 9] · (9, samples).
        self.weight.matmul(&waves.squeeze(0)?)?.broadcast_add(&self.bias)?.tanh()
    }
}

/// Cumulative sum along the last dimension of a 2-D f64 tensor, in blocks of [`CUMSUM_BLOCK`]:
/// candle's `cumsum` multiplies by an n × n triangle, which for a long curve would not fit;
/// each block does that with a small triangle, and the blocks' totals carry over (recursively).
fn cumsum_f64(x: &Tensor) -> Result<Tensor> {
    let (rows, n) = x.dims2()?;
    if n <= CUMSUM_BLOCK {
        return x.cumsum(1);
    }
    let blocks = n.div_ceil(CUMSUM_BLOCK);
    let within = x
        .pad_with_zeros(1, 0, blocks * CUMSUM_BLOCK - n)?
        .reshape((rows * blocks, CUMSUM_BLOCK))?
        .cumsum(1)?
        .reshape((rows, blocks, CUMSUM_BLOCK))?;
    let totals = within.narrow(2, CUMSUM_BLOCK - 1, 1)?.squeeze(2)?.contiguous()?;
    let before = (cumsum_f64(&totals)? - &totals)?;
    within.broadcast_add(&before.unsqueeze(2)?)?.reshape((rows, blocks * CUMSUM_BLOCK))?.narrow(1, 0, n)
}

/// Block length of [`cumsum_f64`].
const CUMSUM_BLOCK: usize = 256;

/// One upsampling stage of the generator.
#[derive(Debug, Clone)]
struct Stage {
    up: UpsampleConv,
    noise_conv: Conv1d,
    noise_res: AdaInResBlock1,
    resblocks: Vec<AdaInResBlock1>,
    last: bool,
}

/// iSTFTNet's `Generator`: the harmonic source, the upsampling stages, `conv_post` and the
/// inverse STFT.
#[derive(Debug, Clone)]
pub struct Generator {
    source: HarmonicSource,
    stft: Stft,
    stages: Vec<Stage>,
    conv_post: Conv1d,
    bins: usize,
}

impl Generator {
    /// Loads `m_source.l_linear`, `noise_convs.{i}`, `noise_res.{i}`, `ups.{i}`,
    /// `resblocks.{i·kernels + j}` and `conv_post` from `vb` (the `generator.` prefix), in f32.
    pub fn new(style_dim: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.set_dtype(DType::F32);
        let n_fft = cfg.gen_istft_n_fft;
        let spectrum = n_fft + 2;
        let count = cfg.upsample_rates.len();
        let mut stages = Vec::with_capacity(count);
        for (i, (&rate, &kernel)) in cfg.upsample_rates.iter().zip(&cfg.upsample_kernel_sizes).enumerate() {
            let (c_in, c_out) = (cfg.upsample_initial_channel >> i, cfg.upsample_initial_channel >> (i + 1));
            let last = i + 1 == count;
            // The source's spectrum (one frame per hop) is brought to this stage's rate by a
            // convolution strided by the rates still to come.
            let (noise_cfg, noise_kernel, res_kernel) = if last {
                (Conv1dConfig::default(), 1, NOISE_RES_KERNELS.1)
            } else {
                let stride: usize = cfg.upsample_rates[i + 1..].iter().product();
                (
                    Conv1dConfig { stride, padding: stride.div_ceil(2), ..Default::default() },
                    2 * stride,
                    NOISE_RES_KERNELS.0,
                )
            };
            let resblocks = cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
                .enumerate()
                .map(|(j, (&k, d))| {
                    let index = i * cfg.resblock_kernel_sizes.len() + j;
                    AdaInResBlock1::new(c_out, k, d, style_dim, vb.pp(format!("resblocks.{index}")))
                })
                .collect::<Result<_>>()?;
            stages.push(Stage {
                up: UpsampleConv::new(c_in, c_out, kernel, rate, vb.pp(format!("ups.{i}")))?,
                noise_conv: conv1d(spectrum, c_out, noise_kernel, noise_cfg, true, vb.pp(format!("noise_convs.{i}")))?,
                noise_res: AdaInResBlock1::new(
                    c_out,
                    res_kernel,
                    &NOISE_RES_DILATIONS,
                    style_dim,
                    vb.pp(format!("noise_res.{i}")),
                )?,
                resblocks,
                last,
            });
        }
        let channels = cfg.upsample_initial_channel >> count;
        let post_cfg = same_padding(POST_KERNEL, 1);
        Ok(Generator {
            source: HarmonicSource::new(cfg.samples_per_f0_frame(), vb.pp("m_source"))?,
            stft: Stft::new(n_fft, cfg.gen_istft_hop_size, n_fft, vb.device())?,
            stages,
            conv_post: conv1d(channels, spectrum, POST_KERNEL, post_cfg, true, vb.pp("conv_post"))?,
            bins: n_fft / 2 + 1,
        })
    }

    /// The merged harmonic source, `(1, samples)`, for an F0 curve `(1, frames)` (Hz) and an
    /// excitation of [`Excitation::len_for`] samples: PyTorch's `har_source`.
    pub fn harmonic_source(&self, f0: &Tensor, excitation: &Excitation) -> Result<Tensor> {
        self.source.forward(f0, excitation)
    }

    /// The source's magnitude and phase `(1, 2·bins, frames)`, as Kokoro's `TorchSTFT.transform`
    /// except in the first frame. With `center=True` that frame is the reflect-padded signal
    /// around sample 0, symmetric like the periodic Hann window, so its spectrum is real in exact
    /// arithmetic; an FFT leaves imaginary parts at rounding level instead, and where a real part
    /// is negative the phase is then +π or −π as the rounding falls (pocketfft, cuFFT and this
    /// DFT each fall their own way), which moves the audio by whole percents. The first frame's
    /// imaginary parts are set to exactly 0 here, the exact-arithmetic answer, so the audio does
    /// not depend on the device.
    fn source_spectrum(&self, source: &Tensor) -> Result<Tensor> {
        let (re, im) = self.stft.spectrum(source)?;
        let (batch, bins, frames) = im.dims3()?;
        let im = Tensor::cat(
            &[&Tensor::zeros((batch, bins, 1), DType::F32, im.device())?, &im.narrow(2, 1, frames - 1)?],
            2,
        )?;
        let magnitude = (re.sqr()? + im.sqr()?)?.sqrt()?;
        Tensor::cat(&[&magnitude, &atan2(&im, &re)?], 1)
    }

    /// `conv_post`'s output, `(1, n_fft + 2, frames)`: n_fft/2 + 1 log-magnitudes, then as many
    /// phase logits (the audio's spectrum before `exp` and `sin`). `x` is the decode stack's
    /// output `(1, upsample_initial_channel, f0_frames)` and `source` the
    /// [`Generator::harmonic_source`] for its F0 curve, `(1, samples)`. The token is checked
    /// before every stage and every resblock.
    pub fn spectrum(
        &self,
        x: &Tensor,
        style: &Tensor,
        source: &Tensor,
        cancel: &CancelToken,
    ) -> std::result::Result<Tensor, ModelError> {
        cancel.check()?;
        let har = self.source_spectrum(source)?;
        let mut x = x.clone();
        let kernels = self.stages.first().map_or(1, |s| s.resblocks.len());
        for stage in &self.stages {
            cancel.check()?;
            x = candle_nn::ops::leaky_relu(&x, STAGE_SLOPE)?;
            let x_source = stage.noise_res.forward(&stage.noise_conv.forward(&har)?, style)?;
            x = stage.up.forward(&x)?;
            if stage.last {
                x = reflect_pad_1d(&x, 1, 0)?;
            }
            if x.dims() != x_source.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "iSTFTNet: the upsampled features {:?} and the source branch {:?} do not line up",
                    x.dims(),
                    x_source.dims()
                ))
                .into());
            }
            x = (x + x_source)?;
            let mut sum: Option<Tensor> = None;
            for block in &stage.resblocks {
                cancel.check()?;
                let y = block.forward(&x, style)?;
                sum = Some(match sum {
                    None => y,
                    Some(acc) => (acc + y)?,
                });
            }
            // A true division, as PyTorch's `xs / num_kernels`.
            let sum = sum.expect("validate: at least one resblock");
            x = sum.broadcast_div(&Tensor::new(kernels as f32, sum.device())?)?;
        }
        let x = candle_nn::ops::leaky_relu(&x, POST_SLOPE)?;
        Ok(self.conv_post.forward(&x)?)
    }

    /// The audio `(samples,)`: [`Generator::harmonic_source`], [`Generator::spectrum`] and
    /// [`Generator::audio`].
    pub fn forward(
        &self,
        x: &Tensor,
        style: &Tensor,
        f0: &Tensor,
        excitation: &Excitation,
        cancel: &CancelToken,
    ) -> std::result::Result<Tensor, ModelError> {
        cancel.check()?;
        let source = self.harmonic_source(f0, excitation)?;
        let spec = self.spectrum(x, style, &source, cancel)?;
        Ok(self.audio(&spec)?)
    }

    /// The audio `(samples,)` for a [`Generator::spectrum`] `(1, n_fft + 2, frames)`: the
    /// inverse STFT of magnitude `exp(log-magnitudes)` and phase `sin(logits)`.
    pub fn audio(&self, spectrum: &Tensor) -> Result<Tensor> {
        let magnitude = spectrum.narrow(1, 0, self.bins)?.exp()?;
        let phase = spectrum.narrow(1, self.bins, self.bins)?.sin()?;
        self.stft.inverse(&magnitude, &phase, None)?.squeeze(0)
    }
}

/// Kokoro's `Decoder`: the decode stack and the [`Generator`].
#[derive(Debug, Clone)]
pub struct Decoder {
    f0_conv: Conv1d,
    n_conv: Conv1d,
    encode: AdainResBlk1d,
    decode: Vec<AdainResBlk1d>,
    asr_res: Conv1d,
    generator: Generator,
    cfg: Config,
    dim_in: usize,
    style_dim: usize,
    device: Device,
}

impl Decoder {
    /// Validates `cfg` and loads PyTorch's names from `vb`: `F0_conv`, `N_conv`, `encode.*`,
    /// `decode.{0..3}.*`, `asr_res.0`, `generator.*`. Weight-normed layers take `weight_g` /
    /// `weight_v` (Kokoro's checkpoint) or a folded `weight`. Kokoro's text features have
    /// `dim_in` 512 (its `hidden_dim`) and its style `style_dim` 128; the last decode block
    /// narrows to `upsample_initial_channel` (512 in Kokoro, which hard-codes both 512s).
    /// Everything is loaded and computed in f32, whatever `vb`'s dtype.
    pub fn new(dim_in: usize, style_dim: usize, cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        for (name, value) in [("dim_in", dim_in), ("style_dim", style_dim)] {
            if value == 0 || value > MAX_CHANNELS {
                bail!("Kokoro decoder: {name} is {value}, must be between 1 and {MAX_CHANNELS}");
            }
        }
        let vb = vb.set_dtype(DType::F32);
        let halve = Conv1dConfig { stride: 2, padding: 1, ..Default::default() };
        let wide = cfg.decode_width + 2 + ASR_RES;
        let decode = (0..4)
            .map(|i| {
                let (out, upsample) =
                    if i == 3 { (cfg.upsample_initial_channel, true) } else { (cfg.decode_width, false) };
                AdainResBlk1d::new(wide, out, style_dim, upsample, vb.pp(format!("decode.{i}")))
            })
            .collect::<Result<_>>()?;
        Ok(Decoder {
            f0_conv: conv1d(1, 1, 3, halve, true, vb.pp("F0_conv"))?,
            n_conv: conv1d(1, 1, 3, halve, true, vb.pp("N_conv"))?,
            encode: AdainResBlk1d::new(dim_in + 2, cfg.decode_width, style_dim, false, vb.pp("encode"))?,
            decode,
            asr_res: conv1d(dim_in, ASR_RES, 1, Conv1dConfig::default(), true, vb.pp("asr_res.0"))?,
            generator: Generator::new(style_dim, cfg, vb.pp("generator"))?,
            cfg: cfg.clone(),
            dim_in,
            style_dim,
            device: vb.device().clone(),
        })
    }

    /// F0 (and energy) frames for `text_frames` frames of text features: twice as many.
    pub fn f0_frames(text_frames: usize) -> usize {
        2 * text_frames
    }

    /// Audio samples for `text_frames` frames of text features, also the excitation's length:
    /// 600 per frame in Kokoro (25 ms at 24 kHz).
    pub fn samples(&self, text_frames: usize) -> usize {
        Excitation::len_for(&self.cfg, Self::f0_frames(text_frames))
    }

    /// The config this decoder was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The generator, for its intermediate outputs.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The decode stack's output `(1, upsample_initial_channel, 2T)`, the generator's input
    /// (shapes as in [`Decoder::forward`], which checks them). The token is checked before every
    /// block.
    pub fn features(
        &self,
        asr: &Tensor,
        f0: &Tensor,
        n: &Tensor,
        style: &Tensor,
        cancel: &CancelToken,
    ) -> std::result::Result<Tensor, ModelError> {
        cancel.check()?;
        let f0 = self.f0_conv.forward(&f0.unsqueeze(1)?)?;
        let n = self.n_conv.forward(&n.unsqueeze(1)?)?;
        let mut x = self.encode.forward(&Tensor::cat(&[asr, &f0, &n], 1)?, style)?;
        let asr_res = self.asr_res.forward(asr)?;
        // Kokoro feeds the features again to every block up to the one that upsamples, which is
        // the last: so to every block.
        for block in &self.decode {
            cancel.check()?;
            x = block.forward(&Tensor::cat(&[&x, &asr_res, &f0, &n], 1)?, style)?;
        }
        Ok(x)
    }

    /// The audio `(samples,)` in f32 for text features `asr` `(1, dim_in, T)` (T ≥ 2), an F0
    /// curve `f0` in Hz and an energy curve `n`, `(1, 2T)` each, a style `(1, style_dim)` (the
    /// first 128 values of Kokoro's voice vector) and an excitation of as many samples as the
    /// audio, [`Decoder::samples`]`(T)` (600 per frame). One utterance at a time (batch 1).
    /// Stops with [`ModelError::Cancelled`] at the next check once `cancel` is cancelled, and
    /// with [`ModelError::InvalidOutput`] when the audio is not finite.
    pub fn forward(
        &self,
        asr: &Tensor,
        f0: &Tensor,
        n: &Tensor,
        style: &Tensor,
        excitation: &Excitation,
        cancel: &CancelToken,
    ) -> std::result::Result<Tensor, ModelError> {
        let on_device = |t: &Tensor| t.to_device(&self.device)?.to_dtype(DType::F32);
        let (asr, f0, n, style) = (on_device(asr)?, on_device(f0)?, on_device(n)?, on_device(style)?);
        let excitation = Excitation { phase: on_device(&excitation.phase)?, noise: on_device(&excitation.noise)? };
        self.check_inputs(&asr, &f0, &n, &style, &excitation)?;
        let x = self.features(&asr, &f0, &n, &style, cancel)?;
        let audio = self.generator.forward(&x, &style, &f0, &excitation, cancel)?;
        ensure_finite(&audio, "Kokoro decoder: the audio")?;
        Ok(audio)
    }

    /// Refuses inputs whose shapes do not fit together, naming the expected ones.
    fn check_inputs(
        &self,
        asr: &Tensor,
        f0: &Tensor,
        n: &Tensor,
        style: &Tensor,
        excitation: &Excitation,
    ) -> Result<()> {
        let frames = match asr.dims() {
            &[1, d, t] if d == self.dim_in && t >= 2 => t,
            other => bail!("Kokoro decoder: asr has shape {other:?}, expected (1, {}, T) with T >= 2", self.dim_in),
        };
        let samples = self.samples(frames);
        if samples > MAX_SAMPLES {
            bail!("Kokoro decoder: {frames} frames would make {samples} samples, more than {MAX_SAMPLES}");
        }
        let f0_frames = Self::f0_frames(frames);
        let expected: [(&str, &Tensor, Vec<usize>); 5] = [
            ("f0", f0, vec![1, f0_frames]),
            ("n", n, vec![1, f0_frames]),
            ("style", style, vec![1, self.style_dim]),
            ("excitation.phase", &excitation.phase, vec![1, HARMONICS]),
            ("excitation.noise", &excitation.noise, vec![1, samples, HARMONICS]),
        ];
        for (name, t, dims) in expected {
            if t.dims() != dims.as_slice() {
                bail!("Kokoro decoder: {name} has shape {:?}, expected {dims:?} for asr of {frames} frames", t.dims());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polyphase form equals candle's `conv_transpose1d` (right for batch 1) at Kokoro's two
    /// geometries.
    #[test]
    fn polyphase_upsampling_matches_conv_transpose1d() {
        for (c_in, c_out, kernel, stride, len) in [(6, 4, 20, 10, 5), (4, 3, 12, 6, 7), (3, 2, 5, 3, 4)] {
            let weight = Tensor::randn(0f32, 1., (c_in, c_out, kernel), &Device::Cpu).unwrap();
            let bias = Tensor::randn(0f32, 1., c_out, &Device::Cpu).unwrap();
            let tensors = [("weight".to_string(), weight.clone()), ("bias".to_string(), bias.clone())];
            let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &Device::Cpu);
            let up = UpsampleConv::new(c_in, c_out, kernel, stride, vb).unwrap();
            let x = Tensor::randn(0f32, 1., (1, c_in, len), &Device::Cpu).unwrap();
            let want = x
                .conv_transpose1d(&weight, (kernel - stride) / 2, 0, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, c_out, 1)).unwrap())
                .unwrap();
            let got = up.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "kernel {kernel}, stride {stride}: {diff}");
        }
    }

    /// The blocked cumulative sum equals a plain one across block boundaries and recursion.
    #[test]
    fn blocked_cumsum_matches_a_running_sum() {
        for n in [1, 255, 256, 257, 1000, 70_000] {
            let x = Tensor::rand(0f64, 1., (2, n), &Device::Cpu).unwrap();
            let got = cumsum_f64(&x).unwrap().to_vec2::<f64>().unwrap();
            for (row, out) in x.to_vec2::<f64>().unwrap().iter().zip(&got) {
                let mut acc = 0.;
                for (v, o) in row.iter().zip(out) {
                    acc += v;
                    assert!((acc - o).abs() <= 1e-9 * acc.max(1.), "n {n}: {o} for {acc}");
                }
            }
        }
    }
}
