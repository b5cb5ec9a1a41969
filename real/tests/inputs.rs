//! Hostile input files in real mode: refused with a clear error naming the file (and the tensor or
//! key), never a panic, a hang or an unbounded read.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use vortex_real::clip::{self, ClipEncoder, HfClipConfig};
use vortex_real::gguf::GgufHeader;
use vortex_real::loading;
use vortex_real::weights::WeightsFile;

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo runs");
    assert!(status.success());
    path
}

#[test]
fn fifos_and_directories_are_refused_before_they_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    // Opening any of these FIFOs for reading would block until a writer came: the test would hang.
    let weights = fifo(dir.path(), "model.safetensors");
    let err = WeightsFile::inspect("clip_b32", &weights, "").unwrap_err().to_string();
    assert!(err.contains("model.safetensors: is not a regular file (a FIFO, device or socket)"), "{err}");
    let json = fifo(dir.path(), "config.json");
    let err = loading::read_json_value("clip_b32", &json, "").unwrap_err().to_string();
    assert!(err.contains("config.json: is not a regular file"), "{err}");
    let tok = fifo(dir.path(), "tokenizer.json");
    let err = loading::tokenizer("clip_b32", &tok, "").unwrap_err().to_string();
    assert!(err.contains("tokenizer.json: is not a regular file"), "{err}");
    let gguf = fifo(dir.path(), "flux.gguf");
    let err = GgufHeader::inspect("flux", &gguf, "").unwrap_err().to_string();
    assert!(err.contains("flux.gguf: is not a regular file"), "{err}");
    let err = WeightsFile::inspect("clip_b32", dir.path(), "").unwrap_err().to_string();
    assert!(err.contains("is a directory, expected a .safetensors file"), "{err}");
    let err = loading::tokenizer("clip_b32", dir.path(), "").unwrap_err().to_string();
    assert!(err.contains("is a directory, expected a tokenizer.json file"), "{err}");
}

#[test]
fn files_read_into_memory_are_refused_above_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("config.json");
    // Sparse: nothing is written, and nothing must be read.
    std::fs::File::create(&big).unwrap().set_len(loading::MAX_JSON_BYTES + 1).unwrap();
    let err = loading::read_json_value("m", &big, "").unwrap_err().to_string();
    assert!(err.contains(&format!("above the limit of {} bytes for a JSON file", loading::MAX_JSON_BYTES)), "{err}");
    let tok = dir.path().join("tokenizer.json");
    std::fs::File::create(&tok).unwrap().set_len(loading::MAX_TOKENIZER_BYTES + 1).unwrap();
    let err = loading::tokenizer("m", &tok, "").unwrap_err().to_string();
    assert!(err.contains("above the limit"), "{err}");
}

fn safetensors(dir: &Path, name: &str, header: &str, data: usize) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn safetensors_header_problems_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let inspect = |header: &str, data| {
        WeightsFile::inspect("m", &safetensors(dir.path(), "w.safetensors", header, data), "").unwrap_err().to_string()
    };
    // 2^63 × 4 elements: the count overflows u64 (and usize).
    let err = inspect(r#"{"big":{"dtype":"F32","shape":[9223372036854775808,4],"data_offsets":[0,8]}}"#, 8);
    assert!(err.contains("tensor big: its shape [9223372036854775808, 4] is too large (its size overflows)"), "{err}");
    // A dtype label that does not match the data: F32 × 4 is 16 bytes, the range holds 8.
    let err = inspect(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#, 8);
    assert!(
        err.contains("tensor w: dtype F32 and shape [4] take 16 bytes, but its data range [0, 8] holds 8"),
        "{err}"
    );
    let err = inspect(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        8,
    );
    assert!(err.contains("tensor a is listed twice in its header"), "{err}");
}

#[test]
fn shards_listed_twice_or_sharing_a_tensor_are_refused_and_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let a = safetensors(dir.path(), "a.safetensors", r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8);
    let b = safetensors(dir.path(), "b.safetensors", r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8);
    let same = dir.path().join(".").join("a.safetensors");
    let err = WeightsFile::inspect_shards("flux", &[&a, &same], "").unwrap_err().to_string();
    assert!(err.contains("a.safetensors is listed twice"), "{err}");
    let err = WeightsFile::inspect_shards("flux", &[&a, &b], "").unwrap_err().to_string();
    assert!(err.contains("tensor x is in two shards") && err.contains("b.safetensors"), "{err}");
    // Through the VRAM budget: Flux's CLIP-L shard listed twice.
    let mut flux = common::write_tiny_flux(dir.path());
    let shard = flux.clip.weights.0[0].clone();
    flux.clip.weights.0.push(shard);
    let err = vortex_real::flux::resident_size(&flux, dir.path()).unwrap_err().to_string();
    assert!(err.contains("clip.safetensors is listed twice"), "{err}");
}

/// A GGUF v3 file: metadata entries (key, type, raw value bytes), then tensor entries
/// (name, dims, GGML type, offset), then `data` bytes after 32-byte alignment.
fn gguf(metadata: &[(&str, u32, Vec<u8>)], tensors: &[(&str, &[u64], u32, u64)], data: usize) -> Vec<u8> {
    let string = |s: &str| [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat();
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((metadata.len() as u64).to_le_bytes());
    for (key, kind, value) in metadata {
        b.extend(string(key));
        b.extend(kind.to_le_bytes());
        b.extend(value);
    }
    for (name, dims, kind, offset) in tensors {
        b.extend(string(name));
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(kind.to_le_bytes());
        b.extend(offset.to_le_bytes());
    }
    b.resize(b.len().div_ceil(32) * 32 + data, 0);
    b
}

#[test]
fn crafted_gguf_headers_are_refused_naming_the_tensor_without_panics_or_huge_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux1-schnell-Q4_0.gguf");
    let check = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        vortex_real::flux::gguf_resident_bytes("flux", &path).map_err(|e| e.to_string())
    };
    // A valid file passes, and candle reads it too.
    let ok = gguf(&[], &[("a", &[4], 0, 0)], 16);
    assert_eq!(check(ok).unwrap(), (16, 1));
    let mut file = std::fs::File::open(&path).unwrap();
    candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();

    let refused = |bytes, expected: &str| {
        let err = check(bytes).unwrap_err();
        assert!(err.starts_with("flux: ") && err.contains("flux1-schnell-Q4_0.gguf: is not a GGUF file"), "{err}");
        assert!(err.contains(expected), "{err}");
    };
    refused(
        gguf(&[], &[("big", &[1 << 40, 1 << 40], 0, 0)], 0),
        "tensor big: its shape [1099511627776, 1099511627776] is too large",
    );
    // candle divides by the alignment.
    refused(gguf(&[("general.alignment", 4, 0u32.to_le_bytes().to_vec())], &[], 0), "general.alignment is 0");
    let mut many = gguf(&[], &[], 0);
    many[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    refused(many, "it declares 1099511627776 tensors, above the limit of 65536");
    let mut long_name = gguf(&[], &[("a", &[4], 0, 0)], 16);
    long_name[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(long_name, "a tensor name is 18446744073709551615 bytes long, above the limit");
    // An array of 2^30 one-byte values: candle would hold each as a 32-byte value.
    let array = [&9u32.to_le_bytes()[..], &0u32.to_le_bytes(), &(1u64 << 30).to_le_bytes()].concat();
    refused(gguf(&[("tokenizer.ggml.scores", 9, array)], &[], 0), "its arrays hold more than 4194304 elements");
    refused(gguf(&[], &[("a", &[4], 0, 0), ("a", &[4], 0, 16)], 32), "tensor a is listed twice");
    refused(gguf(&[], &[("a", &[4], 0, 0)], 8), "tensor a: its 16 bytes at offset 0 run past the end of the file");
    refused(gguf(&[], &[("a", &[4], 99, 0)], 16), "tensor a: its type 99 is not a GGML type candle reads");
    refused(gguf(&[], &[("a", &[1, 1, 1, 1, 1], 0, 0)], 16), "tensor a: it has 5 dimensions; at most 4");
    refused(gguf(&[], &[("q", &[33], 2, 0)], 32), "tensor q: its 33 elements are not a whole number of Q4_0 blocks");
}

#[test]
fn nan_weights_are_refused_at_load_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_clip(dir.path(), "m", 16);
    let mut tensors = candle_core::safetensors::load(&entry.weights, &Device::Cpu).unwrap();
    let t = &tensors["text_projection.weight"];
    let mut values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[5] = f32::NAN;
    let bad = candle_core::Tensor::from_vec(values, t.dims(), &Device::Cpu).unwrap();
    tensors.insert("text_projection.weight".into(), bad);
    candle_core::safetensors::save(&tensors, &entry.weights).unwrap();
    let err = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, clip::B32_PUBLISHED).err().unwrap();
    let err = err.to_string();
    assert!(err.contains("tensor text_projection.weight holds NaN at element 5"), "{err}");
}

fn rewrite_config(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn a_layer_count_that_disagrees_with_the_weights_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let entry = common::write_tiny_clip(dir.path(), "m", 16);
    rewrite_config(&entry.config, |v| v["text_config"]["num_hidden_layers"] = 1.into());
    let err = ClipEncoder::load("clip_b32", &entry, dir.path(), &Device::Cpu, "").err().unwrap().to_string();
    assert!(
        err.contains("config.json: key text_config.num_hidden_layers is 1, but")
            && err.contains("model.safetensors holds 2 such layers"),
        "{err}"
    );
}

#[test]
fn zero_or_absurd_dimensions_are_refused_at_parse_with_key_value_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let clip_error = |edit: &dyn Fn(&mut serde_json::Value)| {
        std::fs::write(&path, common::tiny_clip_config(16)).unwrap();
        rewrite_config(&path, edit);
        HfClipConfig::load("clip_b32", &path, "").expect_err("refused").to_string()
    };
    let err = clip_error(&|v| v["text_config"]["num_attention_heads"] = 0.into());
    assert!(
        err.contains("config.json: key text_config.num_attention_heads is 0; expected a whole number from 1 to 1024"),
        "{err}"
    );
    let err = clip_error(&|v| v["vision_config"]["num_attention_heads"] = 5.into());
    assert!(
        err.contains(
            "key vision_config.hidden_size is 32, which is not a multiple of vision_config.num_attention_heads (5)"
        ),
        "{err}"
    );
    let err = clip_error(&|v| v["vision_config"]["patch_size"] = 0.into());
    assert!(err.contains("key vision_config.patch_size is 0; expected a whole number from 1 to 32"), "{err}");
    let err = clip_error(&|v| v["text_config"]["hidden_size"] = 1e12.into());
    assert!(
        err.contains("key text_config.hidden_size is 1000000000000.0; expected a whole number from 1 to 65536"),
        "{err}"
    );

    let flux = common::write_tiny_flux(dir.path());
    let arch = flux.transformer_config.clone().unwrap();
    rewrite_config(&arch, |v| v["num_heads"] = 0.into());
    let err = vortex_real::flux::load_transformer(&flux, dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("transformer.json: key num_heads is 0; expected a whole number from 1 to 1024"), "{err}");
    rewrite_config(&arch, |v| {
        v["num_heads"] = 2.into();
        v["axes_dim"] = serde_json::json!([8, 12]);
    });
    let err = vortex_real::flux::load_transformer(&flux, dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("key axes_dim has 2 entries; expected a list of 3 to 3 whole numbers"), "{err}");
    rewrite_config(flux.vae_config.as_ref().unwrap(), |v| v["scale_factor"] = 0.into());
    let err = vortex_real::flux::load_autoencoder(&flux, dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("vae.json: key scale_factor is 0; expected a number from 0.000001 to 1000000"), "{err}");
    rewrite_config(&flux.t5.config, |v| v["relative_attention_num_buckets"] = 0.into());
    let err = vortex_real::flux::load_t5(&flux, dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("t5.json: key relative_attention_num_buckets is 0; expected a whole number from 4 to 1024"),
        "{err}"
    );
}

#[test]
fn errors_neither_name_rust_types_nor_echo_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let huge = "x".repeat(100_000);
    std::fs::write(&path, format!("[\"{huge}\"]")).unwrap();
    let err = HfClipConfig::load("clip_b32", &path, "").err().unwrap().to_string();
    assert!(err.len() < 600 && !err.contains("struct") && !err.contains("HfClipConfig"), "{err}");
    std::fs::write(&path, common::tiny_clip_config(16)).unwrap();
    rewrite_config(&path, |v| v["vision_config"]["hidden_act"] = huge.clone().into());
    let err = HfClipConfig::load("clip_b32", &path, "").err().unwrap().to_string();
    assert!(err.len() < 600 && err.contains("only quick_gelu is supported"), "{err}");
    rewrite_config(&path, |v| v["vision_config"] = 5.into());
    let err = HfClipConfig::load("clip_b32", &path, "").err().unwrap().to_string();
    assert!(!err.contains("HfTower") && !err.contains("struct"), "{err}");
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, format!("{{\"model\": \"{huge}\"}}")).unwrap();
    let err = loading::tokenizer("clip_b32", &tok, "").err().unwrap().to_string();
    assert!(err.len() < 600 && err.contains("is not a tokenizer.json"), "{err}");
}
