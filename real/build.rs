//! Finds Debian's static OpenBLAS for the `openblas` feature; nothing otherwise.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_OPENBLAS").is_none() {
        return;
    }
    let dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"];
    match dirs.iter().find(|d| std::path::Path::new(d).join("libopenblas.a").exists()) {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={dir}");
            // OpenBLAS's threads.
            println!("cargo:rustc-link-lib=dylib=pthread");
        }
        None => panic!(
            "the `openblas` feature needs a static OpenBLAS (libopenblas.a): on Debian or Ubuntu \
             `apt-get install libopenblas-dev`; looked in {dirs:?}"
        ),
    }
}
