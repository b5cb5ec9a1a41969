//! Short-time Fourier transform and its inverse, as `torch.stft` / `torch.istft`.

use candle_core::{bail, DType, Device, Result, Tensor};
use std::f64::consts::PI;

/// Largest `n_fft`: the transforms are products with a dense `n_fft × (n_fft + 2)` basis, right
/// for iSTFTNet's tiny frames (20) and wasteful past a few thousand.
pub const MAX_N_FFT: usize = 4096;

/// PyTorch's floor for the window envelope that `torch.istft` divides by (its NOLA check).
const MIN_ENVELOPE: f32 = 1e-11;

/// `torch.stft` and `torch.istft` with a periodic Hann window, `center=True`, reflect padding,
/// `onesided=True`, `normalized=False`, as Kokoro's `TorchSTFT` uses them (n_fft 20, hop 5,
/// window 20).
///
/// The discrete Fourier transforms are single matrix products of all frames with precomputed
/// cosine and sine bases, the window folded in; frames are cut, and overlap-added back, with
/// ⌈n_fft / hop⌉ shifted slices of the signal viewed as rows of `hop` samples. Only 2-D
/// products, slices, padding and sums: candle 0.11.1's CPU `conv_transpose1d` gives wrong
/// results for every batch row but the first when padding is 0 (its col2im path), which is
/// what an overlap-add would be. Everything runs in f32 on the device given to [`Stft::new`].
#[derive(Debug, Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    /// `[n_fft, 2·bins]`: columns `w·cos` then `−w·sin`, frequency bins 0 to n_fft / 2.
    forward_basis: Tensor,
    /// `[2·bins, n_fft]`: the inverse real DFT (its 1/n_fft and doubled inner bins) times
    /// the window, for the real parts then the imaginary parts.
    inverse_basis: Tensor,
    /// `[1, 1, n_fft]`: the squared window, whose overlap-add `torch.istft` divides by.
    window_sq: Tensor,
}

impl Stft {
    /// A transform of `n_fft`-point frames every `hop` samples, with a periodic Hann window of
    /// `win_length` samples centred in the frame (zeros either side when shorter than `n_fft`).
    pub fn new(n_fft: usize, hop: usize, win_length: usize, device: &Device) -> Result<Self> {
        if !(1..=MAX_N_FFT).contains(&n_fft) || hop == 0 || win_length == 0 || win_length > n_fft {
            bail!(
                "STFT needs 1 <= n_fft <= {MAX_N_FFT}, hop >= 1 and 1 <= win_length <= n_fft; got n_fft {n_fft}, hop {hop}, win_length {win_length}"
            );
        }
        let window = hann_window(n_fft, win_length);
        let bins = n_fft / 2 + 1;
        let mut forward = vec![0f32; 2 * bins * n_fft];
        let mut inverse = vec![0f32; 2 * bins * n_fft];
        for k in 0..bins {
            // The inverse real DFT counts each inner bin twice (its mirror image) and reads only
            // the real part of bin 0 and of the Nyquist bin, as a C2R FFT does.
            let edge = k == 0 || 2 * k == n_fft;
            let weight = if edge { 1. } else { 2. } / n_fft as f64;
            for n in 0..n_fft {
                // (k·n mod n_fft) keeps the angle small and the basis accurate.
                let angle = 2. * PI * ((k * n) % n_fft) as f64 / n_fft as f64;
                let (sin, cos) = if edge { (0., angle.cos()) } else { angle.sin_cos() };
                forward[k * n_fft + n] = (window[n] * cos) as f32;
                forward[(bins + k) * n_fft + n] = (-window[n] * sin) as f32;
                inverse[k * n_fft + n] = (window[n] * weight * cos) as f32;
                inverse[(bins + k) * n_fft + n] = (-window[n] * weight * sin) as f32;
            }
        }
        let window_sq: Vec<f32> = window.iter().map(|w| (w * w) as f32).collect();
        Ok(Self {
            n_fft,
            hop,
            forward_basis: Tensor::from_vec(forward, (2 * bins, n_fft), device)?.t()?.contiguous()?,
            inverse_basis: Tensor::from_vec(inverse, (2 * bins, n_fft), device)?,
            window_sq: Tensor::from_vec(window_sq, (1, 1, n_fft), device)?,
        })
    }

    /// Frequency bins per frame: n_fft / 2 + 1.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// The complex spectrum of `(batch, length)` signals as (real, imaginary) parts, each
    /// `(batch, bins, 1 + length / hop)`, as `torch.stft(..., return_complex=True)`. The signal
    /// is reflect-padded by n_fft / 2 on both sides, so it needs more than n_fft / 2 samples.
    pub fn spectrum(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, len) = x.dims2().map_err(|e| e.context("STFT wants (batch, length)"))?;
        let pad = self.n_fft / 2;
        if len <= pad {
            bail!("STFT with n_fft {} needs more than {pad} samples to reflect-pad, got {len}", self.n_fft);
        }
        let padded = super::reflect_pad_1d(&x.to_dtype(DType::F32)?, pad, pad)?;
        let frames = self.frames(&padded)?;
        let (batch, count, _) = frames.dims3()?;
        let bins = self.bins();
        let spec = frames
            .reshape((batch * count, self.n_fft))?
            .matmul(&self.forward_basis)?
            .reshape((batch, count, 2 * bins))?
            .transpose(1, 2)?;
        let re = spec.narrow(1, 0, bins)?;
        // + 0 turns a -0 imaginary part (bin 0 and the Nyquist bin of a frame of negative
        // samples) into the +0 an FFT gives, which moves the phase from -π to π.
        let im = spec.narrow(1, bins, bins)?.affine(1., 0.)?;
        Ok((re, im))
    }

    /// Magnitude and phase (radians, in [-π, π]) of [`Stft::spectrum`], as Kokoro's
    /// `TorchSTFT.transform`: `torch.abs` and `torch.angle` of `torch.stft`.
    pub fn transform(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (re, im) = self.spectrum(x)?;
        let magnitude = (re.sqr()? + im.sqr()?)?.sqrt()?;
        Ok((magnitude, super::atan2(&im, &re)?))
    }

    /// The signal whose spectrum has this magnitude and phase, `(batch, bins, frames)` each, as
    /// Kokoro's `TorchSTFT.inverse` (`torch.istft` of `magnitude · e^(i·phase)`), returned as
    /// `(batch, length)` (Kokoro's adds a channel dimension).
    pub fn inverse(&self, magnitude: &Tensor, phase: &Tensor, length: Option<usize>) -> Result<Tensor> {
        if magnitude.shape() != phase.shape() {
            bail!("iSTFT: magnitude {:?} and phase {:?} differ in shape", magnitude.dims(), phase.dims());
        }
        let (magnitude, phase) = (magnitude.to_dtype(DType::F32)?, phase.to_dtype(DType::F32)?);
        self.inverse_spectrum(&(&magnitude * phase.cos()?)?, &(&magnitude * phase.sin()?)?, length)
    }

    /// `torch.istft` of the spectrum with these real and imaginary parts, `(batch, bins,
    /// frames)` each: inverse real DFT per frame (the imaginary parts of bin 0 and the Nyquist
    /// bin are ignored), windowed, overlap-added, divided by the overlap-added squared window,
    /// and ⌊n_fft / 2⌋ samples trimmed from each end. The result has (frames − 1)·hop samples
    /// (one more for an odd n_fft), or `length`: cut, or padded with zeros past the last frame,
    /// as PyTorch does. An error where the window envelope is below 1e-11, as in PyTorch.
    pub fn inverse_spectrum(&self, re: &Tensor, im: &Tensor, length: Option<usize>) -> Result<Tensor> {
        let (batch, bins, frames) = re.dims3().map_err(|e| e.context("iSTFT wants (batch, bins, frames)"))?;
        if re.shape() != im.shape() || bins != self.bins() || frames == 0 {
            bail!(
                "iSTFT with n_fft {} wants real and imaginary parts of shape (batch, {}, frames >= 1), got {:?} and {:?}",
                self.n_fft,
                self.bins(),
                re.dims(),
                im.dims()
            );
        }
        let spec = Tensor::cat(&[re.to_dtype(DType::F32)?, im.to_dtype(DType::F32)?], 1)?;
        let rows = spec.transpose(1, 2)?.contiguous()?.reshape((batch * frames, 2 * bins))?;
        let full = self.overlap_add(&rows.matmul(&self.inverse_basis)?.reshape((batch, frames, self.n_fft))?)?;
        let full_len = (frames - 1) * self.hop + self.n_fft;
        let start = self.n_fft / 2;
        let end = match length {
            Some(0) => bail!("iSTFT: a length of 0 samples was asked for"),
            Some(len) => start + len,
            None => full_len - self.n_fft / 2,
        };
        if end <= start {
            bail!("iSTFT: {frames} frame(s) of hop {} leave no samples once the n_fft / 2 padding is trimmed; pass a length", self.hop);
        }
        let kept = end.min(full_len) - start;
        let envelope =
            self.overlap_add(&self.window_sq.broadcast_as((1, frames, self.n_fft))?)?.narrow(1, start, kept)?;
        let lowest = envelope.flatten_all()?.min(0)?.to_scalar::<f32>()?;
        if lowest.is_nan() || lowest.abs() < MIN_ENVELOPE {
            bail!(
                "iSTFT: the overlap-added window is {lowest:e} somewhere in the {kept} samples kept (n_fft {}, hop {}): it cannot be divided by (PyTorch refuses the same)",
                self.n_fft,
                self.hop
            );
        }
        let y = full.narrow(1, start, kept)?.broadcast_div(&envelope)?;
        y.pad_with_zeros(1, 0, end - start - kept)
    }

    /// Rows of ⌈n_fft / hop⌉ chunks of `hop` samples, the slice a frame spans.
    fn chunks_per_frame(&self) -> usize {
        self.n_fft.div_ceil(self.hop)
    }

    /// `(batch, length)` -> `(batch, 1 + (length − n_fft) / hop, n_fft)`: frame f is samples
    /// f·hop to f·hop + n_fft. The signal, viewed as rows of `hop` samples, is sliced once per
    /// chunk of a frame and the slices concatenated side by side.
    fn frames(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, len) = x.dims2()?;
        let count = 1 + (len - self.n_fft) / self.hop;
        let chunks = self.chunks_per_frame();
        let rows = count + chunks - 1;
        let x = if rows * self.hop >= len {
            x.pad_with_zeros(1, 0, rows * self.hop - len)?
        } else {
            x.narrow(1, 0, rows * self.hop)?
        };
        let x = x.reshape((batch, rows, self.hop))?;
        let slices = (0..chunks).map(|j| x.narrow(1, j, count)).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&slices, 2)?.narrow(2, 0, self.n_fft)
    }

    /// The inverse of [`Stft::frames`] with sums where frames overlap: `(batch, frames, n_fft)`
    /// -> `(batch, (frames − 1)·hop + n_fft)`. Chunk j of every frame lands j rows of `hop`
    /// samples further on, so each chunk is one shifted slice added to the output rows.
    fn overlap_add(&self, frames: &Tensor) -> Result<Tensor> {
        let (batch, count, _) = frames.dims3()?;
        let chunks = self.chunks_per_frame();
        let frames = frames.pad_with_zeros(2, 0, chunks * self.hop - self.n_fft)?;
        let frames = frames.reshape((batch, count, chunks, self.hop))?;
        let mut sum: Option<Tensor> = None;
        for j in 0..chunks {
            let part = frames.narrow(2, j, 1)?.squeeze(2)?.pad_with_zeros(1, j, chunks - 1 - j)?;
            sum = Some(match sum {
                None => part,
                Some(acc) => (acc + part)?,
            });
        }
        let rows = count + chunks - 1;
        sum.expect("n_fft >= 1").reshape((batch, rows * self.hop))?.narrow(1, 0, (count - 1) * self.hop + self.n_fft)
    }
}

/// `torch.hann_window(win_length, periodic=True)` in f64, zero-padded to `n_fft` with the extra
/// zeros split as `torch.stft` does (⌊(n_fft − win_length) / 2⌋ on the left).
fn hann_window(n_fft: usize, win_length: usize) -> Vec<f64> {
    let left = (n_fft - win_length) / 2;
    let mut window = vec![0.; n_fft];
    for (n, w) in window[left..left + win_length].iter_mut().enumerate() {
        *w = 0.5 - 0.5 * (2. * PI * n as f64 / win_length as f64).cos();
    }
    window
}
