"""What the Kokoro fixture scripts share (gen_kokoro_decoder_fixture.py, gen_kokoro_e2e_fixture.py):
the harmonic source's randomness frozen and recorded, and the reference's first STFT frame made
exactly real, as the Rust port computes it. Imported by those scripts; runs nothing by itself."""
import contextlib

import torch

# Freeze the source's randomness: record what torch.rand / torch.randn_like hand out.
real_rand, real_randn_like = torch.rand, torch.randn_like
draws = {"rand": [], "randn_like": []}


@contextlib.contextmanager
def frozen(excitation_seed, noise=None):
    """torch.rand / torch.randn_like drawn from a generator seeded with `excitation_seed` and
    recorded in `draws`; with `noise`, SineGen's draw (the first randn_like) replays it."""
    gen = torch.Generator().manual_seed(excitation_seed)
    draws["rand"].clear()
    draws["randn_like"].clear()

    def rand(*size, **kw):
        t = real_rand(*size, generator=gen, dtype=torch.float32)
        draws["rand"].append(t)  # SineGen zeroes column 0 in place: keep the object
        return t

    def randn_like(x, **kw):
        t = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        if noise is not None and not draws["randn_like"]:
            t = noise.clone()
        draws["randn_like"].append(t.clone())
        return t

    torch.rand, torch.randn_like = rand, randn_like
    try:
        with torch.no_grad():
            yield
    finally:
        torch.rand, torch.randn_like = real_rand, real_randn_like


def transform_with_real_first_frame(self, input_data):
    """TorchSTFT.transform with the first frame's imaginary parts set to exactly 0.

    With center=True the first frame is the reflect-padded signal around sample 0, symmetric, and
    so is the periodic Hann window: its spectrum is real in exact arithmetic, and torch.stft
    returns imaginary parts at rounding level (±4e-9 here) instead. Where such a bin's real part
    is negative, torch.angle then gives +pi or -pi as the FFT's rounding falls: a coin toss that
    moves the generator's output by whole percents (measured below), and differs between FFT
    implementations (pocketfft, cuFFT, the Rust port's DFT). The Rust port makes the first
    frame exactly real; the reference does the same here, so the fixture checks the port rather
    than the FFT's rounding."""
    spec = torch.stft(input_data, self.filter_length, self.hop_length, self.win_length,
                      window=self.window.to(input_data.device), return_complex=True)
    spec[..., 0] = torch.complex(spec[..., 0].real, torch.zeros_like(spec[..., 0].real))
    return torch.abs(spec), torch.angle(spec)
