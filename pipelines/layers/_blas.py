"""How many threads BLAS runs on right now, cheaply enough to ask per layer call.

Why: a route made of many small BLAS calls (``_conv_taps``: one product per kernel tap)
beats im2col's one large product only while BLAS is single-threaded; with two BLAS threads
each small call pays a thread hand-off (measured on DenseNet-121 at 2 threads, batch 4:
760 ms with taps against 327 ms with im2col). threadpoolctl's per-library getters call
the libraries' own C functions (microseconds), unlike its ``threadpool_info`` scan; the
runtime's one-BLAS-thread block sets them through the same controllers.
"""

from __future__ import annotations

import os

_LIBS: list = []


def n_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so ``taskset -c 0`` means one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries, found once per process."""
    if not _LIBS:
        import scipy.linalg  # noqa: F401  (loads the BLAS the compiled kernels call, so it is found too)
        from threadpoolctl import ThreadpoolController

        _LIBS.append(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _LIBS[0]


def blas_threads() -> int:
    """The largest thread count among the loaded BLAS libraries (1 when none is found)."""
    return max((lib.get_num_threads() for lib in blas_libraries()), default=1)
