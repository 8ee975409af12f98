"""``pippin diff BASE UPDATED -o DELTA``: write only the parameters an update changed, with the base's fingerprint."""

from __future__ import annotations

import os

from ..personalize.delta import diff
from .exit_codes import HELP_EPILOG
from .output import Result, warn

SOURCES = {"metadata": "recorded in the updated model", "given": "given with --examples",
           "default": "default: the updated model records no example count; give --examples"}


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "diff", parents=parents, help="write a small delta file: what an update changed in a model",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("base", metavar="BASE", help="the model before the update")
    parser.add_argument("updated", metavar="UPDATED", help="the same model after 'pippin update' or 'personalize'")
    parser.add_argument("-o", "--output", required=True, metavar="DELTA", help="delta file to write (.mldelta)")
    parser.add_argument("--examples", type=int, default=None,
                        help="examples the update saw, a whole number >= 1 (merge weight; default: the count "
                             "'pippin update'/'personalize' recorded in the updated model, else 1)")
    parser.set_defaults(handler=run)
    return parser


def run(args):
    delta = diff(args.base, args.updated, n_examples=args.examples)
    out = delta.save(args.output)
    size, full = os.path.getsize(out), os.path.getsize(args.updated)
    if delta.n_examples_source == "default":
        warn(f"{args.updated} records no example count (pippin.examples_seen): the delta weighs 1 example in a "
             "merge; give --examples N")
    payload = {"delta": str(out), "base_sha256": delta.base_sha256, "n_changes": len(delta.changes),
               "n_examples": delta.n_examples, "n_examples_source": delta.n_examples_source,
               "bytes": size, "updated_bytes": full}
    text = (f"{len(delta.changes)} changed fields, {delta.n_examples} examples ({SOURCES[delta.n_examples_source]}); "
            f"{size} bytes (the updated model is {full})\nwrote {out}")
    return Result(payload, text)
