#!/usr/bin/env python3
"""Golden fixture for the Kokoro ops test (real/tests/kokoro_ops.rs).

Runs the PyTorch operations that Kokoro-82M (StyleTTS 2 + iSTFTNet, the `kokoro` package 0.9.4)
uses and candle lacks, on small random inputs and weights, and writes every input and output to
real/tests/fixtures/kokoro_ops/ops.safetensors (about 60 KB). Names are `<op>.<case>.<tensor>`;
module weights keep PyTorch's parameter names under their prefix (`lstm.small.weight_ih_l0`).

Run once by hand; CI only reads the committed file and never needs PyTorch:
  python3 -m venv /tmp/v && /tmp/v/bin/pip install torch==2.9.1 safetensors==0.8.0 numpy==2.4.6
  /tmp/v/bin/python tools/gen_kokoro_ops_fixture.py
It runs on the CPU in seconds, with one thread so that the outputs do not depend on the machine.
"""
import math
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_ops"

torch.manual_seed(0)
torch.set_num_threads(1)
T = {}


def put(name, tensor):
    assert name not in T, name
    T[name] = tensor.detach().to(torch.float32).contiguous().clone()


def lstm_case(name, batch, steps, inputs, hidden):
    # Kokoro's LSTMs: one layer, bidirectional, batch_first (modules.py).
    lstm = torch.nn.LSTM(inputs, hidden, 1, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.uniform_(-0.6, 0.6)  # wider than the default so that the gates saturate somewhat
    x = torch.randn(batch, steps, inputs)
    with torch.no_grad():
        y, _ = lstm(x)
    for k, v in lstm.state_dict().items():
        put(f"lstm.{name}.{k}", v)
    put(f"lstm.{name}.x", x)
    put(f"lstm.{name}.y", y)


def norm_cases():
    x = torch.randn(2, 3, 9) * 3 + 1
    w, b = torch.randn(3), torch.randn(3)
    put("instance_norm.x", x)
    put("instance_norm.weight", w)
    put("instance_norm.bias", b)
    # nn.InstanceNorm1d's defaults (eps 1e-5, no running statistics), as in Kokoro's AdaIN1d.
    put("instance_norm.y_affine", F.instance_norm(x, weight=w, bias=b, eps=1e-5))
    put("instance_norm.y_plain", F.instance_norm(x, eps=1e-5))
    put("instance_norm.y_eps_0.1", F.instance_norm(x, eps=0.1))
    x2 = torch.randn(1, 2, 2)
    put("instance_norm.x_len2", x2)
    put("instance_norm.y_len2", F.instance_norm(x2, eps=1e-5))
    try:  # PyTorch refuses one time step: there is nothing to normalise over
        F.instance_norm(torch.randn(1, 2, 1))
        raise AssertionError("instance_norm accepted length 1")
    except ValueError:
        pass

    # AdaIN1d as in kokoro/istftnet.py: InstanceNorm1d(affine=True) then (1 + gamma) * x + beta
    # with gamma, beta = chunk(fc(s), 2, dim=1).
    style, ch = 6, 4
    x = torch.randn(2, ch, 10)
    s = torch.randn(2, style)
    fc = torch.nn.Linear(style, 2 * ch)
    norm = torch.nn.InstanceNorm1d(ch, affine=True)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(ch))
        norm.bias.copy_(torch.randn(ch))

        def adain(norm):
            h = fc(s).view(2, 2 * ch, 1)
            gamma, beta = torch.chunk(h, chunks=2, dim=1)
            return (1 + gamma) * norm(x) + beta

        put("adain.x", x)
        put("adain.s", s)
        put("adain.fc.weight", fc.weight)
        put("adain.fc.bias", fc.bias)
        put("adain.norm.weight", norm.weight)
        put("adain.norm.bias", norm.bias)
        put("adain.y", adain(norm))
        # Kokoro loads with strict=False: a checkpoint without norm.weight/bias keeps the
        # initial ones and zeros.
        put("adain.y_no_norm_weights", adain(torch.nn.InstanceNorm1d(ch, affine=True)))


def pad_cases():
    x = torch.randn(2, 3, 6)
    put("reflect_pad.x", x)
    for left, right in [(2, 3), (5, 5), (0, 0), (1, 0), (0, 4)]:
        put(f"reflect_pad.y_{left}_{right}", F.pad(x, (left, right), mode="reflect"))
    x = torch.randn(1, 1, 2)
    put("reflect_pad.x_len2", x)
    put("reflect_pad.y_len2_1_1", torch.nn.ReflectionPad1d((1, 1))(x))


def atan2_cases():
    z, inf = 0.0, math.inf
    pairs = [  # (y, x): signed zeros, axes, the four quadrants, infinities
        (z, z), (-z, z), (z, -z), (-z, -z),
        (1, z), (1, -z), (-1, z), (-1, -z), (z, 1), (-z, 1), (z, -1), (-z, -1),
        (1, 1), (1, -1), (-1, -1), (-1, 1), (2, 1), (1, 2), (-2, -1), (-1, -2),
        (3e-8, -1), (-3e-8, -1), (1e-30, 1e-30), (1e30, -1e-30),
        (inf, 1), (-inf, 1), (1, inf), (1, -inf), (-1, -inf), (inf, inf), (-inf, -inf), (inf, -inf),
    ]
    y = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
    x = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
    # Random pairs over several magnitudes.
    ry = torch.randn(200) * torch.logspace(-3, 3, 200)
    rx = torch.randn(200) * torch.logspace(3, -3, 200)
    y, x = torch.cat([y, ry]), torch.cat([x, rx])
    put("atan2.y", y)
    put("atan2.x", x)
    put("atan2.out", torch.atan2(y, x))


def interpolate_cases():
    x = torch.randn(2, 3, 7)
    put("interp.x", x)
    for size in [11, 4, 7, 1, 20]:
        put(f"interp.linear_size_{size}", F.interpolate(x, size=size, mode="linear", align_corners=False))
    for scale in [2.5, 0.5, 3.0]:
        put(f"interp.linear_scale_{scale}", F.interpolate(x, scale_factor=scale, mode="linear"))
    # SineGen's pair (istftnet.py): down by 1/300, cumulative sum, up by 300.
    r = torch.rand(1, 2, 1200)
    down = F.interpolate(r, scale_factor=1 / 300, mode="linear")
    put("interp.sine_x", r)
    put("interp.sine_down", down)
    put("interp.sine_up", F.interpolate(down, scale_factor=300, mode="linear"))
    one = torch.randn(1, 2, 1)
    put("interp.one", one)
    put("interp.one_up", F.interpolate(one, size=5, mode="linear"))
    # Nearest: UpSample1d (scale 2) and Generator.f0_upsamp (nn.Upsample, scale 300).
    put("interp.nearest_scale_2", F.interpolate(x, scale_factor=2, mode="nearest"))
    put("interp.nearest_scale_3", F.interpolate(x, scale_factor=3, mode="nearest"))
    put("interp.nearest_size_5", F.interpolate(x, size=5, mode="nearest"))
    put("interp.nearest_size_10", F.interpolate(x, size=10, mode="nearest"))
    f0 = torch.randn(1, 1, 4)
    put("interp.f0", f0)
    put("interp.f0_up", torch.nn.Upsample(scale_factor=300)(f0))


def stft_case(name, n_fft, hop, win, signals, extra):
    window = torch.hann_window(win, periodic=True, dtype=torch.float32)
    for i, x in enumerate(signals):
        # TorchSTFT.transform / .inverse in istftnet.py (center=True, reflect padding).
        spec = torch.stft(x, n_fft, hop, win, window=window, return_complex=True)
        put(f"stft.{name}.{i}.x", x)
        put(f"stft.{name}.{i}.mag", torch.abs(spec))
        put(f"stft.{name}.{i}.phase", torch.angle(spec))
        put(f"stft.{name}.{i}.istft", torch.istft(spec, n_fft, hop, win, window=window))
        put(f"stft.{name}.{i}.istft_len",
            torch.istft(spec, n_fft, hop, win, window=window, length=x.shape[-1]))
    # The decoder's use: a spectrogram that no signal has (exp of one head, sin of another), with
    # nonzero imaginary parts in the DC and Nyquist bins, which the inverse real FFT ignores.
    frames = 9
    mag = torch.exp(torch.randn(2, n_fft // 2 + 1, frames) * 0.5)
    phase = torch.sin(torch.randn(2, n_fft // 2 + 1, frames)) * 3
    put(f"stft.{name}.free.mag", mag)
    put(f"stft.{name}.free.phase", phase)
    put(f"stft.{name}.free.istft", torch.istft(mag * torch.exp(phase * 1j), n_fft, hop, win, window=window))
    # A `length` past the natural one. For Kokoro's sizes it runs past the overlap-added signal,
    # so PyTorch appends zeros; for the odd case `extra` stops where the window envelope is still
    # nonzero, since PyTorch refuses to divide by a zero envelope.
    long = (frames - 1) * hop + extra
    put(f"stft.{name}.free.istft_long",
        torch.istft(mag * torch.exp(phase * 1j), n_fft, hop, win, window=window, length=long))


def stft_cases():
    # Kokoro's decoder: n_fft 20, hop 5, win 20. Even and odd lengths, the shortest signal
    # reflect padding allows (n_fft / 2 + 1), and a negative signal whose DC bin has phase pi.
    kokoro = [torch.randn(2, 50), torch.randn(2, 53), torch.randn(1, 11), -1 - torch.rand(1, 40)]
    stft_case("k", 20, 5, 20, kokoro, extra=12)
    # Odd n_fft, a window shorter than n_fft (zero-padded in the middle), hop not dividing n_fft.
    stft_case("odd", 15, 4, 12, [torch.randn(1, 30), torch.randn(2, 33)], extra=3)


def conv_cases():
    # Depthwise ConvTranspose1d as AdainResBlk1d.pool: kernel 3, stride 2, padding 1,
    # output_padding 1, groups = channels.
    cases = {
        "kokoro": dict(ch=3, length=6, kernel=3, stride=2, padding=1, output_padding=1, dilation=1),
        "wide": dict(ch=2, length=5, kernel=4, stride=3, padding=2, output_padding=2, dilation=2),
        "len1": dict(ch=2, length=1, kernel=3, stride=2, padding=0, output_padding=0, dilation=1),
        "stride1": dict(ch=4, length=5, kernel=5, stride=1, padding=2, output_padding=0, dilation=1),
    }
    for name, c in cases.items():
        conv = torch.nn.ConvTranspose1d(c["ch"], c["ch"], c["kernel"], stride=c["stride"],
                                        padding=c["padding"], output_padding=c["output_padding"],
                                        groups=c["ch"], dilation=c["dilation"])
        x = torch.randn(2, c["ch"], c["length"])
        with torch.no_grad():
            put(f"dwconvt.{name}.weight", conv.weight)
            put(f"dwconvt.{name}.bias", conv.bias)
            put(f"dwconvt.{name}.x", x)
            put(f"dwconvt.{name}.y", conv(x))


def weight_norm_cases():
    # torch.nn.utils.weight_norm (dim 0), as Kokoro's checkpoints store it: weight_g, weight_v.
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(3, 4, 5))
    with torch.no_grad():
        conv.weight_g.copy_(torch.randn_like(conv.weight_g))
        x = torch.randn(1, 3, 8)
        put("wn.conv.weight_g", conv.weight_g)
        put("wn.conv.weight_v", conv.weight_v)
        put("wn.conv.bias", conv.bias)
        put("wn.conv.x", x)
        put("wn.conv.y", conv(x))
        conv(x)  # the forward pre-hook recomputes .weight
        put("wn.conv.weight", conv.weight)
    # A transposed depthwise conv: dim 0 is its input channel.
    convt = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(3, 3, 3, 2, 1, 1, groups=3))
    with torch.no_grad():
        convt.weight_g.copy_(torch.randn_like(convt.weight_g))
        x = torch.randn(1, 3, 5)
        put("wn.convt.weight_g", convt.weight_g)
        put("wn.convt.weight_v", convt.weight_v)
        put("wn.convt.bias", convt.bias)
        put("wn.convt.x", x)
        put("wn.convt.y", convt(x))


def main():
    assert torch.__version__.startswith("2.9.1"), torch.__version__
    lstm_case("small", batch=2, steps=7, inputs=5, hidden=4)
    lstm_case("one_step", batch=1, steps=1, inputs=3, hidden=2)
    lstm_case("wide", batch=1, steps=12, inputs=24, hidden=16)
    norm_cases()
    pad_cases()
    atan2_cases()
    interpolate_cases()
    stft_cases()
    conv_cases()
    weight_norm_cases()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ops.safetensors"
    save_file(T, str(path), metadata={"torch": torch.__version__, "script": "tools/gen_kokoro_ops_fixture.py"})
    print(f"wrote {len(T)} tensors, {path.stat().st_size} bytes to {path}")


if __name__ == "__main__":
    main()
