#![no_main]
//! Fuzz target `config`: see `vortex_real::fuzzing::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_real::fuzzing::config(data);
});
