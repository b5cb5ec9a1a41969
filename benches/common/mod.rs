//! What the model benches share: the reference side as a child process, the bench's settings from
//! the environment, medians and peak memory.

#![allow(dead_code)] // each bench uses its own share of this

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A reference implementation (PyTorch, onnxruntime) in a child process that loads its model once,
/// says so in one JSON line, then answers each request line with one line.
pub struct Reference {
    child: Child,
    input: ChildStdin,
    output: std::io::Lines<std::io::BufReader<ChildStdout>>,
    /// What the child said when ready (load time, peak memory, versions).
    pub ready: serde_json::Value,
}

impl Reference {
    /// Starts `tools/SCRIPT` with `args` under `VORTEX_TORCH_PYTHON`; `None` when that is unset.
    pub fn start(script: &str, args: &[String]) -> Option<Reference> {
        let python = std::env::var("VORTEX_TORCH_PYTHON").ok()?;
        let script = format!("{}/../tools/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(python)
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let input = child.stdin.take().expect("piped");
        let mut output = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let line = output.next().expect("the reference says when it is ready").expect("a line");
        let ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{script} said {line:?}: {e}"));
        Some(Reference { child, input, output, ready })
    }

    /// Sends `request` and returns the answer line.
    pub fn ask(&mut self, request: &str) -> String {
        writeln!(self.input, "{request}").expect("the reference is listening");
        self.output.next().expect("the reference answers").expect("a line")
    }

    /// Sends `request` and parses the answer as JSON.
    pub fn ask_json(&mut self, request: &str) -> serde_json::Value {
        let line = self.ask(request);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("the reference said {line:?}: {e}"))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "a median of nothing");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This process's peak resident set (`VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.)
}

/// `VORTEX_BENCH_THREADS`, else every core.
pub fn threads() -> usize {
    env_number("VORTEX_BENCH_THREADS").unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The positive integer in environment variable `name`, if set and valid.
pub fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|t| t.parse().ok()).filter(|&n| n > 0)
}

/// `cargo test --benches` runs a bench without `--bench`: nothing to measure there.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The 1-, 5- and 15-minute load averages, to show what else the machine was doing.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// A pause before each timed run: idle pool threads spin for a while after a run (OpenMP's,
/// onnxruntime's, rayon's) and would otherwise eat the next side's cores.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(500));
}
