//! Counter-based random weights, written identically in Python (`tools/counter_weights.py`): every
//! value is a pure function of (seed, tensor name, element index), so candle and PyTorch build the
//! very same weights and the parity fixtures commit no weights at all. The rules:
//!
//! - `h = fnv1a64(name) ^ seed`, `x_i = splitmix64(h + i)`, `u_i = (x_i >> 11) · 2⁻⁵³ · 2 − 1`
//! - rank-1 tensors named `…weight` or `…scale` (norm gains): `1 + 0.1 u`; other rank-1 tensors
//!   (biases): `0.1 u`; rank ≥ 2: `u · √(3 / fan_in)` with `fan_in` the product of all dims but
//!   the first; computed in f64, rounded to f32.

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::Init;

const GAIN: f64 = 0.1;
const BIAS: f64 = 0.1;

fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// SplitMix64's finaliser (also the fixture frames' noise, `tools/gen_clip_processor_fixture.py`).
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The f32 values of tensor `name` with `dims`.
pub fn values(seed: u64, name: &str, dims: &[usize]) -> Vec<f32> {
    let h = fnv1a64(name) ^ seed;
    let n: usize = dims.iter().product();
    let scale = if dims.len() >= 2 { (3.0 / dims[1..].iter().product::<usize>() as f64).sqrt() } else { 0.0 };
    let gain = name.ends_with("weight") || name.ends_with("scale");
    (0..n as u64)
        .map(|i| {
            let u = (splitmix64(h.wrapping_add(i)) >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0;
            let v = match dims.len() {
                1 if gain => 1.0 + GAIN * u,
                1 => BIAS * u,
                _ => u * scale,
            };
            v as f32
        })
        .collect()
}

/// A candle weights backend that makes every tensor a model asks for from the counter generator.
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
