#![no_main]
//! Fuzz target `objective`: see `vortex_sim::fuzzing::objective`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vortex_sim::fuzzing::objective(data);
});
