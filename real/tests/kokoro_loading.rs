//! Kokoro's weights loader (`vortex_real::kokoro::pipeline::weights_var_builder`): the published
//! `.pth` layout (a dict of five state dicts with `module.` prefixes) mapped onto the part-prefixed
//! names the model reads, and malformed or incomplete files refused with the file named. The
//! fixture is a tiny file of that layout from `tools/gen_kokoro_pth_fixture.py`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use vortex_real::config::{KokoroModelConfig, ModelDtype};
use vortex_real::kokoro::pipeline::{resident_size, weights_var_builder};
use vortex_real::ops::weight_norm_weight;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kokoro_pth").join(name)
}

fn refusal(path: &Path) -> String {
    match weights_var_builder(path, &Device::Cpu) {
        Ok(_) => panic!("accepted {}", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_published_pth_layout_maps_onto_part_prefixed_names() {
    let vb = weights_var_builder(&fixture("tiny.pth"), &Device::Cpu).unwrap();
    for (k, part) in ["bert", "bert_encoder", "predictor", "text_encoder", "decoder"].iter().enumerate() {
        let layer = vb.pp(*part).pp("layer");
        assert!(layer.contains_tensor("weight_g") && layer.contains_tensor("weight_v"), "{part}");
        let v = layer.get((3, 2, 1), "weight_v").unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[5], 5. + 0.5 * k as f32, "{part}: the part's own tensor, `module.` removed");
        // Weight norm folds from the pair as it would for a real layer.
        assert_eq!(weight_norm_weight(&layer, (3, 2, 1), 0).unwrap().dims(), [3, 2, 1]);
    }
    assert!(!vb.contains_tensor("module.layer.weight_g") && !vb.contains_tensor("bert.module.layer.weight_g"));
}

#[test]
fn incomplete_or_malformed_checkpoints_are_refused_naming_the_file() {
    let missing = refusal(&fixture("no_decoder.pth"));
    assert!(missing.contains("no_decoder.pth") && missing.contains("\"decoder\""), "{missing}");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("kokoro.pth");
    std::fs::write(&garbage, b"PK\x03\x04 definitely not a torch zip").unwrap();
    let message = refusal(&garbage);
    assert!(message.starts_with("kokoro: ") && message.contains("kokoro.pth"), "{message}");
    let truncated = dir.path().join("cut.pth");
    let bytes = std::fs::read(fixture("tiny.pth")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(refusal(&truncated).contains("cut.pth"));
    let not_there = refusal(&dir.path().join("absent.safetensors"));
    assert!(not_there.contains("absent.safetensors"), "{not_there}");
}

#[test]
fn the_budget_counts_a_pth_checkpoint_by_its_size() {
    let entry = KokoroModelConfig {
        weights: fixture("tiny.pth"),
        voices: "voices".into(),
        architecture: None,
        dtype: ModelDtype::F32,
    };
    let (bytes, _) = resident_size(&entry, Path::new("/")).unwrap();
    assert_eq!(bytes, std::fs::metadata(fixture("tiny.pth")).unwrap().len());
}
