"""The ``pippin`` command line and the demo: the one room allowed to import every other (``pippin --help`` lists the commands)."""

from .main import build_parser, main as _main


def main(argv=None):
    """Console-script entry point; returns the process's exit code to ``sys.exit``."""
    import sys

    sys.exit(_main(argv))


__all__ = ["main", "build_parser"]
