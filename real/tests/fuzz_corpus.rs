//! Real mode's committed fuzz corpus (`fuzz/corpus/`) replayed as ordinary tests: the config
//! parser and the safetensors and GGUF header readers never panic on these inputs, and every
//! error they give reads as one. CI replays; `tools/fuzz.sh` fuzzes.

use std::path::Path;

/// Every file of one target's corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    files
}

#[test]
fn the_config_corpus_replays() {
    corpus("config").iter().for_each(|data| vortex_real::fuzzing::config(data));
}

#[test]
fn the_safetensors_corpus_replays() {
    corpus("safetensors").iter().for_each(|data| vortex_real::fuzzing::safetensors(data));
}

#[test]
fn the_gguf_corpus_replays() {
    corpus("gguf").iter().for_each(|data| vortex_real::fuzzing::gguf(data));
}
