"""Data-parallel mini-batches: each mini-batch is cut into fixed shards that run on every core.

Why shards of a fixed size: a mini-batch of ``B`` examples is always cut into the
same ``ceil(B / SHARD_SIZE)`` shards, whatever the number of workers, and every
sum across shards (parameter gradients, batchnorm statistics and their gradient
sums) is taken in shard order (by every process of a group alike). Each shard's arithmetic is
the same whichever thread or process runs it (BLAS held to one thread inside training), so
a seed gives the same model bytes on 1, 2 or 16 cores; more workers only run
more shards at once.

Where shards run: on the calling thread, on a thread pool (``pool``), or on the ranks
of a process group (``comm``, see ``procs``: each rank computes its own shards and the
per-shard results meet through ``comm.allgather``). Threads share the GIL, which the
many small NumPy calls of a layer hold: measured 1.15x from 1 to 2 threads inside a
step, hence the processes the trainer uses by default.

How a step runs (``ShardRunner``): the layers between two batch-statistics
batchnorms run per shard, one task per shard on the pool. A batchnorm that
normalises with the mini-batch's own statistics needs the whole batch: each
shard task ends with that layer's per-channel sums, the calling thread adds
them in shard order, and the next task starts by normalising its shard with the
batch's mean and variance (``Batchnorm._grad_sums``, ``_affine``, ``_apply`` and
``_input_grad`` of the layer itself, so the reference and the fast variant both
work). Backward does the same with the sums of ``g`` and ``g * x``. The result is
the gradient of the whole mini-batch, equal to the serial pass to rounding
(tests/pipelines/update/test_shards.py).

Only networks whose layers act on each example alone are sharded (the kinds in
``PER_EXAMPLE``, rank-5 shape mapping); any other network runs as one shard.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import numpy as np

from ..errors import PipelineError
from ..layers._blas import n_cpus
from . import kernels
from .fusion import PooledKept, fused_pools, fused_relus

__all__ = ["SHARD_SIZE", "MIN_PARALLEL_ELEMENTS", "PER_EXAMPLE", "ShardRunner", "n_cpus", "resolve_workers",
           "shard_bounds", "can_shard"]

#: examples per shard; fixed so that results do not depend on the number of workers
SHARD_SIZE = 8
#: below this many blob values per shard (a small dense head, say) the pool's hand-off costs more than
#: the shard's work: such a network trains whole mini-batches on the calling thread
MIN_PARALLEL_ELEMENTS = 200_000
#: layer kinds that compute each example from that example alone (rank-5 mapping)
PER_EXAMPLE = frozenset({"convolution", "innerProduct", "batchnorm", "activation", "pooling", "concat", "flatten",
                         "softmax", "add", "multiply", "unary", "bias", "scale"})


def resolve_workers(n_jobs: int | None) -> int:
    """``n_jobs`` (None or -1: every CPU this process may use) as a worker count >= 1."""
    if n_jobs is None or n_jobs == -1:
        return n_cpus()
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs={n_jobs!r}, expected a positive integer, -1 or None")
    return int(n_jobs)


def shard_bounds(n: int, shard_size: int = SHARD_SIZE) -> list[tuple[int, int]]:
    """The shards ``[(start, stop), ...]`` of a mini-batch of ``n`` examples."""
    return [(a, min(a + shard_size, n)) for a in range(0, n, shard_size)] or [(0, 0)]


def can_shard(layers, *, exact_shapes: bool) -> bool:
    """Whether every layer of the network computes each example on its own (see ``PER_EXAMPLE``)."""
    if exact_shapes:
        return False
    for layer in layers:
        if layer.kind not in PER_EXAMPLE:
            return False
        if layer.kind == "batchnorm" and layer.compute_mean_var and not layer.instance:
            return False
    return True


def _bn_view(x4):
    return x4.transpose(0, 2, 3, 1).reshape(-1, x4.shape[1])


def _nhwc(a4):
    return a4.transpose(0, 2, 3, 1)


class ShardRunner:
    """Forward and backward passes of a ``Graph`` over the shards of one mini-batch.

    Parameters
    ----------
    graph : engine.Graph
    pool : ThreadPoolExecutor or None
        None runs every shard on the calling thread.

    ``comm`` (a ``procs.ProcComm``, set by the trainer) replaces the pool: this process then
    computes only the shards it owns, and every sum across shards still covers all of them.
    """

    def __init__(self, graph, pool: ThreadPoolExecutor | None):
        self.graph = graph
        self.pool = pool
        self.comm = None
        #: batchnorm name -> (batch mean, 1 / std) of the last forward pass, for its backward pass
        self._batch_stats = {}
        #: the layers a step runs (``Trainer.frozen_prefix`` narrows them to the trained ones)
        self.layers = graph.layers
        #: batchnorm -> the ReLU it feeds, run in the same pass while normalising with batch statistics
        self.fused = fused_relus(graph)
        #: batchnorm -> the 2x2 max pooling its fused ReLU feeds, run in the same pass (``kernels``)
        self.pools = fused_pools(graph, self.fused)
        by_name = {layer.name: layer for layer in graph.layers}
        self._bn_of_relu = {relu.name: by_name[bn] for bn, relu in self.fused.items()}
        self._bn_of_pool = {pool.name: by_name[bn] for bn, pool in self.pools.items()}

    def _map(self, fn, n: int, *, to_all: bool = True) -> list | None:
        """``[fn(0), ..., fn(n - 1)]``: every shard's result, whichever thread or process computed it."""
        if self.comm is not None:
            return self.comm.allgather(fn, n, to_all=to_all)
        if self.pool is None or n == 1:
            return [fn(i) for i in range(n)]
        return list(self.pool.map(fn, range(n)))

    def _owns(self, i: int, n: int) -> bool:
        return self.comm is None or self.comm.owns(i, n)

    def _fused_relu_of(self, bn):
        """The ReLU a batch-statistics batchnorm runs in its own pass, or None."""
        return self.fused.get(bn.name) if getattr(bn, "batch_statistics", False) else None

    def example_size(self, one: dict) -> int:
        """Blob values one example makes through the layers a step runs (an inference pass, no side effects)."""
        values = dict(one)
        for layer in self.layers:
            values.update(zip(layer.outputs, layer.forward(*[values[b] for b in layer.inputs])))
        return sum(v.size for v in values.values() if isinstance(v, np.ndarray))

    @staticmethod
    def _syncs(layer, train: bool) -> bool:
        return train and layer.kind == "batchnorm" and getattr(layer, "batch_statistics", False)

    # ---------------------------------------------------------------- forward
    def forward(self, shards: list[dict], *, train: bool, gather: str | None = None) -> tuple[list[dict], list[dict]]:
        """Every layer over every shard ``{blob: [n_shard, ...]}``; returns per-shard blobs and caches.

        With a ``comm``, shards this process does not own are None and keep empty blobs,
        except ``gather`` (the loss's input, say), which every shard's entry then holds.
        """
        n = len(shards)
        values = [dict(b) if b is not None else {} for b in shards]
        caches = [{} for _ in shards]
        segment, pending = [], None
        for layer in self.layers:
            if self._syncs(layer, train):
                sums = self._map(lambda i: self._forward_task(i, segment, pending, values, caches, train, layer), n)
                pending = self._bn_statistics(layer, sums)
                self._batch_stats[layer.name] = (pending[3], pending[4])
                segment = []
            elif not (pending is not None and not segment and (self.fused.get(pending[0].name) is layer
                                                               or self.pools.get(pending[0].name) is layer)):
                segment.append(layer)  # (a fused ReLU, and the pooling after it, run inside their batchnorm's pass)
        outs = self._map(lambda i: self._forward_task(i, segment, pending, values, caches, train, None, gather), n)
        if gather is not None:
            for v, out in zip(values, outs):
                v[gather] = out
        return values, caches

    def _forward_task(self, i, segment, pending, values, caches, train, bn_next, gather=None):
        v, c = values[i], caches[i]
        if pending is not None:
            self._apply_bn(pending, v, c)
        active = self.graph.active_names
        for layer in segment:
            try:
                ins = [v[b] for b in layer.inputs]
            except KeyError as exc:
                raise PipelineError(f"layer {layer.name!r} reads blob {exc.args[0]!r}, which no earlier layer or "
                                    f"input provides", where=self.graph.where) from None
            if train and (layer.name in active or getattr(layer, "batch_statistics", False)):
                outs, c[layer.name] = layer.forward_train(*ins)
            else:
                outs = layer.forward(*ins)
            v.update(zip(layer.outputs, outs))
        if bn_next is None:
            return None if gather is None else v[gather]
        x4 = bn_next._to_4d(np.asarray(v[bn_next.inputs[0]], dtype=np.float32))
        if bn_next.name in self.fused:
            s1, s2 = kernels.channel_sums(_nhwc(x4), _nhwc(x4))
        else:
            x2 = _bn_view(x4)
            s1, s2 = bn_next._grad_sums(x4, x4, x2, x2)
        return s1, s2, x4.shape[0] * x4.shape[2] * x4.shape[3]

    def _apply_bn(self, pending, v, c):
        layer, scale, shift, mean, inv = pending
        x = v[layer.inputs[0]]
        x4 = layer._to_4d(np.asarray(x, dtype=np.float32))
        c[layer.name] = (x4, scale, mean, inv, x.shape)
        relu = self._fused_relu_of(layer)
        if relu is None:
            v[layer.outputs[0]] = layer._apply(x4, scale, shift).reshape(x.shape)
            return
        pool = self.pools.get(layer.name)
        if pool is not None and self._poolable(pool, x4):
            pooled, idx, picked = kernels.bn_relu_pool_forward(_nhwc(x4), scale, shift)
            p4 = pooled.transpose(0, 3, 1, 2)
            v[pool.outputs[0]] = p4.reshape(x.shape[:-2] + p4.shape[-2:])
            c[pool.name] = PooledKept(pooled, idx, picked)  # the ReLU output is never made: only the pooling read it
            return
        y4 = kernels.bn_relu_forward(_nhwc(x4), scale, shift).transpose(0, 3, 1, 2)
        y = y4.reshape(x.shape)
        v[layer.outputs[0]] = y  # read by the ReLU alone, which this pass ran: a stand-in of the same shape
        v[relu.outputs[0]] = y
        c[relu.name] = y4
        if pool is not None:  # a shape the fused pass does not take: the pooling runs as a layer
            outs, c[pool.name] = pool.forward_train(y)
            v[pool.outputs[0]] = outs[0]

    @staticmethod
    def _poolable(pool, x4) -> bool:
        h, w = x4.shape[2:]
        return h % 2 == 0 and w % 2 == 0 and pool._geo(h, w).pads == ((0, 0), (0, 0))

    @staticmethod
    def _bn_statistics(layer, sums):
        """Batch mean and biased variance from per-shard sums (added in shard order); updates the running statistics."""
        s1 = sum(s[0] for s in sums[1:]) + sums[0][0]  # float64 throughout
        s2 = sum(s[1] for s in sums[1:]) + sums[0][1]
        m = sum(s[2] for s in sums)
        mean = s1 / m
        var = np.maximum(s2 / m - mean * mean, 0.0)
        inv = 1.0 / np.sqrt(var + float(layer.epsilon))
        scale, shift = layer._affine(mean, var)
        if layer.buffers:
            mom = layer.momentum
            layer.buffers["mean"] = ((1 - mom) * layer.buffers["mean"] + mom * mean).astype(np.float32)
            unbiased = var * m / max(m - 1, 1)
            layer.buffers["variance"] = ((1 - mom) * layer.buffers["variance"] + mom * unbiased).astype(np.float32)
        return layer, scale, shift, mean, inv

    # --------------------------------------------------------------- backward
    def backward(self, values: list[dict], caches: list[dict], seeds: list[dict]) -> dict:
        """Parameter gradients ``{layer: {param: grad}}`` of the whole mini-batch.

        ``seeds[i]`` holds shard ``i``'s loss gradients (already divided by the whole
        mini-batch's size). Per-shard gradients are added in shard order. With a ``comm``,
        only rank 0 gets them (the other ranks get None).
        """
        g = self.graph
        n = len(values)
        grads = [dict(s) for s in seeds]
        pgrads = [{} for _ in range(n)]
        out = {}
        segment, pending = [], None
        fused_relus = {r for r, bn in list(self._bn_of_relu.items()) + list(self._bn_of_pool.items())
                       if getattr(bn, "batch_statistics", False)}
        for layer in reversed(g.active):
            if self._syncs(layer, True):
                sums = self._map(lambda i: self._backward_task(i, segment, pending, values, caches, grads, pgrads,
                                                               layer), n)
                pending, out[layer.name] = self._bn_backward_coefficients(layer, self._batch_stats[layer.name], sums)
                segment = []
            elif layer.name not in fused_relus:
                segment.append(layer)  # (a fused ReLU's (and pooling's) gradient is taken inside its batchnorm's passes)
        final = self._map(lambda i: (self._backward_task(i, segment, pending, values, caches, grads, pgrads, None),
                                     pgrads[i])[1], n, to_all=False)
        if final is None:
            return None
        for name in g.trainable:
            if name in out:
                continue
            parts = [p[name] for p in final if name in p]
            if parts:
                out[name] = {k: _ordered_sum([p[k] for p in parts]) for k in parts[0]}
        return out

    def _pooled_grad(self, bn, gr, v, c):
        """``(gradient of the fused pooling's output, its PooledKept)`` when ``bn``'s pass ran its pooling
        fused, else None (after running an unfused pooling's backward into the ReLU output's gradient)."""
        pool = self.pools.get(bn.name) if self._fused_relu_of(bn) is not None else None
        if pool is None:
            return None
        out = pool.outputs[0]
        kept = c[pool.name]
        if isinstance(kept, PooledKept):
            gp = gr.get(out)
            if gp is None:
                gp = gr[out] = np.zeros_like(v[out])
            return gp, kept
        if out in gr:  # the pooling ran as a layer: its gradient goes back through it first
            (gx,), _ = pool.backward(kept, gr.pop(out))
            self.graph._accumulate(gr, pool.inputs[0], gx)
        return None

    def _bn_output_grad(self, bn, gr, v, c):
        """The gradient reaching ``bn``'s output (or its fused ReLU's), and the ReLU output masking it (or None)."""
        relu = self._fused_relu_of(bn)
        fused = relu is not None
        out = relu.outputs[0] if fused else bn.outputs[0]
        gy = gr.get(out)
        if gy is None:
            gy = np.zeros_like(v[out])
            gr[out] = gy
        return out, gy, (c[relu.name] if fused else None)

    def _backward_task(self, i, segment, pending, values, caches, grads, pgrads, bn_next):
        g = self.graph
        gr, v, c = grads[i], values[i], caches[i]
        if pending is not None:
            self._bn_input_grad(pending, gr, v, c)
        for layer in segment:
            pg = g.backward_layer(layer, v, c, gr)
            if pg is not None and layer.name in g.trainable:
                pgrads[i][layer.name] = pg
        if bn_next is None:
            return None
        x4 = c[bn_next.name][0]
        pooled = self._pooled_grad(bn_next, gr, v, c)
        if pooled is not None:
            gp, kept = pooled
            s_g, s_gx = kernels.pool_relu_bn_grad_sums(_nhwc(gp.reshape((-1,) + gp.shape[-3:])), kept.pooled,
                                                       kept.picked)
            return s_g, s_gx, x4.shape[0] * x4.shape[2] * x4.shape[3]
        _, gy, y4 = self._bn_output_grad(bn_next, gr, v, c)
        g4 = gy.reshape((-1,) + gy.shape[-3:])
        if y4 is not None:
            s_g, s_gx = kernels.relu_bn_grad_sums(_nhwc(g4), _nhwc(y4), _nhwc(x4))
        else:
            s_g, s_gx = bn_next._grad_sums(g4, x4, _bn_view(g4), _bn_view(x4))
        return s_g, s_gx, x4.shape[0] * x4.shape[2] * x4.shape[3]

    def _bn_input_grad(self, pending, gr, v, c):
        g = self.graph
        layer, coefficients = pending
        x4, _, _, _, x_shape = c[layer.name]
        pooled = self._pooled_grad(layer, gr, v, c)
        if pooled is not None:
            gp, kept = pooled
            gr.pop(self.pools[layer.name].outputs[0], None)
            if g._needs_input_grads(layer) and layer.inputs[0] in g.depends:
                gx = kernels.pool_relu_bn_input_grad(_nhwc(gp.reshape((-1,) + gp.shape[-3:])), kept.pooled, kept.idx,
                                                     _nhwc(x4), *coefficients).transpose(0, 3, 1, 2)
                g._accumulate(gr, layer.inputs[0], gx.reshape(x_shape))
            return
        out, gy, y4 = self._bn_output_grad(layer, gr, v, c)
        gr.pop(out, None)
        if not g._needs_input_grads(layer) or layer.inputs[0] not in g.depends:
            return
        g4 = gy.reshape((-1,) + gy.shape[-3:])
        if y4 is not None or _nhwc(x4).flags.c_contiguous:
            mask = y4 if y4 is not None else x4
            gx = kernels.relu_bn_input_grad(_nhwc(g4), _nhwc(mask), _nhwc(x4), *coefficients,
                                            masked=y4 is not None).transpose(0, 3, 1, 2)
        else:
            gx = layer._input_grad(g4, x4, _bn_view(g4), _bn_view(x4), coefficients)
        g._accumulate(gr, layer.inputs[0], gx.reshape(x_shape))

    @staticmethod
    def _bn_backward_coefficients(layer, stats, sums):
        """Gamma/beta gradients and the input gradient's per-channel ``(a, b, c)`` from per-shard sums."""
        mean, inv = stats
        sum_g = sum(s[0] for s in sums[1:]) + sums[0][0]
        sum_gx = sum(s[1] for s in sums[1:]) + sums[0][1]
        m = sum(s[2] for s in sums)
        grad_gamma = (sum_gx - mean * sum_g) * inv  # sum(g * xhat)
        grads = {"gamma": grad_gamma.astype(np.float32), "beta": sum_g.astype(np.float32)}
        gamma = layer.params["gamma"].astype(np.float64)
        # dx = gamma * inv / m * (m g - sum_g - xhat * sum(g xhat)), written as a g + b x + c per channel
        a = gamma * inv
        b = -gamma * inv * inv * grad_gamma / m
        c = -a * sum_g / m - b * mean
        return (layer, (a, b, c)), grads


def _ordered_sum(parts: list[np.ndarray]) -> np.ndarray:
    """``parts[0] + parts[1] + ...`` left to right, in float32."""
    total = np.array(parts[0], dtype=np.float32, copy=True)
    for p in parts[1:]:
        total += p
    return total
