"""``pippin apply BASE DELTA -o OUT``: rebuild a personalized model from its base and a delta, byte for byte.

Both hashes the delta records are checked: the base's before anything is written, and
the result's (a delta whose manifest was edited is refused, naming both digests).
"""

from __future__ import annotations

from ..personalize.delta import Delta, apply_bytes, write_atomically
from .exit_codes import HELP_EPILOG
from .output import Result


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "apply", parents=parents, help="rebuild an updated model from its base and a delta",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("base", metavar="BASE", help="the model the delta was made against")
    parser.add_argument("delta", metavar="DELTA", help="a delta file from 'pippin diff'")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the model")
    parser.set_defaults(handler=run)
    return parser


def run(args):
    delta = Delta.load(args.delta)
    out = write_atomically(args.output, apply_bytes(args.base, delta))
    payload = {"model": str(out), "sha256": delta.updated_sha256, "n_changes": len(delta.changes)}
    return Result(payload, f"applied {len(delta.changes)} changes (SHA-256 {delta.updated_sha256[:12]}... "
                           f"verified)\nwrote {out}")
