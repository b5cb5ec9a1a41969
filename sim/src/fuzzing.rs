//! Entry points of the simulator's fuzz targets (`fuzz/`), also replayed on the committed corpus
//! by `tests/fuzz_corpus.rs`: arbitrary bytes in, no panic, every error message checked by
//! [`vortex::fuzzing::check_message`].

use std::path::{Path, PathBuf};

use vortex::fuzzing::check_message;

use crate::scenario::{Override, Scenario};
use crate::sweep::{check_axes, Objective, Vary};

/// The line that separates a fuzzed scenario from its `--set` overrides (one per line after it).
pub const SET_SEPARATOR: &str = "\n#--set\n";

/// Where fuzzed scenarios are read from: the shipped scenarios' folder, so that their relative
/// `config: ../config.yaml` resolves as it does for real files.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// The scenario parser with `--set` overrides: the text up to [`SET_SEPARATOR`] is the scenario,
/// each line after it one `--set KEY=VALUE`. Returns the scenario when it loads.
pub fn scenario(data: &[u8]) -> Option<Scenario> {
    let text = std::str::from_utf8(data).ok()?;
    let (doc, sets) = text.split_once(SET_SEPARATOR).unwrap_or((text, ""));
    let mut overrides = Vec::new();
    for line in sets.lines().take(16) {
        match line.parse::<Override>() {
            Ok(o) => overrides.push(o),
            Err(e) => check_message(&e),
        }
    }
    match Scenario::from_yaml_str("fuzz.yaml", doc, &scenario_dir(), &overrides) {
        Ok(s) => Some(s),
        Err(e) => {
            vortex::fuzzing::check_config_error(&e);
            None
        }
    }
}

/// The `--vary` grammar: one `KEY=FROM..TO:STEP` per line, then the grid's checks.
pub fn vary(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut axes = Vec::new();
    for line in text.lines().take(8) {
        match line.parse::<Vary>() {
            Ok(v) => {
                assert!(!v.values.is_empty() && v.values.len() <= crate::sweep::MAX_POINTS);
                assert!(v.values.iter().all(|x| x.is_finite()));
                axes.push(v);
            }
            Err(e) => check_message(&e),
        }
    }
    if let Err(e) = check_axes(&[], &axes) {
        vortex::fuzzing::check_config_error(&e);
    }
}

/// The `--objective` grammar; an objective that parses prints as text that parses to itself.
pub fn objective(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match text.parse::<Objective>() {
        Ok(o) => assert_eq!(o.to_string().parse::<Objective>().as_ref(), Ok(&o), "{text:?} does not round-trip"),
        Err(e) => check_message(&e),
    }
}
