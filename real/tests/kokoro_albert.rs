//! Kokoro's PL-BERT (`vortex_real::kokoro::albert`) against transformers 4.57.1's `AlbertModel`
//! (PyTorch 2.9.1, SDPA attention, as Kokoro runs it) on the golden fixture
//! `fixtures/kokoro_albert/albert.safetensors` from `tools/gen_kokoro_albert_fixture.py` (run
//! once by hand): tiny random weights (vocab 178, embedding 16, hidden 32, 4 heads, intermediate
//! 64, the shared layer applied 3 times), a padded batch of two with its attention mask.
//!
//! Tolerance: |candle − PyTorch| ≤ 1e-5 · max(1, |PyTorch|) per element, in f32. Largest
//! difference measured (2026-11-30): 5.4e-7, and 5.2e-7 between the padded row and the same
//! row run alone (`cargo test -p vortex-real --test kokoro_albert -- --nocapture` prints it).

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use vortex_real::kokoro::albert::{Albert, Config};

const TOLERANCE: f32 = 1e-5;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kokoro_albert/albert.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).expect("the fixture loads")
}

/// The fixture's configuration: AlbertConfig's defaults, as Kokoro keeps them, at tiny widths.
fn tiny() -> Config {
    Config {
        vocab_size: 178,
        embedding_size: 16,
        hidden_size: 32,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Config::kokoro()
    }
}

fn model(tensors: &HashMap<String, Tensor>) -> Albert {
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
    Albert::new(&tiny(), vb).expect("the fixture's weights load")
}

#[test]
fn last_hidden_state_matches_transformers() {
    let t = fixture();
    let ids = t["input_ids"].to_dtype(DType::U32).unwrap();
    let out = model(&t).forward(&ids, Some(&t["attention_mask"])).unwrap();
    let err = common::relative_error(&out, &t["last_hidden_state"]);
    eprintln!("last_hidden_state: max error {err:.2e}");
    assert!(err <= TOLERANCE, "differs from transformers by {err:e} (tolerance {TOLERANCE:e})");
}

/// The padded row's real tokens come out as if the row were alone and unpadded: the mask hides
/// the padding completely (up to float rounding).
#[test]
fn padding_is_invisible_to_real_tokens() {
    let t = fixture();
    let albert = model(&t);
    let ids = t["input_ids"].to_dtype(DType::U32).unwrap();
    let batched = albert.forward(&ids, Some(&t["attention_mask"])).unwrap().i((1..2, 0..7)).unwrap();
    let alone = albert.forward(&ids.i((1..2, 0..7)).unwrap(), None).unwrap();
    let err = common::relative_error(&batched, &alone);
    eprintln!("padded row vs alone: max error {err:.2e}");
    assert!(err <= TOLERANCE);
}

#[test]
fn bad_configs_are_refused_with_a_clear_message() {
    let vb = || VarBuilder::zeros(DType::F32, &Device::Cpu);
    let cases = [
        (Config { num_attention_heads: 0, ..tiny() }, "num_attention_heads is 0, must be between 1 and"),
        (Config { num_attention_heads: 5, ..tiny() }, "hidden_size 32 is not a multiple of num_attention_heads 5"),
        (Config { hidden_size: 0, ..tiny() }, "hidden_size is 0"),
        (Config { num_hidden_layers: 0, ..tiny() }, "num_hidden_layers is 0"),
        (Config { embedding_size: usize::MAX, ..tiny() }, "embedding_size is 18446744073709551615"),
        (Config { layer_norm_eps: f64::NAN, ..tiny() }, "layer_norm_eps is NaN, must be positive"),
    ];
    for (cfg, want) in cases {
        let err = Albert::new(&cfg, vb()).expect_err("a bad config is refused").to_string();
        assert!(err.contains("ALBERT config: ") && err.contains(want), "{err:?} should say {want:?}");
    }
    assert!(Config::kokoro().validate().is_ok());
}

#[test]
fn bad_inputs_are_refused() {
    let t = fixture();
    let albert = model(&t);
    let long = Tensor::zeros((1, 65), DType::U32, &Device::Cpu).unwrap();
    let err = albert.forward(&long, None).unwrap_err().to_string();
    assert!(err.contains("input of 65 tokens, must be between 1 and 64"), "{err}");
    let ids = Tensor::zeros((1, 4), DType::U32, &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 5), DType::U32, &Device::Cpu).unwrap();
    let err = albert.forward(&ids, Some(&mask)).unwrap_err().to_string();
    assert!(err.contains("attention mask of shape [1, 5]"), "{err}");
}
