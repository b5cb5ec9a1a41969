#![no_main]
//! Fuzz target `gguf`: see `vortex_real::fuzzing::gguf`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_real::fuzzing::gguf(data);
});
