"""The "sounds" backbone as native Core ML 3 neural-network layers (no custom layers).

``add_to_network`` appends to a ``pippin.pipelines.build.NetworkBuilder`` (rank-5 shape
mapping, blobs ``[C, H, W]``) the layers that compute, from one window of 101,376 samples,
what ``SoundsBackbone.embed`` computes in NumPy:

- ``reshape``: a ``[101376]`` input laid out along W -> ``[1, 1, 101376]``;
- peak normalisation: ``unary`` ABS, ``reduce`` MAX, ``unary`` THRESHOLD (``PEAK_FLOOR``),
  ``unary`` INVERSE -> gain ``[1, 1, 1]``; ``multiply`` x * gain (broadcast);
- framing, Hann window and DFT: one ``convolution``, kernel 1x2048, stride 1024, 1024
  zeros each side, 2050 output channels (Hann * cos and Hann * -sin of bins 0..1024),
  float32 -> ``[2050, 1, 100]``;
- power: ``multiply`` of that blob with itself; mel: a 1x1 ``convolution`` summing
  re^2 + im^2 into the 96 bands -> ``[96, 1, 100]``;
- ``unary`` LOG with scale 1e4 and shift 1, then ``activation`` linear
  1 / (ln 10 * 9.4578): ``log10(1e4 m + 1) / 9.4578``;
- ``permute`` to the CNN's image layout, time x mel -> ``[1, 100, 96]``;
- 8 x (``convolution`` 3x3 same padding with float16 kernels, ``batchnorm`` float32,
  ``activation`` ReLU), 2x2 max ``pooling`` after blocks 1-3 -> ``[512, 12, 12]``;
- average ``pooling`` 1x12: the mean over mel -> ``[512, 12, 1]``; max ``pooling`` 12x1:
  the max over time -> ``[512, 1, 1]`` (skipped if ``temporal``).

The DFT basis stays float32 (16.8 MB): rounded to float16 it moves the normalised
log-mel values by up to 3.9e-3 (measured on an FSDD digit and on noise), far above the
1e-4 the export must match. The CNN's kernels are the
weight file's float16 values, stored as ``float16Value`` (9.4 MB).
"""

from __future__ import annotations

import math

import numpy as np

from ...spec._proto import NeuralNetwork_pb2

from ..errors import AudioError
from . import sounds as _s

__all__ = ["add_to_network", "dft_basis", "build_network"]

_UNARY = NeuralNetwork_pb2.UnaryFunctionLayerParams
_REDUCE = NeuralNetwork_pb2.ReduceLayerParams
_TINY = 1e-30  # a unary layer's epsilon: 0 would mean 1e-6 (NeuralNetwork.proto)


def dft_basis() -> np.ndarray:
    """The framing convolution's kernels: Hann-windowed cos and -sin of every rFFT bin, times ``WINDOW_GAIN``.

    Returns
    -------
    weights : np.ndarray [shape=(2050, 1, 1, 2048)], float32
        Rows 0..1024 give the real parts of bins 0..1024, rows 1025..2049 the imaginary parts.
    """
    n = np.arange(_s.N_FFT, dtype=np.float64)
    k = np.arange(_s.N_FFT // 2 + 1, dtype=np.float64)[:, None]
    angle = 2.0 * np.pi * ((k * n) % _s.N_FFT) / _s.N_FFT
    window = _s.hann().astype(np.float64) * _s.WINDOW_GAIN
    basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])
    return basis.astype(np.float32).reshape(-1, 1, 1, _s.N_FFT)


def _float32(weights, values) -> None:
    weights.floatValue.extend(np.asarray(values, np.float32).ravel().tolist())


def _float16(weights, values) -> None:
    weights.float16Value = np.asarray(values, dtype="<f2").tobytes()


class _Layers:
    """Appends layers to a builder's network and records their output shapes."""

    def __init__(self, builder, prefix: str):
        self.builder, self.prefix = builder, prefix
        self.names = {layer.name for layer in builder.network.layers}

    def shape(self, blob: str) -> tuple[int, int, int]:
        if blob not in self.builder.shapes:
            raise AudioError(f"blob {blob!r} does not exist; known blobs: {sorted(self.builder.shapes)}",
                             where="sounds backbone export")
        return tuple(self.builder.shapes[blob])

    def add(self, name: str, inputs, output: str, shape):
        name = self.prefix + name
        if name in self.names:
            raise AudioError(f"a layer named {name!r} exists already", where="sounds backbone export",
                             hint="pass another prefix=")
        for blob in inputs:
            self.shape(blob)
        self.names.add(name)
        return self.builder.add_layer(name, inputs, output, shape)

    def unary(self, name, input, output, op, **fields):
        p = self.add(name, [input], output, self.shape(input)).unary
        p.type = op
        for key, value in fields.items():
            setattr(p, key, value)

    def conv(self, name, input, output, *, weights, kernel, stride=(1, 1), pads=None, half=False):
        c, h, w = self.shape(input)
        n_out = weights.shape[0]
        if pads is None:  # "same" for a 3x3 kernel at stride 1
            out_hw = (h, w)
        else:
            (t, b), (l, r) = pads
            out_hw = ((h + t + b - kernel[0]) // stride[0] + 1, (w + l + r - kernel[1]) // stride[1] + 1)
        p = self.add(name, [input], output, (n_out,) + out_hw).convolution
        p.outputChannels, p.kernelChannels, p.nGroups, p.hasBias = n_out, c, 1, False
        p.kernelSize.extend(kernel)
        p.stride.extend(stride)
        p.dilationFactor.extend([1, 1])
        if pads is None:
            p.same.asymmetryMode = 0
        else:
            for a, b in pads:
                edge = p.valid.paddingAmounts.borderAmounts.add()
                edge.startEdgeSize, edge.endEdgeSize = a, b
        (_float16 if half else _float32)(p.weights, weights)

    def pool(self, name, input, output, *, kind, kernel):
        c, h, w = self.shape(input)
        p = self.add(name, [input], output, (c, (h - kernel[0]) // kernel[0] + 1, (w - kernel[1]) // kernel[1] + 1))
        p = p.pooling
        p.type = {"max": 0, "average": 1}[kind]
        p.kernelSize.extend(kernel)
        p.stride.extend(kernel)
        p.valid.SetInParent()
        p.avgPoolExcludePadding = True


def add_to_network(backbone, builder, input_name: str, output_name: str, *, prefix: str = "sounds_",
                   temporal: bool = False) -> None:
    """Append the front end and the CNN of ``backbone`` to ``builder``.

    Parameters
    ----------
    backbone : SoundsBackbone
        Its weight arrays are written (``pippin.audio.backbones.sounds.load()``).
    builder : pippin.pipelines.build.NetworkBuilder
        A rank-5 network builder; ``input_name`` must be a blob of shape ``[101376]``
        (``[101376, 1, 1]``) or ``[1, 1, 101376]``.
    input_name, output_name : str
        The audio blob, and the embedding blob this creates: ``[512, 1, 1]``, or
        ``[512, 12, 1]`` (time positions along H) if ``temporal``.
    prefix : str
        Prefix of every layer and intermediate blob name.
    temporal : bool
        Skip the final max over time (see ``SoundsBackbone.embed(temporal=True)``).

    Raises
    ------
    AudioError
        The input blob has another shape, or a layer name is taken.
    """
    net = _Layers(builder, prefix)
    n, p = _s.WINDOW_SAMPLES, prefix
    shape = net.shape(input_name)
    if shape == (n, 1, 1):
        net.add("audio_row", [input_name], p + "audio", (1, 1, n)).reshape.targetShape.extend([1, 1, n])
        audio = p + "audio"
    elif shape == (1, 1, n):
        audio = input_name
    else:
        raise AudioError(f"input blob {input_name!r} has shape {list(shape)}, expected [{n}] or [1, 1, {n}]",
                         where="sounds backbone export", hint=f"feed windows of {n} samples at {_s.SAMPLE_RATE} Hz")
    # peak normalisation
    net.unary("abs", audio, p + "abs", _UNARY.ABS)
    net.add("peak", [p + "abs"], p + "peak", (1, 1, 1)).reduce.CopyFrom(
        _REDUCE(mode=_REDUCE.MAX, axis=_REDUCE.CHW))
    net.unary("peak_floor", p + "peak", p + "peak_floor", _UNARY.THRESHOLD, alpha=_s.PEAK_FLOOR)
    net.unary("gain", p + "peak_floor", p + "gain", _UNARY.INVERSE, epsilon=_TINY)
    net.add("normalise", [audio, p + "gain"], p + "normalised", (1, 1, n)).multiply.SetInParent()
    # framing, window and DFT as one strided convolution; power; mel
    half_frame = _s.N_FFT // 2
    net.conv("dft", p + "normalised", p + "dft", weights=dft_basis(), kernel=(1, _s.N_FFT), stride=(1, _s.HOP),
             pads=((0, 0), (half_frame, half_frame)))
    net.add("power", [p + "dft", p + "dft"], p + "power", net.shape(p + "dft")).multiply.SetInParent()
    mel = _s.mel_filters().T  # [96, 1025]
    net.conv("mel", p + "power", p + "mel", weights=np.concatenate([mel, mel], axis=1)[:, :, None, None],
             kernel=(1, 1), pads=((0, 0), (0, 0)))
    net.unary("log", p + "mel", p + "log", _UNARY.LOG, scale=_s.LOG_SCALE, shift=1.0, epsilon=_TINY)
    scaled = net.add("scale", [p + "log"], p + "logmel", net.shape(p + "mel")).activation.linear
    scaled.alpha = 1.0 / (math.log(10.0) * _s.NORM_MAX)
    c, _, t = net.shape(p + "logmel")
    net.add("image", [p + "logmel"], p + "image", (1, t, c)).permute.axis.extend([0, 2, 3, 1])
    # the CNN
    x, arrays, eps = p + "image", backbone.arrays, float(backbone.arrays["bn_eps"])
    for b in range(1, len(_s.CHANNELS) + 1):
        for i in (1, 2):
            name = f"block{b}_conv{i}"
            kernel = arrays[f"block{b}.conv{i}.weight"]
            net.conv(name, x, p + name, weights=kernel, kernel=(3, 3), half=kernel.dtype == np.float16)
            bn = net.add(f"block{b}_bn{i}", [p + name], p + name + "_bn", net.shape(p + name)).batchnorm
            bn.channels, bn.epsilon = kernel.shape[0], eps
            for field, key in (("gamma", "gamma"), ("beta", "beta"), ("mean", "mean"), ("variance", "var")):
                _float32(getattr(bn, field), arrays[f"block{b}.bn{i}.{key}"])
            net.add(f"block{b}_relu{i}", [p + name + "_bn"], p + name + "_relu",
                    net.shape(p + name)).activation.ReLU.SetInParent()
            x = p + name + "_relu"
        if b < len(_s.CHANNELS):
            net.pool(f"block{b}_pool", x, p + f"block{b}_pool", kind="max", kernel=(2, 2))
            x = p + f"block{b}_pool"
    _, h, w = net.shape(x)
    net.pool("mel_mean", x, output_name if temporal else p + "mel_mean", kind="average", kernel=(1, w))
    if not temporal:
        net.pool("time_max", p + "mel_mean", output_name, kind="max", kernel=(h, 1))


def build_network(backbone=None, *, input_name: str = "audioSamples", output_name: str = "embedding",
                  temporal: bool = False):
    """A standalone ``neuralNetwork`` spec: audio window in, embedding out.

    Parameters
    ----------
    backbone : SoundsBackbone, optional
        Default the shipped weights.
    input_name, output_name : str
    temporal : bool

    Returns
    -------
    spec : pippin.spec.Model
        Input ``input_name`` FLOAT32 ``[101376]``; output ``output_name`` ``[512, 1, 1]``
        (``[512, 12, 1]`` if ``temporal``); the weights' licence and attribution in the metadata.
    """
    from ...pipelines.build import NetworkBuilder

    backbone = _s.load() if backbone is None else backbone
    builder = NetworkBuilder(inputs=[(input_name, (_s.WINDOW_SAMPLES,))], outputs=[output_name])
    add_to_network(backbone, builder, input_name, output_name, temporal=temporal)
    spec = builder.spec
    shape = (_s.EMBEDDING_DIM, _s.N_STEPS_TEMPORAL if temporal else 1, 1)
    spec.description.output[0].type.multiArrayType.shape.extend(shape)
    meta = spec.description.metadata
    meta.shortDescription = "Pippin 'sounds' backbone (aisfx 0.1.2 CNN): 2.3 s of 44.1 kHz audio -> 512-d embedding"
    meta.license = backbone.licence
    meta.author = backbone.attribution
    meta.userDefined.update({"backbone": "sounds", "backbone.source": "aisfx 0.1.2",
                             "backbone.wheel_sha256": backbone.metadata.get("wheel_sha256", ""),
                             "backbone.licence": backbone.licence, "backbone.attribution": backbone.attribution,
                             "sampleRate": str(_s.SAMPLE_RATE)})
    return spec
