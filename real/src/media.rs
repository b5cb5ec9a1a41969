//! Media passed between real stages.

/// An RGB image, 8 bits per channel.
pub type Frame = image::RgbImage;

/// A video: frames at a frame rate. Produced by the video stage (LivePortrait, not built yet).
#[derive(Debug, Clone)]
pub struct Video {
    /// Frames in order.
    pub frames: Vec<Frame>,
    /// Frames per second.
    pub fps: f32,
}

impl Video {
    /// `k` frame indices spread evenly from the first frame to the last (all frames when fewer).
    pub fn keyframe_indices(&self, k: usize) -> Vec<usize> {
        let n = self.frames.len();
        if n <= k {
            return (0..n).collect();
        }
        if k == 1 {
            return vec![n / 2];
        }
        (0..k).map(|j| (j * (n - 1) + (k - 1) / 2) / (k - 1)).collect()
    }
}

/// Resizes an RGB image with a bicubic filter exactly as Pillow's `Image.resize(..., BICUBIC)`
/// does, since CLIP's reference preprocessing (transformers' `CLIPImageProcessor`) uses it: the
/// cubic kernel with a = -0.5, widened by the scale when shrinking (antialiasing), weights in
/// 22-bit fixed point, a horizontal pass rounded to 8 bits, then a vertical pass.
pub fn resize_bicubic_like_pil(src: &Frame, width: u32, height: u32) -> Frame {
    assert!(width > 0 && height > 0, "resize to an empty image");
    let (in_w, in_h) = src.dimensions();
    let horizontal = Coefficients::new(in_w as usize, width as usize);
    let vertical = Coefficients::new(in_h as usize, height as usize);
    // Only the source rows the vertical pass reads are resampled horizontally.
    let first_row = vertical.bounds[0].0;
    let last = vertical.bounds[height as usize - 1];
    let rows = last.0 + last.1 - first_row;
    let src = src.as_raw();
    let mut temp = vec![0u8; rows * width as usize * 3];
    for y in 0..rows {
        let row = &src[(y + first_row) * in_w as usize * 3..][..in_w as usize * 3];
        for (x, &(start, len)) in horizontal.bounds.iter().enumerate() {
            let k = &horizontal.weights[x * horizontal.size..][..len];
            for c in 0..3 {
                let sum =
                    k.iter().enumerate().fold(ROUNDING, |acc, (i, &w)| acc + i64::from(row[(start + i) * 3 + c]) * w);
                temp[(y * width as usize + x) * 3 + c] = clip8(sum);
            }
        }
    }
    let mut out = vec![0u8; width as usize * height as usize * 3];
    for (y, &(start, len)) in vertical.bounds.iter().enumerate() {
        let k = &vertical.weights[y * vertical.size..][..len];
        for x in 0..width as usize {
            for c in 0..3 {
                let sum = k.iter().enumerate().fold(ROUNDING, |acc, (i, &w)| {
                    acc + i64::from(temp[((start - first_row + i) * width as usize + x) * 3 + c]) * w
                });
                out[(y * width as usize + x) * 3 + c] = clip8(sum);
            }
        }
    }
    Frame::from_raw(width, height, out).expect("the buffer has width × height pixels")
}

/// Pillow's fixed-point precision for 8-bit images (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Half a unit, added before the shift so that it rounds to nearest.
const ROUNDING: i64 = 1 << (PRECISION_BITS - 1);

fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One axis' filter: for each output pixel the first source pixel and how many it reads, and
/// their fixed-point weights (`size` per output pixel).
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i64>,
    size: usize,
}

impl Coefficients {
    fn new(in_size: usize, out_size: usize) -> Coefficients {
        let cubic = |x: f64| {
            const A: f64 = -0.5;
            let x = x.abs();
            if x < 1.0 {
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * A
            } else {
                0.0
            }
        };
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        // Pillow multiplies by the inverse (`ss`); dividing would differ in the last bit.
        let inverse = 1.0 / filter_scale;
        let size = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i64; out_size * size];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            // Truncation toward zero, as Pillow's C casts.
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let len = max - min;
            let k: Vec<f64> = (0..len).map(|x| cubic((x as f64 + min as f64 - center + 0.5) * inverse)).collect();
            let total: f64 = k.iter().sum();
            for (x, w) in k.iter().enumerate() {
                let w = if total != 0.0 { w / total } else { *w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                weights[xx * size + x] = if w < 0.0 { (fixed - 0.5) as i64 } else { (fixed + 0.5) as i64 };
            }
            bounds.push((min, len));
        }
        Coefficients { bounds, weights, size }
    }
}

/// Mono samples as a 16-bit PCM WAV file's bytes (what players and speech recognisers read
/// everywhere). Samples are clamped to [-1, 1] and rounded; a NaN becomes silence.
///
/// ```
/// let bytes = vortex_real::media::wav_16bit(&[0.0, 0.5, -1.0], 24_000);
/// let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
/// assert_eq!(reader.spec().sample_rate, 24_000);
/// assert_eq!(reader.into_samples::<i16>().map(Result::unwrap).collect::<Vec<_>>(), [0, 16384, -32767]);
/// ```
pub fn wav_16bit(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut bytes = std::io::Cursor::new(Vec::with_capacity(44 + 2 * samples.len()));
    {
        // Writing into memory fails only past hound's 4 GiB WAV limit, which 2^31 samples are
        // far beyond what any stage produces (the audio stage's bound is minutes).
        let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("a WAV header fits in memory");
        let mut writer16 = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            let s = if s.is_nan() { 0. } else { s.clamp(-1., 1.) };
            writer16.write_sample((s * 32767.).round() as i16);
        }
        writer16.flush().expect("writing into memory");
        writer.finalize().expect("writing into memory");
    }
    bytes.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_spread_evenly_and_include_both_ends() {
        let video = Video { frames: vec![Frame::new(1, 1); 101], fps: 25.0 };
        assert_eq!(video.keyframe_indices(5), [0, 25, 50, 75, 100]);
        assert_eq!(video.keyframe_indices(1), [50]);
        let short = Video { frames: vec![Frame::new(1, 1); 3], fps: 25.0 };
        assert_eq!(short.keyframe_indices(5), [0, 1, 2]);
    }
}
