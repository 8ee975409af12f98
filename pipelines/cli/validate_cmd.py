"""``pippin validate MODEL...``: check models against the rules Core ML's compiler enforces.

Each problem is printed as one line ``<file>: <field path>: <message>``. Every file
is checked even when an earlier one is broken or unreadable.
"""

from __future__ import annotations

import sys

from ...spec import io as spec_io
from ...spec.errors import SpecError
from ...spec.validate import validate
from . import exit_codes
from .output import Result

_EPILOG = (
    "exit codes: 0 = every model is valid; 1 = a model has problems (one line per problem); "
    "2 = a file could not be read at all (reported on stderr, the other files are still "
    "checked). With several files the worst code wins. With --json: one object with "
    "'valid', 'files' (one entry per file: file, valid, readable, error, problems) and "
    "'problems' (all of them, each with file, path, message, rule)."
)


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "validate", parents=parents, help="check models against Core ML's rules",
        description="Check models against the rules Core ML's model compiler enforces.", epilog=_EPILOG,
    )
    parser.add_argument("models", metavar="MODEL", nargs="+", help=".mlmodel files to check")
    parser.set_defaults(handler=run)
    return parser


def _check_file(path: str) -> dict:
    entry = {"file": path, "readable": True, "valid": False, "error": None, "problems": []}
    try:
        model = spec_io.load(path)
    except SpecError as exc:
        entry["readable"] = False
        entry["error"] = exc.to_dict()
        return entry
    entry["problems"] = [{"file": path, **p.to_dict()} for p in validate(model)]
    entry["valid"] = not entry["problems"]
    return entry


def run(args) -> Result:
    files = [_check_file(path) for path in args.models]
    quiet = args.verbose - args.quiet < 0
    lines, unreadable = [], []
    code = exit_codes.OK
    for entry in files:
        if not entry["readable"]:
            err = entry["error"]
            unreadable.append(f"pippin: error: {err['where'] or entry['file']}: {err['message']}")
            code = exit_codes.ERROR
        elif entry["problems"]:
            lines.extend(f"{entry['file']}: {p['path'] or '(model)'}: {p['message']}"
                         for p in entry["problems"])
            code = max(code, exit_codes.CHECK_FAILED)
        elif not quiet:
            lines.append(f"{entry['file']}: valid")
    problems = [p for entry in files for p in entry["problems"]]
    payload = {"valid": code == exit_codes.OK, "problems": problems, "files": files}
    if unreadable and not getattr(args, "json", False):
        sys.stderr.write("\n".join(unreadable) + "\n")
        sys.stderr.flush()
    return Result(payload=payload, text="\n".join(lines), code=code)
