//! CLIP's preprocessing and tokenization against transformers' `CLIPImageProcessor` (Pillow's
//! bicubic resize) and `CLIPTokenizer`: non-square frames, and prompts shorter and longer than the
//! 77-token context. The fixture comes from `tools/gen_clip_processor_fixture.py`; the frames are
//! a formula computed on both sides.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use vortex_real::media::Frame;

mod common;

use common::counter::splitmix64;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_processor")
}

fn golden() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("golden.json")).unwrap()).unwrap()
}

/// The fixture's frame `index` (the same formula as the generator's `frame`).
fn frame(index: u64, width: u32, height: u32) -> Frame {
    Frame::from_fn(width, height, |x, y| {
        let value = |c: u32| {
            let noise = splitmix64((index << 40) ^ (u64::from(y) << 20) ^ (u64::from(x) << 2) ^ u64::from(c)) >> 58;
            let gradient = (x * 191 / (width - 1).max(1) + y * 64 / (height - 1).max(1) + 40 * c) % 192;
            (gradient + noise as u32) as u8
        };
        image::Rgb([value(0), value(1), value(2)])
    })
}

#[test]
fn preprocessing_matches_clip_image_processor_on_non_square_frames() {
    let g = golden();
    let size = g["size"].as_u64().unwrap() as usize;
    let expected = candle_core::safetensors::load(dir().join("pixels.safetensors"), &Device::Cpu).unwrap();
    for (i, wh) in g["frames"].as_array().unwrap().iter().enumerate() {
        let (w, h) = (wh[0].as_u64().unwrap() as u32, wh[1].as_u64().unwrap() as u32);
        let f = frame(i as u64, w, h);
        let ours = vortex_real::clip::preprocess(&[&f], size, &Device::Cpu).unwrap().squeeze(0).unwrap();
        let theirs: &Tensor = &expected[&format!("frame{i}")];
        assert_eq!(ours.dims(), theirs.dims());
        let diff = (&ours - theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        // Pixels are 8-bit before normalisation: equal resizes give equal values up to f32
        // rounding (1e-6); one grey level off would be 1/255/0.27 ≈ 0.015.
        assert!(diff < 1e-5, "frame {i} ({w}×{h}): differs from CLIPImageProcessor by {diff}");
    }
}

#[test]
fn tokenization_matches_clip_tokenizer_with_truncation() {
    let g = golden();
    let tokenizer = tokenizers::Tokenizer::from_file(dir().join("tokenizer.json")).unwrap();
    let end_of_text = tokenizer.token_to_id(vortex_real::clip::END_OF_TEXT).unwrap();
    let context = g["context"].as_u64().unwrap() as usize;
    for case in g["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let expected: Vec<u32> =
            case["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let (ids, truncated) = vortex_real::clip::tokenize(&tokenizer, end_of_text, context, prompt).unwrap();
        assert_eq!(ids, expected, "{prompt:?}");
        assert_eq!(truncated, case["untruncated_length"].as_u64().unwrap() as usize > context, "{prompt:?}");
    }
}

#[test]
fn resize_matches_pillow_where_no_resampling_is_needed() {
    // Same size: Pillow copies; so must we.
    let f = frame(9, 40, 30);
    assert_eq!(vortex_real::media::resize_bicubic_like_pil(&f, 40, 30), f);
}
