//! Guards against a silently dropped simulator cfg: an exported RUSTFLAGS replaces the cargo
//! alias's `--cfg madsim`, and `#[cfg(madsim)]` tests then vanish without a word.

#[test]
fn build_mode_matches_the_cargo_alias() {
    let expected = std::env::var("VORTEX_EXPECT_MADSIM").is_ok_and(|v| v == "1");
    assert_eq!(
        vortex::rt::SIMULATED,
        expected,
        "built with cfg(madsim) = {}, but VORTEX_EXPECT_MADSIM says {}: is RUSTFLAGS exported? \
         It replaces the `cargo sim-test` alias's flags; unset it and rerun.",
        vortex::rt::SIMULATED,
        expected
    );
}
