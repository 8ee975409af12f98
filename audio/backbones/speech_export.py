"""The "speech" backbone as native Core ML 3 neural-network layers (no custom layers).

Blobs follow the rank-5 mapping of ``NetworkBuilder``: ``[C, H, W]`` per example.

=====================  ==============================  =====================================
layers                 what                            blob after
=====================  ==============================  =====================================
reshape (if needed)    ``[n_samples, 1, 1]`` to a row  ``[1, 1, n_samples]``
convolution 1x400/160  frames x window x [cos; -sin]   ``[514, 1, n_frames]`` (re, im)
multiply (x, x)        squares                         ``[514, 1, n_frames]``
split, add             re^2 + im^2                     ``[257, 1, n_frames]``
unary SQRT             magnitude                       ``[257, 1, n_frames]``
convolution 1x1        mel weights                     ``[32, 1, n_frames]``
unary LOG, eps 0.001   ``ln(mel + 0.001)``             ``[32, 1, n_frames]``
permute (0, 2, 3, 1)   mel to the width axis           ``[1, n_frames, 32]``
the plan's steps       conv / ReLU / batchnorm /       ``[96, n_steps, 1]``
                       leakyReLU / unary THRESHOLD
                       (max(x, -0.4)) / max pooling
=====================  ==============================  =====================================

Kernels whose values are exactly representable in float16 (all but the first
convolution, as shipped) are written as ``float16Value``; the DFT basis, the mel
matrix and the first convolution stay float32. The exported network computes the same
function as :meth:`SpeechBackbone.embed` (float32 throughout).
"""

from __future__ import annotations

import numpy as np

from ...spec._proto import NeuralNetwork_pb2
from ..errors import AudioError

__all__ = ["add_to_network", "dft_kernel"]

_SQRT, _LOG, _THRESHOLD = (NeuralNetwork_pb2.UnaryFunctionLayerParams.Operation.Value(v)
                           for v in ("SQRT", "LOG", "THRESHOLD"))


def dft_kernel(window: np.ndarray, n_fft: int) -> np.ndarray:
    """The framing + windowed real-DFT convolution kernel.

    Parameters
    ----------
    window : np.ndarray [shape=(frame_length,)]
    n_fft : int >= frame_length

    Returns
    -------
    kernel : np.ndarray [shape=(2 * (n_fft // 2 + 1), 1, 1, frame_length)], float32
        Rows ``k`` hold ``window * cos(2 pi k t / n_fft)``, rows ``n_bins + k`` hold
        ``-window * sin(2 pi k t / n_fft)`` (the zero padding to ``n_fft`` adds nothing).
    """
    n_bins = n_fft // 2 + 1
    t = np.arange(window.shape[0])
    angle = 2 * np.pi * ((np.arange(n_bins)[:, None] * t[None, :]) % n_fft) / n_fft  # float64 for the basis
    basis = np.concatenate([np.cos(angle), -np.sin(angle)]) * window.astype(np.float64)
    return basis.astype(np.float32).reshape(2 * n_bins, 1, 1, -1)


def _add(builder, name: str, inputs: list[str], output: str, shape) -> NeuralNetwork_pb2.NeuralNetworkLayer:
    """A raw layer appended to the builder's network, with its output shape recorded."""
    for blob in inputs:
        if blob not in builder.shapes:
            raise AudioError(f"blob {blob!r} does not exist; known blobs: {sorted(builder.shapes)}",
                             where=f"speech export: {name}")
    return builder.add_layer(name, inputs, output, shape)


def _unary(builder, name: str, input: str, output: str, *, op: int, alpha: float = 0.0,
           epsilon: float = 0.0) -> None:
    p = _add(builder, name, [input], output, builder.shapes[input]).unary
    p.type, p.alpha, p.epsilon, p.scale, p.shift = op, alpha, epsilon, 1.0, 0.0


def _halve_if_exact(layer: NeuralNetwork_pb2.NeuralNetworkLayer) -> None:
    """Store a convolution's kernel as float16Value when that loses nothing."""
    weights = layer.convolution.weights
    values = np.asarray(weights.floatValue, dtype=np.float32)
    half = values.astype(np.float16)
    if values.size and np.array_equal(half.astype(np.float32), values):
        del weights.floatValue[:]
        weights.float16Value = half.astype("<f2").tobytes()


def _frontend(backbone, builder, blob: str, prefix: str) -> str:
    """Layers from a ``[1, 1, n_samples]`` row to the ``[1, n_frames, 32]`` log-mel; returns its blob."""
    kernel = dft_kernel(backbone.window, backbone.n_fft)
    n_bins, n_mels = backbone.n_fft // 2 + 1, backbone.mel.shape[1]
    builder.add_conv(f"{prefix}dft", blob, f"{prefix}spectrum", n_out=2 * n_bins, kernel=(1, backbone.frame_length),
                     stride=(1, backbone.hop_length), padding="valid", bias=False, weights=kernel)
    n_frames = builder.shapes[f"{prefix}spectrum"][2]
    _add(builder, f"{prefix}square", [f"{prefix}spectrum"] * 2, f"{prefix}squares",
         (2 * n_bins, 1, n_frames)).multiply.SetInParent()
    split = _add(builder, f"{prefix}split", [f"{prefix}squares"], f"{prefix}re2", (n_bins, 1, n_frames))
    split.output.append(f"{prefix}im2")
    split.split.nOutputs = 2
    builder.shapes[f"{prefix}im2"] = (n_bins, 1, n_frames)
    _add(builder, f"{prefix}power", [f"{prefix}re2", f"{prefix}im2"], f"{prefix}power",
         (n_bins, 1, n_frames)).add.SetInParent()
    _unary(builder, f"{prefix}magnitude", f"{prefix}power", f"{prefix}magnitude", op=_SQRT)
    builder.add_conv(f"{prefix}mel", f"{prefix}magnitude", f"{prefix}mel", n_out=n_mels, kernel=(1, 1),
                     padding="valid", bias=False, weights=backbone.mel.T.reshape(n_mels, n_bins, 1, 1))
    _unary(builder, f"{prefix}log", f"{prefix}mel", f"{prefix}log_mel_t", op=_LOG,
           epsilon=float(backbone.log_offset))
    _add(builder, f"{prefix}to_time_mel", [f"{prefix}log_mel_t"], f"{prefix}log_mel",
         (1, n_frames, n_mels)).permute.axis.extend([0, 2, 3, 1])
    return f"{prefix}log_mel"


def _network(backbone, builder, blob: str, output_name: str, prefix: str) -> None:
    """The plan's steps from ``blob`` ``[1, n_frames, 32]`` to ``output_name`` ``[96, n_steps, 1]``."""
    plan = backbone.plan
    for i, step in enumerate(plan):
        op = step["op"]
        name = f"{prefix}{step.get('name', f'{op}{i:02d}')}" if op in ("conv", "batchnorm") else f"{prefix}{op}{i:02d}"
        out = output_name if i == len(plan) - 1 else f"{name}_out"
        if op == "conv":
            w = backbone.params[f"{step['name']}.weight"]
            bias = backbone.params.get(f"{step['name']}.bias")
            builder.add_conv(name, blob, out, n_out=w.shape[0], kernel=w.shape[2:], padding=(0, 0, *step["pad_mel"]),
                             bias=bias is not None, weights=w, bias_values=bias)
            _halve_if_exact(builder.network.layers[-1])
        elif op == "batchnorm":
            p = _add(builder, name, [blob], out, builder.shapes[blob]).batchnorm
            p.channels, p.epsilon = builder.shapes[blob][0], step["epsilon"]
            for field, key in (("gamma", "scale"), ("beta", "shift"), ("mean", "mean"), ("variance", "variance")):
                getattr(p, field).floatValue.extend(backbone.params[f"{step['name']}.{key}"].tolist())
        elif op == "relu":
            builder.add_activation(name, blob, out, kind="ReLU")
        elif op == "leaky_relu":
            builder.add_activation(name, blob, out, kind="leakyReLU", alpha=step["alpha"])
        elif op == "floor":
            _unary(builder, name, blob, out, op=_THRESHOLD, alpha=step["value"])
        elif op == "maxpool":
            builder.add_pooling(name, blob, out, type="max", kernel=tuple(step["kernel"]), padding="valid")
        else:
            raise AssertionError(f"unknown plan step {op!r}")
        blob = out


def add_to_network(backbone, builder, input_name: str, output_name: str, *, prefix: str = "speech_") -> None:
    """Append the speech backbone to a ``NetworkBuilder``.

    Parameters
    ----------
    backbone : SpeechBackbone
    builder : pippin.pipelines.build.NetworkBuilder
        Its blob ``input_name`` holds the audio, ``[n_samples]`` (declared ``(n_samples,)``,
        i.e. ``[n_samples, 1, 1]``) or ``[1, 1, n_samples]``.
    input_name, output_name : str
        The audio blob, and the blob to write: the embeddings ``[96, n_steps, 1]``
        (channels = the 96 dimensions, height = the time steps, 80 ms apart).
    prefix : str
        Prefix of every layer and intermediate blob name; ``f"{prefix}log_mel"``
        ``[1, n_frames, 32]`` is the front end's output (declare it as a network output
        to compare it with :meth:`SpeechBackbone.frontend`).

    Raises
    ------
    AudioError
        The input blob is missing, has another layout, or is shorter than one embedding.
    """
    if input_name not in builder.shapes:
        raise AudioError(f"blob {input_name!r} does not exist; known blobs: {sorted(builder.shapes)}",
                         where="speech export")
    shape = tuple(builder.shapes[input_name])
    n_samples = shape[0] if shape[1:] == (1, 1) else shape[2]
    if (shape[1:] != (1, 1) and shape[:2] != (1, 1)) or backbone.n_steps(n_samples) < 1:
        raise AudioError(f"input {input_name!r} has shape {list(shape)}, expected [n_samples, 1, 1] or "
                         f"[1, 1, n_samples] with n_samples >= {backbone.receptive_samples}", where="speech export")
    blob = input_name
    if shape[:2] != (1, 1):
        blob = f"{prefix}samples_row"
        _add(builder, f"{prefix}to_row", [input_name], blob, (1, 1, n_samples)).reshape.targetShape.extend(
            [1, 1, n_samples])
    _network(backbone, builder, _frontend(backbone, builder, blob, prefix), output_name, prefix)
