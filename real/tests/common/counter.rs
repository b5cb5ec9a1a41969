//! Counter-based random weights, written identically in Python (`tools/counter_weights.py`): every
//! value is a pure function of (seed, tensor name, element index), so candle and PyTorch build the
//! very same weights and the parity fixtures commit no weights at all. The rules:
//!
//! - `h = fnv1a64(name) ^ seed`, `x_i = splitmix64(h + i)`, `u_i = (x_i >> 11) · 2⁻⁵³ · 2 − 1`
//! - rank-1 tensors named `…weight` or `…scale` (norm gains) or `…running_var` (batch norm's
//!   variances, which must be positive): `1 + 0.1 u`; other rank-1 tensors (biases): `0.1 u`; rank ≥ 2: `u · √(3 / fan_in)` with `fan_in` the product of all dims but
//!   the first; computed in f64, rounded to f32.
//!
//! Test binaries and benches (`benches/clip_cpu.rs` includes this file) each use a part of it.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// SplitMix64's finaliser (also the fixture frames' noise, `tools/gen_clip_processor_fixture.py`).
pub fn splitmix64(z: u64) -> u64 {
    vortex_real::tiny::splitmix64(z)
}

/// The f32 values of tensor `name` with `dims` (the generator lives in the library, where
/// `vortex models tiny` writes its weights with it).
pub fn values(seed: u64, name: &str, dims: &[usize]) -> Vec<f32> {
    vortex_real::tiny::counter_values(seed, name, dims)
}

/// A tensor of the counter generator's uniform values scaled to `[low, high)`, as
/// `tools/liveportrait_fixture_common.py`'s `counter_input` makes fixture inputs.
pub fn uniform_input(seed: u64, name: &str, dims: &[usize], low: f64, high: f64) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = vortex_real::tiny::counter_uniform(seed, name, n)
        .map(|u| (low + (u + 1.0) / 2.0 * (high - low)) as f32)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("the shape holds the values")
}

/// A candle weights backend that makes every tensor a model asks for from the counter generator
/// (any name, any shape: it claims to hold everything).
pub struct CounterWeights {
    /// The generator's seed.
    pub seed: u64,
}

impl SimpleBackend for CounterWeights {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        Tensor::from_vec(values(self.seed, name, s.dims()), s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("the counter generator needs a shape for {name}")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Counter weights for exactly the tensors of a checkpoint: a manifest of (name, shape) pairs, as
/// a fixture's generator lists a PyTorch `state_dict`. `contains_tensor` answers from the
/// manifest, so optional tensors load exactly where PyTorch has them (weight norm's `weight_g` /
/// `weight_v` rather than `weight`, AdaIN's `norm.weight`); a name the manifest lacks, or a shape
/// that differs from it, is an error naming both. Clones share a record of the names fetched, so
/// a test can check that the model read every tensor ([`ManifestWeights::unused`]).
#[derive(Clone)]
pub struct ManifestWeights {
    seed: u64,
    shapes: Arc<HashMap<String, Vec<usize>>>,
    fetched: Arc<Mutex<BTreeSet<String>>>,
}

impl ManifestWeights {
    /// Weights with `seed` for the tensors named in `tensors`.
    pub fn new(seed: u64, tensors: impl IntoIterator<Item = (String, Vec<usize>)>) -> Self {
        let shapes: HashMap<_, _> = tensors.into_iter().collect();
        ManifestWeights { seed, shapes: Arc::new(shapes), fetched: Arc::default() }
    }

    /// From a fixture's JSON manifest: `{"seed": u64, "tensors": [[name, [dims...]], ...], ...}`
    /// (other keys are ignored).
    pub fn from_json(manifest: &serde_json::Value) -> Self {
        let seed = manifest["seed"].as_u64().expect("the manifest has a u64 \"seed\"");
        let tensors =
            manifest["tensors"].as_array().expect("the manifest has a \"tensors\" list").iter().map(|entry| {
                let name = entry[0].as_str().expect("a tensor entry is [name, shape]").to_string();
                let dims = entry[1].as_array().expect("a tensor entry is [name, shape]");
                (name, dims.iter().map(|d| d.as_u64().expect("dims are integers") as usize).collect())
            });
        Self::new(seed, tensors)
    }

    /// Reads a JSON manifest file ([`ManifestWeights::from_json`]).
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self::from_json(&serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// A `VarBuilder` over these weights (sharing the record of fetched names).
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// The manifest's names never fetched so far, sorted.
    pub fn unused(&self) -> Vec<String> {
        let fetched = self.fetched.lock().expect("not poisoned");
        let mut names: Vec<String> = self.shapes.keys().filter(|n| !fetched.contains(*n)).cloned().collect();
        names.sort();
        names
    }
}

impl SimpleBackend for ManifestWeights {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.shapes.get(name) {
            Some(dims) if dims.as_slice() == s.dims() => {
                self.fetched.lock().expect("not poisoned").insert(name.to_string());
                Tensor::from_vec(values(self.seed, name, dims), s, dev)?.to_dtype(dtype)
            }
            Some(dims) => candle_core::bail!("{name}: the model asks for shape {s:?}, the manifest has {dims:?}"),
            None => candle_core::bail!("{name} (shape {s:?}) is not in the manifest"),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Some(dims) = self.shapes.get(name) else { candle_core::bail!("{name} is not in the manifest") };
        self.get(Shape::from(dims.clone()), name, Init::Const(0.), dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }
}
