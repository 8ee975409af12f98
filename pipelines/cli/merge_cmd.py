"""``pippin merge BASE DELTA... -o OUT``: average several users' updates of one base (federated averaging).

Each delta is verified (it must reproduce the update it records), example counts
weigh the average, and deltas that change the model in incompatible ways (a k-NN
personalization and a network update) are refused, naming both.
"""

from __future__ import annotations

from ...spec import io as spec_io
from ..personalize.delta import Delta, merge
from .exit_codes import HELP_EPILOG
from .output import Result, warn


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "merge", parents=parents, help="merge deltas of one base, weighted by their example counts",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("base", metavar="BASE", help="the model every delta was made against")
    parser.add_argument("deltas", metavar="DELTA", nargs="+", help="delta files from 'pippin diff'")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the merged model")
    parser.set_defaults(handler=run)
    return parser


def run(args):
    deltas = [Delta.load(path) for path in args.deltas]
    out = spec_io.save(merge(args.base, deltas), args.output)
    counts = [d.n_examples for d in deltas]
    defaults = [d.where for d in deltas if d.n_examples_source == "default"]
    if defaults and len(deltas) > 1:
        warn(f"{', '.join(defaults)} weigh(s) 1 example by default (no count was recorded): the average may be "
             "skewed; 'pippin diff --examples N' records one")
    payload = {"model": str(out), "n_deltas": len(deltas), "n_examples": counts,
               "n_examples_source": [d.n_examples_source for d in deltas]}
    return Result(payload, f"merged {len(deltas)} deltas (examples {counts})\nwrote {out}")
