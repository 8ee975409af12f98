"""``pippin demo [--out DIR]``: train, export, check, run and personalize models on generated demo data."""

from __future__ import annotations

from .demo import run_demo
from .exit_codes import CHECK_FAILED, HELP_EPILOG, OK
from .output import Result, info


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "demo", parents=parents, help="a one-minute tour: train, export, check, predict, recommend, personalize",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("--out", metavar="DIR", default="pippin-demo", help="folder for the files (default: pippin-demo)")
    parser.add_argument("--fast", action="store_true", help="smaller data and fewer epochs (for quick checks)")
    parser.set_defaults(handler=run)
    return parser


def run(args):
    say = (lambda line: None) if (args.json or args.quiet) else info
    result = run_demo(args.out, fast=args.fast, say=say)
    valid = all(step.get("valid", True) for step in result.steps)
    lines = [f"demo finished in {result.seconds:.0f} s; files in {result.folder}:"]
    lines += [f"  {name:<20} {path}" for name, path in result.files.items()]
    lines += ["next: pippin inspect " + result.files["personalized_model"],
              "      pippin predict " + result.files["sound_model"] + " CLIP.wav"]
    payload = {"folder": result.folder, "files": result.files, "steps": result.steps, "seconds": result.seconds}
    return Result(payload, "\n".join(lines), OK if valid else CHECK_FAILED)
