"""Spreading batched audio work over the cores: our threads, single-threaded BLAS inside them.

The front end and the backbones cut a batch into chunks and run them on a thread
pool (NumPy, scipy.fft and BLAS release the GIL). BLAS's own threads on top of
ours only oversubscribe the cores (measured slower for the front end's small mel
product), so each pool runs with BLAS held to one thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

__all__ = ["one_blas_thread", "map_chunks", "n_cpus"]

_controller = None


def one_blas_thread():
    """A context in which BLAS runs single-threaded."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def n_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_chunks(fn: Callable[[int, int], object], n: int, *, chunk: int, n_threads: int | None = None) -> list:
    """``[fn(a, b) for each chunk [a, b) of range(n)]``, in order, on a thread pool with 1-thread BLAS."""
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    workers = max(1, min(n_threads or n_cpus(), len(bounds)))
    with one_blas_thread():
        if workers == 1:
            return [fn(a, b) for a, b in bounds]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda ab: fn(*ab), bounds))
