"""Python's cyclic garbage collector held off while ``pippin update`` / ``pippin personalize`` load.

Why, measured on ``pippin personalize --head`` (FSDD, one core): loading NumPy, SciPy, numba
and the layers creates ~135,000 long-lived objects, and the collector walks them over and
over while they are created (2 full and 27 middle collections: 0.08 s of CPU, all of it
before any work can be shared between cores). Holding it off until the model is loaded,
then moving every object alive at that point to the permanent generation (``gc.freeze``,
which also spares forked workers the copy-on-write faults of collections touching those
objects), leaves 0.01 s. Memory is unaffected in practice: loading creates next to no
reference cycles, and the collector runs as usual from ``release()`` on.

``hold()`` is called by the ``pippin`` console script for those commands only, before
anything is imported; ``release()`` by the commands once their model is loaded. Elsewhere
(``main(argv)`` in tests, other programs) ``hold`` is never called and ``release`` does nothing.
"""

from __future__ import annotations

import gc

__all__ = ["hold", "release"]

_held = False


def hold() -> None:
    """Turn the collector off (if it is on) until ``release``."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """Freeze every object alive now (``gc.freeze``) and turn the collector back on, if ``hold`` turned it off."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
