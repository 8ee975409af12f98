"""Independent training jobs in forked processes: small fits that cannot use a second core by themselves.

Why: a small network (a dense head on embeddings, say) trains whole mini-batches on
the calling thread (``Trainer._plan``), and its many small NumPy calls hold the GIL,
so threads do not run two such fits at once. Cross-validation folds are
independent fits; each runs in a child forked from this process, which inherits
the data (no pickling of inputs) and sends back only the small result. Started
children run while the parent goes on with other work (``pippin.audio.choose``
embeds the next backbone's clips meanwhile); ``result`` waits for one.

Fork from a point where no other thread of this process is computing (a lock
another thread holds at the fork stays held in the child). Without fork, or with
one CPU, the call runs inline when started, so a 1-core run does the same work
in the same order and gives the same results.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback

from ..errors import PipelineError
from .procs import can_fork
from ..layers._blas import n_cpus

__all__ = ["ForkedCall", "start"]


def _child(fn, conn) -> None:
    try:
        result = ("ok", fn())
    except BaseException:
        result = ("error", traceback.format_exc())
    try:
        conn.send(result)
    finally:
        conn.close()


class ForkedCall:
    """``fn()`` in a forked child (or inline: ``forked=False``); ``result()`` returns its value.

    Parameters
    ----------
    fn : callable with no arguments
        Its return value must pickle (it crosses a pipe).
    forked : bool
    """

    def __init__(self, fn, *, forked: bool):
        self._value = self._proc = self._conn = None
        if not forked:
            self._value = fn()
            return
        ctx = mp.get_context("fork")
        self._conn, child_end = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(fn, child_end), daemon=True, name="pippin-fit")
        self._proc.start()
        child_end.close()

    def result(self):
        if self._proc is None:
            return self._value
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise PipelineError(f"a forked training job stopped unexpectedly (exit code {self._proc.exitcode})") from None
        finally:
            self._conn.close()
            self._proc.join()
            self._proc = None
        if status == "error":
            raise PipelineError(f"a forked training job failed:\n{value}")
        self._value = value
        return value


def start(fn, *, n_jobs: int | None = None) -> ForkedCall:
    """Start ``fn()`` in a forked child when more than one CPU is usable (``n_jobs``: None = every CPU), else now."""
    workers = n_cpus() if n_jobs in (None, -1) else int(n_jobs)
    return ForkedCall(fn, forked=workers > 1 and can_fork())
