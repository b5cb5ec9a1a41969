#![no_main]
//! Fuzz target `vary`: see `vortex_sim::fuzzing::vary`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_sim::fuzzing::vary(data);
});
