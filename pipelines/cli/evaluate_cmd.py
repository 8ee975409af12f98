"""``pippin evaluate MODEL ...``: score a model on labelled data, by model kind.

A sound classifier takes ``DATA`` (a folder with one sub-folder per label, a
``path,label`` table, or a flat folder with ``--label-from-name``); an item-similarity
recommender takes ``--history`` and ``--holdout`` tables, or one ``--history`` table
split with ``--holdout-fraction``/``--seed`` as ``pippin train recommender`` split it.
The work is done in ``evaluate_sound`` / ``evaluate_recommender``.
"""

from __future__ import annotations

import importlib

from ...spec import io as spec_io
from ...spec.errors import SpecError
from .exit_codes import HELP_EPILOG
from .tables import add_split_options, add_table_options


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "evaluate", parents=parents, help="measure a model's accuracy on labelled data",
        description=__doc__.splitlines()[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="a .mlmodel file")
    parser.add_argument("data", metavar="DATA", nargs="?", help="sound classifiers: labelled audio folder or path,label table")
    sound = parser.add_argument_group("sound classifiers")
    sound.add_argument("--plot", metavar="PNG", help="write a confusion-matrix picture (needs matplotlib)")
    sound.add_argument("--overlap", type=float, default=None, help="window overlap in [0, 1) (default: the model's, 0.5)")
    sound.add_argument("--label-from-name", metavar="REGEX", default=None,
                       help="DATA is a folder of files whose names carry the label (as in 'pippin train sound')")
    rec = parser.add_argument_group("recommenders")
    rec.add_argument("--history", metavar="TABLE", help="interactions the recommendations are made from")
    rec.add_argument("--holdout", metavar="TABLE", help="held-out interactions to find")
    rec.add_argument("--user-col", default="user_id", help="user column (default: user_id)")
    rec.add_argument("--item-col", default="item_id", help="item column (default: item_id)")
    rec.add_argument("--rating-col", default=None,
                     help="rating column of --history (default: the model's training rating column, when the "
                          "table has it)")
    rec.add_argument("--k", type=int, default=10, help="cutoff for the @k metrics (default: 10)")
    add_table_options(rec)
    add_split_options(rec)
    parser.set_defaults(handler=run)
    return parser


def run(args):
    spec = spec_io.load(args.model)
    kind = spec.WhichOneof("Type")
    if kind == "itemSimilarityRecommender":
        module = "evaluate_recommender"
    elif args.history or args.holdout or args.holdout_fraction is not None:
        raise SpecError(f"--history/--holdout are for recommenders, but the model is {kind!r}", where=args.model)
    else:
        module = "evaluate_sound"
    return importlib.import_module(f"{__package__}.{module}").run(args, spec)
