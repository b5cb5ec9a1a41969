"""Counter-based random weights, written identically in Rust (real/tests/common/counter.rs).

Every value of a tensor is a pure function of (seed, the tensor's name, the element's index), so
PyTorch and candle build the very same weights without any weights file: parity fixtures commit
only inputs, outputs and the generator's parameters.

  h       = fnv1a64(name bytes) XOR seed
  x_i     = splitmix64(h + i)                      (wrapping 64-bit arithmetic)
  u_i     = (x_i >> 11) * 2^-53 * 2 - 1            in [-1, 1), exact in f64
  value_i = 1 + GAIN * u_i                         rank-1 tensors named ...weight or ...scale (norm gains)
                                                   or ...running_var (batch norm variances: positive)
            BIAS * u_i                             other rank-1 tensors (biases, class embeddings)
            u_i * sqrt(3 / fan_in)                 rank >= 2, fan_in = product of all dims but the first
  then rounded to f32 (round to nearest), as both sides do.
"""
import numpy as np

GAIN = 0.1
BIAS = 0.1
MASK = (1 << 64) - 1


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x00000100000001B3) & MASK
    return h


def splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed: int, name: str, n: int) -> np.ndarray:
    h = np.uint64(fnv1a64(name) ^ seed)
    with np.errstate(over="ignore"):
        x = splitmix64(h + np.arange(n, dtype=np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) * (2.0 ** -53) * 2.0 - 1.0


def tensor(seed: int, name: str, shape) -> np.ndarray:
    """The f32 values of tensor `name` with `shape`."""
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    u = uniform(seed, name, n)
    if len(shape) == 1:
        if name.endswith("weight") or name.endswith("scale") or name.endswith("running_var"):
            v = 1.0 + GAIN * u
        else:
            v = BIAS * u
    else:
        fan_in = int(np.prod(shape[1:]))
        v = u * np.sqrt(3.0 / fan_in)
    return v.astype(np.float32).reshape(shape)


if __name__ == "__main__":
    # The values the Rust side checks (real/tests/common/counter.rs), printed for cross-checking.
    print(tensor(7, "a.weight", (2, 3)).tolist(), tensor(7, "norm.scale", (3,)).tolist(), tensor(7, "b.bias", (2,)).tolist())
