"""Indexing layers: gather, gatherND, gatherAlongAxis, the three scatters, embedding,
embeddingND, oneHot, whereNonZero, whereBroadcastable, matrixBandPart, lower/upperTriangular.

Index blobs hold float values; they are rounded to int64 and negative indices count from
the end. Each example indexes its own data (the batch axis pairs data and indices).
"""

from __future__ import annotations

import numpy as np

from ..errors import PipelineError
from .base import Layer, register
from .common import align, nd_axis, weights_of

# ScatterMode: UPDATE, ADD, SUB, MUL, DIV, MAX, MIN
_SCATTER_UFUNCS = {1: np.add, 2: np.subtract, 3: np.multiply, 4: np.divide, 5: np.maximum, 6: np.minimum}


def _indices(blob: np.ndarray, size: int) -> np.ndarray:
    idx = np.rint(blob).astype(np.int64)
    return np.where(idx < 0, idx + size, idx)


def _batch_index(n: int, ndim: int) -> np.ndarray:
    return np.arange(n).reshape((n,) + (1,) * (ndim - 1))


def gather(data: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    """Per example: ``take(data[n], indices[n], axis)``; ``axis`` is an array axis of ``data`` (>= 1)."""
    n = data.shape[0]
    moved = np.moveaxis(data, axis, 1)  # [N, A, pre..., post...]
    idx = _indices(indices, data.shape[axis])
    out = moved[_batch_index(n, idx.ndim), idx]  # [N, I..., pre..., post...]
    k, p = idx.ndim - 1, axis - 1
    perm = [0] + list(range(1 + k, 1 + k + p)) + list(range(1, 1 + k)) + list(range(1 + k + p, out.ndim))
    return np.ascontiguousarray(out.transpose(perm))


@register
class Gather(Layer):
    """``output[..., i, ...] = data[..., indices[i], ...]`` along ``axis``;
    output rank = data.rank - 1 + indices.rank."""

    kind = "gather"

    def forward(self, data, indices):
        return (gather(data, indices, axis=nd_axis(self.p.axis, data.ndim)),)


def _nd_index(data: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    k = indices.shape[-1]
    idx = [_indices(indices[..., j], data.shape[j + 1]) for j in range(k)]
    return (_batch_index(data.shape[0], indices.ndim - 1),) + tuple(idx)


@register
class GatherND(Layer):
    """``output[i, ..., j] = data[indices[i, ..., j, :]]`` (the last index axis addresses data's leading axes)."""

    kind = "gatherND"

    def forward(self, data, indices):
        return (np.ascontiguousarray(data[_nd_index(data, indices)]),)


@register
class GatherAlongAxis(Layer):
    """``numpy.take_along_axis(data, indices, axis)``."""

    kind = "gatherAlongAxis"

    def forward(self, data, indices):
        axis = nd_axis(self.p.axis, data.ndim)
        return (np.take_along_axis(data, _indices(indices, data.shape[axis]), axis=axis),)


def _scatter_at(out: np.ndarray, index: tuple, updates: np.ndarray, mode: int) -> np.ndarray:
    if mode == 0:
        out[index] = updates
    else:
        _SCATTER_UFUNCS[mode].at(out, index, updates)
    return out


def _check_mode(layer: Layer, mode: int) -> int:
    if mode not in range(7):
        raise layer.error(f"unknown scatter mode {mode}", "mode")
    return int(mode)


@register
class Scatter(Layer):
    """Copy of ``container`` with ``updates`` written (or combined by ``mode``) at ``indices`` along ``axis``."""

    kind = "scatter"

    def forward(self, container, indices, updates):
        axis = nd_axis(self.p.axis, container.ndim)
        mode = _check_mode(self, self.p.mode)
        out = np.array(container, dtype=np.float32)
        idx = _indices(indices, container.shape[axis])
        k, p = idx.ndim - 1, axis - 1
        # updates [N, pre, I..., post] -> [N, I..., pre, post] to pair with moveaxis(out, axis, 1)
        perm = [0] + list(range(1 + p, 1 + p + k)) + list(range(1, 1 + p)) + list(range(1 + p + k, updates.ndim))
        _scatter_at(np.moveaxis(out, axis, 1), (_batch_index(out.shape[0], idx.ndim), idx),
                    updates.transpose(perm), mode)
        return (out,)


@register
class ScatterND(Layer):
    """Copy of ``container`` with ``updates`` at the index vectors ``indices[..., :]`` (combined by ``mode``)."""

    kind = "scatterND"

    def forward(self, container, indices, updates):
        out = np.array(container, dtype=np.float32)
        return (_scatter_at(out, _nd_index(out, indices), updates, _check_mode(self, self.p.mode)),)


@register
class ScatterAlongAxis(Layer):
    """Inverse of gatherAlongAxis: ``output[..., indices[i, j, k], ...] = updates[i, j, k]`` along ``axis``."""

    kind = "scatterAlongAxis"

    def forward(self, container, indices, updates):
        axis = nd_axis(self.p.axis, container.ndim)
        out = np.array(container, dtype=np.float32)
        grids = list(np.indices(updates.shape, sparse=True))
        grids[axis] = _indices(indices, container.shape[axis])
        return (_scatter_at(out, tuple(grids), updates, _check_mode(self, self.p.mode)),)


@register
class Embedding(Layer):
    """Legacy embedding: index ``i`` (on the C axis, C = 1) becomes column ``i`` of
    ``weights`` [outputChannels, inputDim] plus the bias, on the C axis."""

    kind = "embedding"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.embedding
        self.n_in, self.n_out = int(p.inputDim), int(p.outputChannels)
        self.table = weights_of(self, "weights", p.weights, shape=(self.n_out, self.n_in)).T.copy()
        if p.hasBias:
            self.table += weights_of(self, "bias", p.bias, shape=(self.n_out,))

    def forward(self, x):
        idx = np.rint(x).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_in):
            raise PipelineError(f"embedding index out of range [0, {self.n_in})", where=self.where)
        out = self.table[idx[..., 0, :, :]]  # [..., H, W, n_out]
        return (np.ascontiguousarray(np.moveaxis(out, -1, -3)),)


@register
class EmbeddingND(Layer):
    """Embedding of indices in a last axis of size 1: output ``[..., embeddingSize]``,
    rows of ``weights`` [embeddingSize, vocabSize] transposed, plus the bias."""

    kind = "embeddingND"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.embeddingND
        self.vocab, size = int(p.vocabSize), int(p.embeddingSize)
        self.table = weights_of(self, "weights", p.weights, shape=(size, self.vocab)).T.copy()
        if p.hasBias:
            self.table += weights_of(self, "bias", p.bias, shape=(size,))

    def forward(self, x):
        idx = np.rint(x).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.vocab):
            raise PipelineError(f"embedding index out of range [0, {self.vocab})", where=self.where)
        if x.ndim > 2 and x.shape[-1] == 1:
            idx = idx[..., 0]
        return (self.table[idx],)


@register
class OneHot(Layer):
    """One-hot vectors of ``oneHotVectorSize`` (or the second input) inserted at ``axis``;
    out-of-range indices give all ``offValue``."""

    kind = "oneHot"

    def forward(self, x, size=None):
        p = self.p
        depth = int(np.asarray(size).reshape(-1)[0]) if size is not None else int(p.oneHotVectorSize)
        axis = nd_axis(p.axis, x.ndim + 1)
        idx = np.rint(x).astype(np.int64)
        hot = np.expand_dims(idx, axis) == np.arange(depth).reshape([-1 if i == axis else 1 for i in range(x.ndim + 1)])
        return (np.where(hot, np.float32(p.onValue), np.float32(p.offValue)).astype(np.float32),)


@register
class WhereNonZero(Layer):
    """Coordinates ``[M, rank]`` of the M non-zero values (every example must have the same M)."""

    kind = "whereNonZero"

    def forward(self, x):
        coords = np.argwhere(x != 0)
        counts = np.bincount(coords[:, 0], minlength=x.shape[0])
        if len(set(counts.tolist())) > 1:
            raise PipelineError(
                f"examples have different numbers of non-zero values ({sorted(set(counts.tolist()))}); "
                "run them one at a time", where=self.where)
        return (coords[:, 1:].reshape(x.shape[0], -1, x.ndim - 1).astype(np.float32),)


@register
class WhereBroadcastable(Layer):
    """``where(condition, a, b)`` with broadcasting."""

    kind = "whereBroadcastable"

    def forward(self, condition, a, b):
        c, a, b = align(condition, a, b)
        return (np.where(c != 0, a, b).astype(np.float32),)


def band_part(x: np.ndarray, *, lower: int, upper: int) -> np.ndarray:
    """Keep entries with ``m - n <= lower`` (if lower >= 0) and ``n - m <= upper`` (if upper >= 0)."""
    m = np.arange(x.shape[-2]).reshape(-1, 1)
    n = np.arange(x.shape[-1]).reshape(1, -1)
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    return np.where(keep, x, np.float32(0)).astype(np.float32)


@register
class MatrixBandPart(Layer):
    """Zero everything outside a band of ``numLower`` sub- and ``numUpper`` super-diagonals (-1: all)."""

    kind = "matrixBandPart"

    def forward(self, x):
        p = self.p
        return (band_part(x, lower=int(p.numLower), upper=int(p.numUpper)),)


@register
class LowerTriangular(Layer):
    """Zero the entries above the k-th diagonal of the last two axes."""

    kind = "lowerTriangular"

    def forward(self, x):
        return (np.tril(x, int(self.p.k)),)


@register
class UpperTriangular(Layer):
    """Zero the entries below the k-th diagonal of the last two axes."""

    kind = "upperTriangular"

    def forward(self, x):
        return (np.triu(x, int(self.p.k)),)
