"""``pippin validate MODEL...``: check models against the rules Core ML's compiler enforces.

Each problem is printed as one line ``<file>: <field path>: <message>``. Every file
is checked even when an earlier one is broken or unreadable. A model that breaks no
rule is then loaded as ``pipelines.load`` would: whatever stops it from loading is a
problem too (rule ``pippin-runtime``), and so is a failing trial prediction on inputs made
from the description (``RunnableModel.dry_run``): a model ``validate`` accepts is one Pippin runs.
"""

from __future__ import annotations

import sys

from ...spec import io as spec_io
from ...spec.errors import PippinError, SpecError
from ...spec.validate import validate
from ..runtime.model import load
from . import exit_codes
from .output import Result, terminal_safe

_EPILOG = (
    "A model that breaks no rule is also loaded and run once on inputs made from its "
    "description; if Pippin cannot run it, that is a problem too (rule 'pippin-runtime'). "
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
    # with the path, linked models are followed under the same rules as `pipelines.load`
    entry["problems"] = [{"file": path, **p.to_dict()} for p in validate(model, path=path)]
    if not entry["problems"]:
        # one set of rules: what `pipelines.load` refuses (a layer Pippin cannot run, a
        # weight out of range) is a problem here too, so a model that validates also runs
        try:
            load(path).dry_run()
        except PippinError as exc:
            field = (exc.where or "").removeprefix(f"{path}: ").removeprefix(str(path))
            entry["problems"].append({"file": path, "path": field, "message": exc.message,
                                      "rule": "pippin-runtime"})
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
        sys.stderr.write("\n".join(terminal_safe(line, one_line=True) for line in unreadable) + "\n")
        sys.stderr.flush()
    return Result(payload=payload, text="\n".join(lines), code=code)
