"""One mini-batch step: forward, loss, backward, optimizer; shared by ``fit_network`` and ``update``.

Each mini-batch runs as fixed shards (``shards``) with BLAS held to one thread, on
``n_jobs`` worker processes forked at the first sharded step (``procs``; the calling
process is one of them and alone runs the optimizer), or on a thread pool where
fork is unavailable (``BACKEND``). Use the trainer as a context manager around the
training loop: it owns the processes, the pool and the BLAS limit.
"""

from __future__ import annotations

import mmap
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import PipelineError
from ..layers._malloc import keep_freed_memory
from .engine import Graph
from .losses import cross_entropy, cross_entropy_logits_grad, mean_squared_error
from .forked import ForkedCall
from .procs import ProcessGroup, can_fork
from .shards import MIN_PARALLEL_ELEMENTS, SHARD_SIZE, ShardRunner, resolve_workers, shard_bounds

__all__ = ["Trainer", "n_correct", "BACKEND"]

#: where a step's shards run when n_jobs > 1: "processes" (forked replicas, see ``procs`` for the
#: measurements) or "threads" (one process; the GIL caps it at ~1.15x on 2 cores). Processes need fork.
BACKEND = "processes"


def _shared_array(shape: tuple, dtype) -> np.ndarray:
    """A zeroed array in anonymous shared memory: forked children see the parent's writes to it."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    buf = mmap.mmap(-1, max(count * dtype.itemsize, 1))
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def n_correct(probs: np.ndarray, target: np.ndarray) -> int:
    """How many rows of ``probs`` (channel axis as in ``losses``) have their maximum at ``target``."""
    p2 = np.moveaxis(probs, -3, -1).reshape(len(target), -1) if probs.ndim >= 4 else probs.reshape(len(target), -1)
    return int((p2.argmax(axis=1) == target).sum())


class Trainer:
    """Train the ``trainable`` layers of ``layers`` against one loss.

    Parameters
    ----------
    layers : list of Layer
        Built layers in run order; their ``params`` are replaced after each step.
    trainable : dict of str to tuple of str
        Layer name -> the parameter names to train.
    loss_kind : {"categoricalCrossEntropyLossLayer", "meanSquaredErrorLossLayer"}
    loss_input : str
        The blob the loss reads.
    optimizer : SGD or Adam
    n_jobs : int or None
        Workers (None or -1: every CPU this process may use): processes or threads,
        see ``BACKEND``. The result does not depend on it.
    shardable : bool
        Whether the network may be cut into shards (``shards.can_shard``); False runs
        each mini-batch whole.
    """

    def __init__(self, layers, *, trainable, loss_kind, loss_input, optimizer, where="<model>", n_jobs=None,
                 shardable=True):
        self.layers = layers
        self.by_name = {layer.name: layer for layer in layers}
        self.trainable = trainable
        self.loss_kind = loss_kind
        self.loss_input = loss_input
        self.optimizer = optimizer
        self.state = None
        self.graph = Graph(layers, trainable=set(trainable), loss_inputs=[loss_input], where=where)
        producer = self.graph.producer.get(loss_input)
        self.fuse_softmax = (loss_kind == "categoricalCrossEntropyLossLayer" and producer is not None
                             and producer.kind == "softmax" and producer.name in self.graph.active_names)
        self.softmax_input = producer.inputs[0] if self.fuse_softmax else None
        self.n_workers = resolve_workers(n_jobs)
        self.shardable = shardable
        self.runner = ShardRunner(self.graph, None)
        self._blas = None
        self._pool = None
        self._group = None
        #: blob -> a buffer shared with the worker processes, holding the current mini-batch (``_stage``)
        self._shared = None
        #: examples per shard (0: whole mini-batches), fixed at the first step by ``_plan``
        self.shard_size = None

    def __enter__(self):
        from threadpoolctl import threadpool_limits

        keep_freed_memory()  # activations and gradients reuse freed heap memory, not fresh pages (layers._malloc)
        self._blas = threadpool_limits(limits=1, user_api="blas")
        if self.n_workers > 1 and self.shardable:
            self._pool = ThreadPoolExecutor(max_workers=self.n_workers, thread_name_prefix="pippin-train")
            self.runner.pool = self._pool
        return self

    def __exit__(self, *exc):
        if self._group is not None:
            self._group.close()
            self._group = self.runner.comm = None
        self._shared = None
        if self._pool is not None:
            self._pool.shutdown()
        self._pool = self.runner.pool = None
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None
        return False

    def _plan(self, blobs: dict) -> int:
        """Examples per shard, 0 for whole mini-batches; from the network and the input shapes alone.

        A network with under ``MIN_PARALLEL_ELEMENTS`` blob values per shard (a small dense
        head, say) runs whole mini-batches on the calling thread: handing such a shard to a
        thread or process costs more than its work. The pool is then left idle and no
        process is forked.
        """
        if not self.shardable:
            return 0
        if self.runner.example_size({k: v[:1] for k, v in blobs.items()}) * SHARD_SIZE < MIN_PARALLEL_ELEMENTS:
            self.runner.pool = None
            return 0
        return SHARD_SIZE

    def _start_processes(self, blobs: dict) -> None:
        """Fork ``n_workers - 1`` replicas (they inherit the layers as they are now) and hand shards to them.

        The mini-batches travel through memory shared with the replicas (``_shared``, sized by
        this first one), not pickled through the pipes (a 32-patch batch of the sound CNN is
        0.8 MB): only the weights and the targets are sent. Measured on that CNN at 2 cores, rank 0's
        CPU time per epoch went from 0.575-0.60 s to 0.52-0.55 s (1 core: 1.0 s), the share of the
        work beyond its half that bounds the speed-up.
        """
        if self.n_workers < 2 or BACKEND != "processes" or not can_fork() or self._blas is None:
            return
        self._shared = {k: _shared_array(v.shape, v.dtype) for k, v in blobs.items()}
        self._group = ProcessGroup(self.n_workers, self._serve)
        self.runner.comm = self._group.comm

    def _stage(self, blobs: dict) -> bool:
        """Copy the mini-batch into the shared buffers when it fits them (else it goes through the pipes)."""
        shared = self._shared
        if not shared or set(blobs) != set(shared) or any(
                v.shape[1:] != shared[k].shape[1:] or len(v) > len(shared[k]) or v.dtype != shared[k].dtype
                for k, v in blobs.items()):
            return False
        for k, v in blobs.items():
            shared[k][:len(v)] = v
        return True

    def _serve(self, comm) -> None:
        """A worker's loop (in the forked child): steps with rank 0's weights, on the shards it owns."""
        self._pool = self.runner.pool = None
        self.runner.comm = comm
        conn = comm.conns[0]
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                return
            _, weights, mine, target, bounds = msg
            for (name, p), w in weights.items():
                self.by_name[name].params[p] = w
            n = len(bounds)
            if mine is None:  # this step's mini-batch is in the shared buffers (``_stage``)
                mine = {i: {k: v[a:b] for k, v in self._shared.items()} for i, (a, b) in enumerate(bounds)
                        if comm.owns(i, n)}
            self._compute([mine.get(i) for i in range(n)], target, bounds)

    def frozen_prefix(self, blobs: dict, *, chunk: int = 64) -> dict:
        """The blobs the trained layers read, computed once for every example; later steps start there.

        Core ML's update trains a network's last layers; the frozen layers before them
        give every example the same values in every epoch (they use stored batchnorm
        statistics), so they run once, in fixed chunks of ``chunk`` examples on the pool,
        instead of once per epoch. Only when ``prefix_frontier`` names the blobs to keep;
        otherwise ``blobs`` comes back unchanged and steps run every layer.

        Parameters
        ----------
        blobs : dict of str to np.ndarray [shape=(n_samples, ...)]

        Returns
        -------
        blobs : dict of str to np.ndarray [shape=(n_samples, ...)]
        """
        n = len(next(iter(blobs.values()))) if blobs else 0
        frontier = self.prefix_frontier({k: v[:1] for k, v in blobs.items()}) if n else None
        if frontier is None:
            return blobs
        starts = list(range(0, n, chunk))

        def part(i):
            return self.run_prefix({k: v[starts[i]:starts[i] + chunk] for k, v in blobs.items()}, frontier)

        parts = self._map_parts(part, range(len(starts)))
        return self.use_prefix({b: np.concatenate([p[b] for p in parts], axis=0) for b in frontier})

    def prefix_frontier(self, one: dict) -> list[str] | None:
        """The blobs the trained layers read from the frozen layers, or None when steps must run every layer.

        None unless the network is sharded (each example on its own), the frozen layers
        use no batch statistics, the inputs ``one`` (one example) are not those blobs
        already, and the blobs are no larger than the inputs (checked by running ``one``
        through the network, which also loads the kernels before any fork).
        """
        g = self.graph
        frontier = sorted({b for layer in g.active for b in layer.inputs if b not in g.depends})
        needed = {b for layer in g.layers if layer.name not in g.active_names for b in layer.outputs}
        batch_statistics = any(getattr(layer, "batch_statistics", False) for layer in g.layers
                               if layer.name not in g.active_names)
        if (not self.shardable or not g.active or set(frontier) <= set(one)
                or not set(frontier) <= needed | set(one) or batch_statistics):
            return None
        probe = self.run_prefix(one, frontier)
        if sum(probe[b].size for b in frontier) > sum(v[:1].size for v in one.values()):
            return None  # bigger than the inputs: keep memory as it is
        return frontier

    def run_prefix(self, blobs: dict, frontier: list[str]) -> dict:
        """``frontier``'s values for ``blobs`` (one chunk of examples), with inference semantics."""
        values, _ = self.graph.forward(blobs, train=False)
        return {b: values[b] for b in frontier}

    def use_prefix(self, blobs: dict) -> dict:
        """Start every later step at ``blobs`` (the frozen prefix's values, see ``prefix_frontier``)."""
        g = self.graph
        frontier = {b for layer in g.active for b in layer.inputs if b not in g.depends}
        if set(blobs) != frontier:
            raise PipelineError(f"the frozen blobs given are {sorted(blobs)}; the trained layers read "
                                f"{sorted(frontier)}", where=g.where)
        self.runner.layers = g.active
        return blobs

    def _map_parts(self, part, indices) -> list:
        """``[part(i) for i in indices]`` (inference chunks with small results), in order, on every worker.

        With processes, children forked now (they see the weights as they are) compute
        contiguous ranges of ``indices`` while this process computes the first; else the
        thread pool, if any. Each chunk's arithmetic is the same wherever it runs.
        """
        indices = list(indices)
        k = min(self.n_workers, len(indices))
        if k > 1 and BACKEND == "processes" and can_fork():
            bounds = [len(indices) * j // k for j in range(k + 1)]
            calls = [ForkedCall(lambda a=a, b=b: [part(i) for i in indices[a:b]], forked=True)
                     for a, b in zip(bounds[1:-1], bounds[2:])]
            out = [part(i) for i in indices[:bounds[1]]]
            for call in calls:
                out.extend(call.result())
            return out
        pool = self.runner.pool
        return list(pool.map(part, indices)) if pool is not None else [part(i) for i in indices]

    def weights(self) -> dict:
        return {(name, p): self.by_name[name].params[p] for name, ps in self.trainable.items() for p in ps}

    def loss(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        if self.loss_kind == "categoricalCrossEntropyLossLayer":
            return cross_entropy(output, target)
        return mean_squared_error(output, target)

    def step(self, blobs: dict, target: np.ndarray, *, learning_rate: float | None = None) -> float:
        """One forward/backward pass and optimizer step on one mini-batch; returns its loss."""
        n = len(target)
        if self.shard_size is None:
            self.shard_size = self._plan(blobs)
            if self.shard_size:
                self._start_processes(blobs)
        bounds = shard_bounds(n, self.shard_size) if self.shard_size else [(0, n)]
        shards = [{k: v[a:b] for k, v in blobs.items()} for a, b in bounds]
        if self._group is not None:  # each worker gets the current weights and the shards it owns
            weights, comm = self.weights(), self._group.comm
            staged = self._stage(blobs)
            for rank in range(1, comm.size):
                mine = None if staged else {i: s for i, s in enumerate(shards) if i * comm.size // len(shards) == rank}
                self._group.send(rank, ("step", weights, mine, target, bounds))
        output, loss, pgrads = self._compute(shards, target, bounds)
        self.last_output = output
        grads = {}
        for (name, p), w in self.weights().items():
            g = pgrads.get(name, {}).get(p)
            grads[(name, p)] = np.zeros_like(w) if g is None else g
        new, self.state = self.optimizer.step(self.weights(), grads, self.state, learning_rate=learning_rate)
        for (name, p), w in new.items():
            self.by_name[name].params[p] = np.ascontiguousarray(w, dtype=np.float32)
        return loss

    def _compute(self, shards: list, target: np.ndarray, bounds: list) -> tuple[np.ndarray, float, dict | None]:
        """Forward, loss and backward over the shards (None: another process's): ``(output, loss, pgrads)``.

        Every process computes the whole mini-batch's loss gradient from the gathered
        outputs (a few values per example) and seeds its own shards with it; ``pgrads``
        is None on a worker process.
        """
        values, caches = self.runner.forward(shards, train=True, gather=self.loss_input)
        outs = [v[self.loss_input] for v in values]
        output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)
        loss, grad = self.loss(output, target)
        if self.fuse_softmax:  # enters at the softmax's input as (p - onehot) / B
            seed_name, grad = self.softmax_input, cross_entropy_logits_grad(output, target)
        else:
            seed_name = self.loss_input
        seeds = [{seed_name: grad[a:b]} for a, b in bounds]
        return output, loss, self.runner.backward(values, caches, seeds)

    def evaluate(self, blobs: dict, target: np.ndarray, *, batch_size: int = 64) -> tuple[float, float | None]:
        """Mean loss (and accuracy for cross-entropy) with inference semantics, in fixed batches (on the pool)."""
        n = len(target)
        starts = list(range(0, n, batch_size))

        def part(i):
            a = starts[i]
            values, _ = self.graph.forward({k: v[a:a + batch_size] for k, v in blobs.items()}, train=False)
            out = values[self.loss_input]
            t = target[a:a + batch_size]
            loss, _ = self.loss(out, t)
            hits = n_correct(out, t) if self.loss_kind == "categoricalCrossEntropyLossLayer" else 0
            return loss * len(t), hits

        parts = (self._map_parts(part, range(len(starts))) if self.shardable and self.shard_size != 0
                 else [part(i) for i in range(len(starts))])
        total, correct = 0.0, 0
        for loss, hits in parts:  # in batch order, whatever the pool
            total += loss
            correct += hits
        acc = correct / n if self.loss_kind == "categoricalCrossEntropyLossLayer" and n else None
        return total / max(n, 1), acc
