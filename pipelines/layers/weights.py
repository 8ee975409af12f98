"""Reading and writing ``WeightParams``: the weight storage every layer shares.

Core ML stores a layer's weights in one of these ways (``WeightParams`` in
NeuralNetwork.proto):

- ``floatValue``: repeated float32;
- ``float16Value``: bytes, little-endian IEEE half floats;
- ``rawValue`` without ``quantization``: bytes, little-endian float32;
- ``rawValue`` with ``quantization``: ``numberOfBits`` (1..8) unsigned integers packed
  most-significant bit first, dequantized either linearly (``w = scale[c] * q + bias[c]``,
  one scale/bias for all, or one per output channel ``c`` = first weight axis) or
  through a look-up table of ``2**numberOfBits`` floats (``w = table[q]``);
- ``int8RawValue``: signed 8-bit values with a linear quantization.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...spec.errors import SpecError

__all__ = ["read_weights", "write_weights", "weight_count", "storage_kind"]


def storage_kind(weight_params: Any) -> str:
    """Which storage a ``WeightParams`` uses.

    Returns one of ``"empty"``, ``"float"``, ``"float16"``, ``"raw_float"``,
    ``"quantized"``, ``"int8"``.
    """
    if weight_params.int8RawValue:
        return "int8"
    if weight_params.rawValue:
        return "quantized" if weight_params.HasField("quantization") else "raw_float"
    if weight_params.float16Value:
        return "float16"
    if len(weight_params.floatValue):
        return "float"
    return "empty"


def _unpack_bits(raw: bytes, *, n_bits: int, count: int, where: str) -> np.ndarray:
    """Unsigned ``n_bits`` integers packed most-significant bit first (coremltools' packing)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if n_bits == 8:
        values = data
    else:
        bits = np.unpackbits(data)
        if bits.size < count * n_bits:
            raise SpecError(
                f"rawValue holds {bits.size} bits, expected at least {count * n_bits} "
                f"({count} weights of {n_bits} bits)",
                where=where,
            )
        bits = bits[: count * n_bits].reshape(count, n_bits).astype(np.uint16)
        values = (bits << np.arange(n_bits - 1, -1, -1, dtype=np.uint16)).sum(axis=1)
    if values.size < count:
        raise SpecError(f"rawValue holds {values.size} weights of {n_bits} bits, expected {count}", where=where)
    return values[:count]


def _dequantize(
    q: np.ndarray, quantization: Any, *, n_channels: int | None, where: str,
    shape: tuple[int, ...] | None = None, channel_axis: int = 0,
) -> np.ndarray:
    which = quantization.WhichOneof("QuantizationType")
    if which == "lookupTableQuantization":
        table = np.asarray(quantization.lookupTableQuantization.floatValue, dtype=np.float32)
        if q.size and int(q.max()) >= table.size:
            raise SpecError(
                f"lookup table has {table.size} entries but a weight indexes entry {int(q.max())}",
                where=f"{where}.quantization.lookupTableQuantization",
            )
        return table[q.astype(np.int64)]
    if which == "linearQuantization":
        scale = np.asarray(quantization.linearQuantization.scale, dtype=np.float32)
        bias = np.asarray(quantization.linearQuantization.bias, dtype=np.float32)
        if bias.size == 0:
            bias = np.zeros(1, dtype=np.float32)
        n = max(scale.size, bias.size)
        for label, arr in (("scale", scale), ("bias", bias)):
            if arr.size not in (1, n):
                raise SpecError(
                    f"{label} has {arr.size} values, expected 1 or {n}",
                    where=f"{where}.quantization.linearQuantization.{label}",
                )
        if n > 1 and q.size % n:
            raise SpecError(
                f"{q.size} weights do not split into {n} channels", where=f"{where}.quantization.linearQuantization"
            )
        if n_channels is not None and n > 1 and n != n_channels:
            raise SpecError(
                f"{n} scales given, expected 1 or {n_channels} (one per output channel)",
                where=f"{where}.quantization.linearQuantization.scale",
            )
        values = q.astype(np.float32)
        if n == 1:
            return values * scale[0] + bias[0]
        if shape is not None and channel_axis != 0:
            # per-channel on another axis (deconvolution weights: axis 1)
            view = [1] * len(shape)
            view[channel_axis] = n
            out = values.reshape(shape) * scale.reshape(view) + bias.reshape(view)
            return out.reshape(-1)
        out = values.reshape(n, -1) * scale.reshape(-1, 1) + bias.reshape(-1, 1)
        return out.reshape(-1)
    raise SpecError("quantized weights have no linearQuantization or lookupTableQuantization",
                    where=f"{where}.quantization")


def weight_count(weight_params: Any) -> int | None:
    """How many weights a ``WeightParams`` stores (None for packed quantized bits)."""
    kind = storage_kind(weight_params)
    if kind == "float":
        return len(weight_params.floatValue)
    if kind == "float16":
        return len(weight_params.float16Value) // 2
    if kind == "raw_float":
        return len(weight_params.rawValue) // 4
    if kind == "int8":
        return len(weight_params.int8RawValue)
    if kind == "empty":
        return 0
    return None


def read_weights(
    weight_params: Any,
    *,
    count: int | None = None,
    shape: tuple[int, ...] | None = None,
    where: str,
    n_channels: int | None = None,
    channel_axis: int = 0,
) -> np.ndarray:
    """Decode a ``WeightParams`` into a float32 array.

    Parameters
    ----------
    weight_params : WeightParams
        The proto message.
    count : int, optional
        The number of weights expected; defaults to ``prod(shape)``.
    shape : tuple of int, optional
        Reshape the result to this shape (C order, as Core ML stores weights).
    where : str
        The field path that names errors, e.g. ``"m.mlmodel: neuralNetwork.layers[0](fc).innerProduct.weights"``.
    n_channels : int, optional
        Output channels for per-channel linear quantization (defaults to ``shape[channel_axis]``).
    channel_axis : int
        The axis of ``shape`` that per-channel linear quantization runs along
        (0; 1 for deconvolution weights).

    Returns
    -------
    weights : np.ndarray [shape=shape or (count,)], float32

    Raises
    ------
    SpecError
        The stored number of weights differs from ``count``, or the storage is malformed.
    """
    if count is None and shape is not None:
        count = int(np.prod(shape, dtype=np.int64))
    if n_channels is None and shape:
        n_channels = int(shape[channel_axis])
    kind = storage_kind(weight_params)
    if kind == "float":
        values = np.asarray(weight_params.floatValue, dtype=np.float32)
    elif kind == "float16":
        raw = weight_params.float16Value
        if len(raw) % 2:
            raise SpecError(f"float16Value has {len(raw)} bytes, not a multiple of 2", where=where)
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif kind == "raw_float":
        raw = weight_params.rawValue
        if len(raw) % 4:
            raise SpecError(f"rawValue has {len(raw)} bytes, not a multiple of 4 (float32)", where=where)
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif kind == "int8":
        q = np.frombuffer(weight_params.int8RawValue, dtype=np.int8)
        if weight_params.HasField("quantization"):
            values = _dequantize(
                q, weight_params.quantization, n_channels=n_channels, where=where, shape=shape,
                channel_axis=channel_axis,
            )
        else:
            values = q.astype(np.float32)
    elif kind == "quantized":
        n_bits = int(weight_params.quantization.numberOfBits)
        if not 1 <= n_bits <= 8:
            raise SpecError(f"numberOfBits is {n_bits}, expected 1 to 8", where=f"{where}.quantization.numberOfBits")
        if count is None:
            count = len(weight_params.rawValue) * 8 // n_bits
        q = _unpack_bits(weight_params.rawValue, n_bits=n_bits, count=count, where=where)
        values = _dequantize(
                q, weight_params.quantization, n_channels=n_channels, where=where, shape=shape,
                channel_axis=channel_axis,
            )
    else:
        values = np.zeros(0, dtype=np.float32)
    if count is not None and values.size != count:
        raise SpecError(f"{values.size} values, expected {count}", where=where)
    values = np.ascontiguousarray(values, dtype=np.float32)
    return values.reshape(shape) if shape is not None else values


def write_weights(weight_params: Any, array: np.ndarray) -> None:
    """Store ``array`` into ``weight_params`` in place (used to write trained weights back).

    float16 storage stays float16, a raw float32 stays raw float32; everything else
    (float, quantized, empty) becomes ``floatValue`` float32, since quantized
    weights cannot represent trained values. ``isUpdatable`` is preserved.

    Parameters
    ----------
    weight_params : WeightParams
        The proto message, modified in place.
    array : np.ndarray [shape=(...)]
        The weights, in Core ML's C-order layout for the field.
    """
    values = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    kind = storage_kind(weight_params)
    updatable = weight_params.isUpdatable
    weight_params.Clear()
    weight_params.isUpdatable = updatable
    if kind == "float16":
        weight_params.float16Value = values.astype("<f2").tobytes()
    elif kind == "raw_float":
        weight_params.rawValue = values.astype("<f4").tobytes()
    else:
        weight_params.floatValue.extend(values.tolist())
