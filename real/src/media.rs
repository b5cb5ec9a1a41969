//! Media passed between real stages.

/// An RGB image, 8 bits per channel.
pub type Frame = image::RgbImage;

/// A video: frames at a frame rate, as the video stage (LivePortrait) makes it.
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

/// Writes a video as YUV4MPEG2 (`.y4m`, which ffmpeg, mpv and VLC play): 4:2:0 chroma
/// (`C420jpeg`, each chroma sample the mean of a 2 × 2 block), full-range BT.601 colours, the
/// frame rate as a fraction of integers (24 fps → `F24:1`). Frames must share one size.
pub fn write_y4m(out: &mut dyn std::io::Write, video: &Video) -> std::io::Result<()> {
    let Some(first) = video.frames.first() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a video without frames"));
    };
    let (w, h) = first.dimensions();
    if video.frames.iter().any(|f| f.dimensions() != (w, h)) || !(video.fps.is_finite() && video.fps > 0.0) {
        let reason = format!("frames of differing sizes, or a frame rate of {}", video.fps);
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, reason));
    }
    // Rates like 23.976 keep three decimals.
    let (num, den) = ((video.fps * 1000.0).round() as u64, 1000u64);
    let g = gcd(num, den);
    writeln!(out, "YUV4MPEG2 W{w} H{h} F{}:{} Ip A1:1 C420jpeg", num / g, den / g)?;
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut plane = Vec::with_capacity((w * h) as usize);
    for frame in &video.frames {
        out.write_all(b"FRAME\n")?;
        plane.clear();
        plane.extend(frame.pixels().map(|p| {
            let [r, g, b] = p.0.map(f32::from);
            (0.299 * r + 0.587 * g + 0.114 * b).round().clamp(0.0, 255.0) as u8
        }));
        out.write_all(&plane)?;
        for (kr, kg, kb) in [(-0.168_736, -0.331_264, 0.5), (0.5, -0.418_688, -0.081_312)] {
            plane.clear();
            for cy in 0..ch {
                for cx in 0..cw {
                    let mut sum = 0.0f32;
                    let mut n = 0.0f32;
                    for (x, y) in
                        [(2 * cx, 2 * cy), (2 * cx + 1, 2 * cy), (2 * cx, 2 * cy + 1), (2 * cx + 1, 2 * cy + 1)]
                    {
                        if x < w && y < h {
                            let [r, g, b] = frame.get_pixel(x, y).0.map(f32::from);
                            sum += kr * r + kg * g + kb * b;
                            n += 1.0;
                        }
                    }
                    plane.push((128.0 + sum / n).round().clamp(0.0, 255.0) as u8);
                }
            }
            out.write_all(&plane)?;
        }
    }
    Ok(())
}

/// True when `ffmpeg` runs from PATH: clips are then encoded as H.264 + AAC mp4 files, else
/// written as `.y4m` video beside a `.wav` (which ffmpeg, mpv and VLC play too).
pub fn ffmpeg_on_path() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Muxes a `.y4m` video and a `.wav` into an H.264 + AAC mp4 with ffmpeg (cut to the shorter of
/// the two). `mp4` is written by ffmpeg in place: give a scratch path and move it after.
pub fn mux_mp4(y4m: &std::path::Path, wav: &std::path::Path, mp4: &std::path::Path) -> std::io::Result<()> {
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(y4m)
        .arg("-i")
        .arg(wav)
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(mp4)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("ffmpeg failed ({status}) making {}", mp4.display())))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// A WAV file is at most this large (a 5-minute stereo 48 kHz 32-bit float file is 115 MB).
pub const MAX_WAV_BYTES: u64 = 256 << 20;
/// An image file is at most this large.
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// An image is at most this many pixels on a side.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Reads a WAV file (PCM 8 to 32 bits or 32-bit float, 1 to 8 channels) as mono samples in
/// [−1, 1] (channels averaged) and its sample rate. Errors say what is wrong with the file.
pub fn read_wav_mono(path: &std::path::Path) -> Result<(Vec<f32>, u32), String> {
    let (file, len) = crate::loading::open_regular(path, "a WAV file")?;
    if len > MAX_WAV_BYTES {
        return Err(format!("{len} bytes, more than the {MAX_WAV_BYTES} a WAV file may have"));
    }
    let reader = hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| format!("not a WAV file: {e}"))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if !(1..=8).contains(&channels) {
        return Err(format!("{channels} channels; 1 to 8 are read"));
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader.into_samples::<f32>().collect::<Result<_, _>>(),
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let full = (1u64 << (bits - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 / full)).collect::<Result<_, _>>()
        }
        (format, bits) => {
            return Err(format!("{bits}-bit {format:?} samples; PCM 8 to 32 bits or 32-bit float are read"))
        }
    }
    .map_err(|e| format!("a damaged WAV file: {e}"))?;
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(format!("sample {i} is not finite"));
    }
    let mono = samples.chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect();
    Ok((mono, spec.sample_rate))
}

/// Reads an image file (PNG, or any format the `image` crate was built with) as RGB, bounded by
/// [`MAX_IMAGE_BYTES`] and [`MAX_IMAGE_SIDE`].
pub fn read_rgb(path: &std::path::Path) -> Result<Frame, String> {
    let (_, len) = crate::loading::open_regular(path, "an image file")?;
    if len > MAX_IMAGE_BYTES {
        return Err(format!("{len} bytes, more than the {MAX_IMAGE_BYTES} an image file may have"));
    }
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read: {e}"))?;
    let (w, h) = reader.into_dimensions().map_err(|e| format!("not a readable image: {e}"))?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(format!("{w}×{h} pixels; at most {MAX_IMAGE_SIDE} on a side"));
    }
    let image = image::open(path).map_err(|e| format!("not a readable image: {e}"))?;
    Ok(image.to_rgb8())
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

    #[test]
    fn wav_files_are_read_as_mono_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, wav_16bit(&[0.0, 0.5, -0.5, 1.0], 16_000)).unwrap();
        let (samples, rate) = read_wav_mono(&path).unwrap();
        assert_eq!(rate, 16_000);
        assert_eq!(samples.len(), 4);
        assert!((samples[1] - 0.5).abs() < 1e-4 && (samples[3] - 1.0).abs() < 1e-4, "{samples:?}");
        let stereo = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&stereo, spec).unwrap();
        for s in [0.2f32, 0.4, -1.0, 0.0] {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(read_wav_mono(&stereo).unwrap(), (vec![0.3f32, -0.5], 8000));
        std::fs::write(&path, b"RIFF....not a wav").unwrap();
        assert!(read_wav_mono(&path).unwrap_err().starts_with("not a WAV file"));
        assert!(read_wav_mono(dir.path()).is_err(), "a folder");
        let png = dir.path().join("a.png");
        Frame::new(3, 2).save(&png).unwrap();
        assert_eq!(read_rgb(&png).unwrap().dimensions(), (3, 2));
        assert!(read_rgb(&path).unwrap_err().contains("not a readable image"));
    }

    #[test]
    fn y4m_has_a_header_and_420_planes_of_the_right_colours() {
        let red = Frame::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        let video = Video { frames: vec![red.clone(), red], fps: 24.0 };
        let mut bytes = Vec::new();
        write_y4m(&mut bytes, &video).unwrap();
        let header = b"YUV4MPEG2 W4 H2 F24:1 Ip A1:1 C420jpeg\n";
        assert!(bytes.starts_with(header));
        let frame = 6 + 4 * 2 + 2 * 2;
        assert_eq!(bytes.len(), header.len() + 2 * frame);
        let body = &bytes[header.len()..];
        assert_eq!(&body[..6], b"FRAME\n");
        // Full-range BT.601 red: Y 76, Cb 85, Cr 255.
        assert_eq!(&body[6..14], [76; 8]);
        assert_eq!(&body[14..16], [85, 85]);
        assert_eq!(&body[16..18], [255, 255]);
        let mut odd = Vec::new();
        write_y4m(&mut odd, &Video { frames: vec![Frame::new(3, 3)], fps: 23.976 }).unwrap();
        assert!(odd.starts_with(b"YUV4MPEG2 W3 H3 F2997:125 "), "{}", String::from_utf8_lossy(&odd[..40]));
        assert_eq!(odd.len(), "YUV4MPEG2 W3 H3 F2997:125 Ip A1:1 C420jpeg\n".len() + 6 + 9 + 2 * 4);
        assert!(write_y4m(&mut Vec::new(), &Video { frames: vec![], fps: 24.0 }).is_err());
        let mixed = Video { frames: vec![Frame::new(2, 2), Frame::new(4, 2)], fps: 24.0 };
        assert!(write_y4m(&mut Vec::new(), &mixed).is_err());
    }
}
