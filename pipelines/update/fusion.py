"""Which layers a sharded training step runs inside a batchnorm's own passes (``shards.ShardRunner``).

A batchnorm normalising with the mini-batch's statistics is applied by the runner itself (it
needs every shard's sums first), so the ReLU right after it, and a 2x2/stride-2 max pooling
right after that ReLU, can run in the same pass (``kernels``): these functions find them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["fused_relus", "fused_pools", "PooledKept"]


def _readers(graph) -> dict:
    """``{blob: [layers reading it, in run order]}``."""
    readers = {}
    for layer in graph.layers:
        for b in layer.inputs:
            readers.setdefault(b, []).append(layer)
    return readers


def fused_relus(graph) -> dict:
    """``{batchnorm name: ReLU layer}`` for each batchnorm read only by the ReLU right after it."""
    readers = _readers(graph)
    out = {}
    for bn, nxt in zip(graph.layers, graph.layers[1:]):
        if (bn.kind == "batchnorm" and nxt.kind == "activation" and getattr(nxt, "which", None) == "ReLU"
                and len(bn.outputs) == 1 and nxt.inputs == [bn.outputs[0]]
                and readers.get(bn.outputs[0]) == [nxt] and nxt.name in graph.active_names
                and bn.outputs[0] not in graph.loss_inputs):
            out[bn.name] = nxt
    return out


def fused_pools(graph, fused: dict) -> dict:
    """``{batchnorm name: pooling layer}`` for each fused ReLU read only by the 2x2/stride-2 max pooling
    right after it.

    Whether the pass can take it (even height and width, no padding) is decided per shard, when
    the shape is known (``ShardRunner._apply_bn``); otherwise the pooling runs as a layer of its own.
    """
    readers = _readers(graph)
    after = dict(zip(graph.layers, graph.layers[1:]))
    out = {}
    for bn, relu in fused.items():
        pool = after.get(relu)  # right after the ReLU, as the ReLU is right after its batchnorm
        if (pool is not None and readers.get(relu.outputs[0]) == [pool] and pool.kind == "pooling"
                and not pool.is_global and pool.type == 0
                and pool.kernel == (2, 2) and pool.stride == (2, 2) and len(pool.outputs) == 1
                and pool.name in graph.active_names and relu.outputs[0] not in graph.loss_inputs
                and hasattr(pool, "_geo")):
            out[bn] = pool
    return out


class PooledKept(NamedTuple):
    """What a fused batchnorm -> ReLU -> 2x2 max pooling pass keeps: the pooled output, the argmax and
    the input value there, C-contiguous ``[N, H/2, W/2, C]``."""

    pooled: np.ndarray
    idx: np.ndarray
    picked: np.ndarray
