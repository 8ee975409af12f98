"""``pippin``: the command-line entry point.

Each command lives in its own module with ``add_parser(subparsers, parents)``,
which registers the sub-command and sets ``handler=run``; ``run(args)`` returns
an ``output.Result``. This module only builds the parser, dispatches, and turns
errors into one line (or one JSON object) and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ...spec import __version__ as PIPPIN_VERSION
from ...spec.errors import PippinError
from . import exit_codes
from .output import capture_library_output, envelope, print_json, terminal_safe

# Command modules, in the order `pippin --help` lists them. Add new ones here.
COMMAND_MODULES = (
    "inspect_cmd",
    "validate_cmd",
    "train_cmd",
    "evaluate_cmd",
    "recommend_cmd",
    "predict_cmd",
    "update_cmd",
    "diff_cmd",
    "apply_cmd",
    "merge_cmd",
    "personalize_cmd",
    "sync_cmd",
    "federate_cmd",
    "demo_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors honour ``--json`` and exit 2 with one line."""

    def error(self, message):  # noqa: D401 - argparse hook
        if "--json" in sys.argv[1:]:
            print_json(envelope({}, ok=False, error={"type": "UsageError", "where": self.prog,
                                                    "message": message, "hint": f"see '{self.prog} --help'"}))
        else:
            self.print_usage(sys.stderr)
            sys.stderr.write(f"pippin: error: {message}\n")
        sys.exit(exit_codes.ERROR)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeatable)")
    common.add_argument("-q", "--quiet", action="count", default=0, help="less output; no progress bars")
    return common


def _wanted(argv: list[str] | None) -> tuple[str, ...] | None:
    """The command words of ``argv`` (``("train", "sound")``, say) when they name a command module, else None.

    Why: each command module imports what its command needs, and together they cost
    about a second of imports (the recommender, Flower, pandas) that caps short
    commands such as ``pippin update``; only the named command's module is loaded.
    """
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    if not words or f"{words[0]}_cmd" not in COMMAND_MODULES:
        return None  # --help, --version or a usage error: the full parser lists every command
    return tuple(words[:2])


def build_parser(argv: list[str] | None = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The ``pippin`` parser; ``lazy`` loads only the command module ``argv`` names (see ``_wanted``)."""
    parser = _Parser(
        prog="pippin",
        description="Train, export, check and run Core ML models on Linux.",
        epilog=exit_codes.HELP_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"pippin {PIPPIN_VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common_options()
    wanted = _wanted(argv) if lazy else None
    for name in COMMAND_MODULES:
        if wanted is not None and name != f"{wanted[0]}_cmd":
            continue
        module = importlib.import_module(f"{__package__}.{name}")
        if wanted is not None and len(wanted) > 1 and hasattr(module, "TRAINER_MODULES"):
            module.add_parser(subparsers, [common], only=wanted[1])
        else:
            module.add_parser(subparsers, [common])
    return parser


def _fail(args, error: dict, line: str) -> int:
    if getattr(args, "json", False):
        print_json(envelope({}, ok=False, error=error))
    else:
        sys.stderr.write(f"pippin: error: {terminal_safe(line, one_line=True)}\n")
    return exit_codes.ERROR


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv, lazy=True)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return exit_codes.ERROR
    verbosity = args.verbose - args.quiet
    level = logging.DEBUG if args.debug else (logging.INFO if verbosity > 0 else logging.WARNING)
    # bars only on a terminal (and not under --json or -q); stage/epoch lines unless -q, --json too
    args.show_progress = (not args.json) and verbosity >= 0 and sys.stderr.isatty()
    args.show_lines = verbosity >= 0
    try:
        with capture_library_output(level, quiet=verbosity < 0):
            result = args.handler(args)
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    except PippinError as exc:
        if args.debug:
            logging.exception("pippin error")
        return _fail(args, exc.to_dict(), str(exc))
    except BrokenPipeError:
        return exit_codes.ERROR
    except Exception as exc:  # the one catch-all: one line, traceback only under --debug
        if args.debug:
            raise
        return _fail(
            args,
            {"type": "InternalError", "where": None, "message": f"{type(exc).__name__}: {exc}",
             "hint": "rerun with --debug"},
            f"internal error ({type(exc).__name__}: {exc}); rerun with --debug",
        )
    if args.json:
        print_json(envelope(result.payload, ok=result.code == exit_codes.OK))
    elif result.text:
        sys.stdout.write(terminal_safe(result.text.rstrip("\n")) + "\n")
    return result.code


def run() -> None:
    """Console-script entry: exit with ``main``'s code."""
    sys.exit(main())
