#![no_main]
//! Fuzz target `scenario`: see `vortex_sim::fuzzing::scenario`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_sim::fuzzing::scenario(data);
});
