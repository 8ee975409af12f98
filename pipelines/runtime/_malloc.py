"""Keep freed memory in the process's heap between layer calls (glibc only): see ``layers._malloc``.

The setting lives in ``layers`` so that the training engine (``update``, which may import only
``layers``) applies the same one; this module re-exports it for the runtime.
"""

from __future__ import annotations

from ..layers._malloc import MMAP_THRESHOLD, TRIM_THRESHOLD, _STATE, keep_freed_memory  # noqa: F401

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]
