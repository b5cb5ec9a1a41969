//! Helpers shared by the tests that drive the `vortex-sim` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `vortex-sim` binary with `args`.
pub fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vortex-sim")).args(args).output().unwrap()
}

/// A shipped scenario's path.
pub fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.yaml"))
}

/// The nominal scenario's path, as an argument.
pub fn nominal() -> String {
    shipped("rtx3060-nominal").display().to_string()
}

/// A command's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
