#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/TARGET/ (stdlib only; run once, by hand).

The seeds are valid inputs (the shipped scenarios and config, small safetensors and GGUF files)
and one example of each hostile class of issue 9, so the fuzzer starts from both sides of every
check. tools/fuzz.sh adds what it finds; the committed corpus is minimised (cargo fuzz cmin).
"""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def scenarios():
    sep = "\n#--set\n"
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        put("scenario", path.stem, path.read_text())
    nominal = (ROOT / "scenarios" / "rtx3060-nominal.yaml").read_text()
    put("scenario", "set-overrides", nominal + sep + "orchestration.deadline_buffer_s=4\nstages.audio.hang=0.1\n")
    put("scenario", "set-huge-duration", nominal + sep + "stages.audio.latency={constant: 1e20}\n")
    put("scenario", "bom", "\ufeff" + nominal)
    put("scenario", "tag", nominal.replace("seed: 1", "seed: !custom 1"))
    put("scenario", "deep-flow", "name: x\ndescription: " + "[" * 70 + "]" * 70 + "\n")
    put("scenario", "gamma-extreme", nominal.replace("cv: 0.12", "cv: 1e-200"))
    put("scenario", "lognormal-wide", nominal.replace("p99: 2.9", "p99: 86400").replace("median: 2.0", "median: 1e-300"))
    put("scenario", "buffer-past-deadline", nominal + sep + "orchestration.deadline_buffer_s=50\n")
    put("scenario", "drift", nominal + "drift: {factor: [[0, 1], [100, 1000]]}\n")
    put("scenario", "trace-dev-zero", nominal.replace("{ uniform: [0.8, 1.2] }", "{ empirical: { file: /dev/zero } }"))
    put("scenario", "mixture", nominal.replace(
        "{ uniform: [0.8, 1.2] }",
        "{ mixture: [{weight: 1, dist: {constant: 1}}, {weight: 2, dist: {mixture: [{weight: 1, dist: {constant: 2}}]}}] }"))


def config():
    put("config", "config", (ROOT / "config.yaml").read_text())
    put("config", "design", "orchestration:\n  timeouts: {audio_s: 10, image_s: 15}\n"
        "  retry_policy: {audio: 2}\n  deadline_buffer_s: 5\n")
    put("config", "bom", "\ufefforchestration: {}\n")
    put("config", "tag", "orchestration: {deadline_buffer_s: !seconds 4}\n")
    put("config", "huge", "orchestration: {backoff_base_s: 1e300, retry_policy: {audio: 99999999999999999999}}\n")


def grammars():
    put("vary", "one", "orchestration.deadline_buffer_s=0..10:0.5\n")
    put("vary", "two", "orchestration.deadline_buffer_s=0..10:0.5\norchestration.targets.video_s=5..12:1\n")
    put("vary", "tiny-step", "x=0..1:1e-300\n")
    put("vary", "duplicate", "x=0..1:1\nx=0..2:1\n")
    put("vary", "grid-overflow", "a=0..999:1\nb=0..999:1\nc=0..999:1\n")
    put("objective", "plain", "max:on_time")
    put("objective", "constrained", "max:on_time subject_to:false_abort<=0.01,p99_ms<40000")
    put("objective", "out-of-range", "min:wasted_gpu_s subject_to:abort<=5")


def safetensors():
    def file(header, data_len):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + bytes(data_len)
    put("safetensors", "valid", file({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, 16))
    put("safetensors", "nan", struct.pack("<Q", 64) + json.dumps(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode().ljust(64) + struct.pack("<f", float("nan")))
    put("safetensors", "overflow", file({"a": {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 16]}}, 16))
    put("safetensors", "dtype-mismatch", file({"a": {"dtype": "F64", "shape": [2, 2], "data_offsets": [0, 16]}}, 16))
    put("safetensors", "metadata", file({"__metadata__": {"format": "pt"},
                                         "b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, 6))


def gguf():
    def string(s):
        return struct.pack("<Q", len(s)) + s.encode()

    def file(metadata, tensors, data):
        b = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
        for key, kind, value in metadata:
            b += string(key) + struct.pack("<I", kind) + value
        for name, dims, kind, offset in tensors:
            b += string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            b += struct.pack("<IQ", kind, offset)
        b += bytes(-len(b) % 32)
        return b + bytes(data)
    put("gguf", "valid-f32", file([], [("a", [4], 0, 0)], 16))
    put("gguf", "metadata", file([("general.name", 8, string("tiny")), ("general.alignment", 4, struct.pack("<I", 32)),
                                  ("arr", 9, struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2))],
                                 [("w", [32], 2, 0), ("b", [2, 2], 1, 32)], 64))
    put("gguf", "alignment-zero", file([("general.alignment", 4, struct.pack("<I", 0))], [("a", [4], 0, 0)], 16))
    put("gguf", "overflow", file([], [("a", [2**40, 2**40], 0, 0)], 16))


if __name__ == "__main__":
    scenarios()
    config()
    grammars()
    safetensors()
    gguf()
    for d in sorted(CORPUS.iterdir()):
        print(d.name, len(list(d.iterdir())))
