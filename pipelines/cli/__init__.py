"""The ``pippin`` command line and the demo: the one room allowed to import every other (``pippin --help`` lists the commands)."""

import os as _os
import sys as _sys

#: commands whose parallel work runs in forked processes with one BLAS thread each
FORKING_COMMANDS = ("update", "personalize")


def _is_forking_command(argv: list[str]) -> bool:
    """Whether ``argv`` is the ``pippin`` console script running one of ``FORKING_COMMANDS``."""
    return len(argv) > 1 and _os.path.basename(argv[0]) == "pippin" and argv[1] in FORKING_COMMANDS


def _one_blas_thread_for_forking_commands(argv: list[str]) -> None:
    """Why: OpenBLAS starts its threads when NumPy loads and they spin for about 0.2 s of CPU
    waiting for work; ``pippin update`` / ``pippin personalize`` never give them any (their
    frozen layers and mini-batches run in forked processes with one BLAS thread), while a forked
    reader is working beside them on the other core (measured: ``update`` 1.54x -> 1.70x on 2
    cores). Only for the ``pippin`` console script, only these commands, only when the user has
    not chosen a thread count; before anything imports NumPy."""
    if (_is_forking_command(argv)
            and "OPENBLAS_NUM_THREADS" not in _os.environ and "numpy" not in _sys.modules):
        _os.environ["OPENBLAS_NUM_THREADS"] = "1"


_one_blas_thread_for_forking_commands(_sys.argv)
if _is_forking_command(_sys.argv):  # the collector waits until the model is loaded (see gc_hold)
    from . import gc_hold as _gc_hold

    _gc_hold.hold()

from .main import build_parser, main as _main  # noqa: E402  (after the BLAS thread count is set)


def _exit_without_teardown(code) -> None:
    """End the process now, with ``code``, skipping only the interpreter's own teardown.

    Why: after ``pippin update`` / ``pippin personalize`` return, Python spends about 0.15 s of
    CPU (0.2 s of wall) tearing down the ~1,000 modules they load (numba, llvmlite, scipy) and
    freeing their objects one by one; the operating system frees the memory at once. That time
    is the same on every core count and added to every run. Everything a normal exit does that
    can be seen still happens first: stdout and stderr are flushed and the ``atexit`` handlers
    run (``logging.shutdown``, pending ``weakref.finalize`` calls such as temporary folders,
    multiprocessing's end of its children). Falls back to the normal exit (returns) when other
    threads are still running, a stream cannot be flushed, or this Python has no way to run
    the handlers."""
    import atexit
    import threading

    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is None or threading.active_count() > 1:
        return
    try:
        _sys.stdout.flush()
        _sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: let Python report it as usual
        return
    run_handlers()
    try:
        _sys.stdout.flush()
        _sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def main(argv=None):
    """Console-script entry point; returns the process's exit code to ``sys.exit``."""
    import sys

    code = _main(argv)
    if argv is None and _is_forking_command(sys.argv):
        _exit_without_teardown(code)
    sys.exit(code)


__all__ = ["main", "build_parser"]
