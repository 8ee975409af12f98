"""The ``pippin`` command line and the demo: the one room allowed to import every other (``pippin --help`` lists the commands)."""

import os as _os
import sys as _sys

#: commands whose parallel work runs in forked processes with one BLAS thread each
FORKING_COMMANDS = ("update", "personalize")


def _one_blas_thread_for_forking_commands(argv: list[str]) -> None:
    """Why: OpenBLAS starts its threads when NumPy loads and they spin for about 0.2 s of CPU
    waiting for work; ``pippin update`` / ``pippin personalize`` never give them any (their
    frozen layers and mini-batches run in forked processes with one BLAS thread), while a forked
    reader is working beside them on the other core (measured: ``update`` 1.54x -> 1.70x on 2
    cores). Only for the ``pippin`` console script, only these commands, only when the user has
    not chosen a thread count; before anything imports NumPy."""
    if (len(argv) > 1 and _os.path.basename(argv[0]) == "pippin" and argv[1] in FORKING_COMMANDS
            and "OPENBLAS_NUM_THREADS" not in _os.environ and "numpy" not in _sys.modules):
        _os.environ["OPENBLAS_NUM_THREADS"] = "1"


_one_blas_thread_for_forking_commands(_sys.argv)

from .main import build_parser, main as _main  # noqa: E402  (after the BLAS thread count is set)


def main(argv=None):
    """Console-script entry point; returns the process's exit code to ``sys.exit``."""
    import sys

    sys.exit(_main(argv))


__all__ = ["main", "build_parser"]
