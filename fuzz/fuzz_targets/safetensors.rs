#![no_main]
//! Fuzz target `safetensors`: see `vortex_real::fuzzing::safetensors`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_real::fuzzing::safetensors(data);
});
