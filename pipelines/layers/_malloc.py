"""Keep freed memory in the process's heap between layer calls (glibc only).

Why: every layer returns fresh arrays, hundreds of kilobytes to megabytes each. With glibc's
default, adaptive settings, blocks that size are often mapped from the kernel on allocation
and handed back on free (or the heap top is trimmed), so the next call's arrays page-fault
again: each fresh 4 KiB page costs about a microsecond to map and zero. Measured at one thread
(process CPU time, per predict): the zoo's Transformer encoder 9.1 -> 7.1 ms (1 930 -> 150 page
faults), EfficientNet-B0 126 -> 103 ms (18 300 -> 150 faults); ResNet-18 unchanged (its sizes
already settle in the heap).

``keep_freed_memory`` fixes the mmap threshold at 32 MiB (glibc's own upper bound for its
adaptive threshold) and the heap trim threshold at 256 MiB through ``mallopt``, once per
process, when the first neural network is loaded (``runtime.neural_network``) or trained
(``update.trainer.Trainer``: training pays the same faults on every shard's activations and
gradients, and measured on the sound CNN at one core it spent 30% of its CPU time in the kernel,
635k faults per two epochs, against 0.02 s after this). The cost: up to 256 MiB of freed memory may
stay mapped to the process. Nothing is changed when the C library is not glibc, when the user
set either threshold through glibc's environment variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``), or when ``PIPPIN_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_STATE = {"done": False, "applied": False}
_LOCK = threading.Lock()


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once (see the module docstring); True when applied."""
    with _LOCK:
        if _STATE["done"]:
            return _STATE["applied"]
        _STATE["done"] = True
        if os.environ.get("PIPPIN_KEEP_FREED_MEMORY", "1") == "0":
            return False
        if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
            return False
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return False
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _STATE["applied"] = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        return _STATE["applied"]
