"""``pippin train recommender TABLE -o MODEL``: learn item similarities and export them.

TABLE is a CSV/TSV/Parquet file with one row per (user, item) interaction (a
header-less file with ``--sep`` and ``--columns``). The result is a native Core ML
``ItemSimilarityRecommender`` (spec v4). ``--holdout-fraction F --seed S`` trains on
all but a random share F of each user's interactions, the split ``pippin evaluate``
makes with the same flags.
"""

from __future__ import annotations

import time

from .exit_codes import HELP_EPILOG
from .output import Result, info
from .tables import add_split_options, add_table_options, load_table, split


def add_parser(subparsers, parents):
    from ...recommend.similarity import SIMILARITIES

    parser = subparsers.add_parser(
        "recommender", parents=parents, help="item-similarity recommender from an interaction table",
        description=__doc__.split("\n\n")[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("table", metavar="TABLE", nargs="?", help="interactions: .csv, .tsv or .parquet")
    parser.add_argument("--demo", action="store_true",
                        help="train on pippin's generated demo interactions instead of TABLE "
                             "(columns user_id, item_id, rating)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL", help="the .mlmodel to write")
    parser.add_argument("--user-col", default="user_id", help="user column (default: user_id)")
    parser.add_argument("--item-col", default="item_id", help="item column (default: item_id)")
    parser.add_argument("--rating-col", default=None, help="rating column (default: none, every interaction counts 1)")
    parser.add_argument("--similarity", default="jaccard", choices=sorted([*SIMILARITIES, "ease"]),
                        help="similarity (default: jaccard); 'ease' learns item-item weights (Steck 2019)")
    parser.add_argument("--l2", default=None, metavar="L",
                        help="ease only: ridge penalty, a number > 0 or 'auto' (picked on a validation split; "
                             "default: 20 x the mean number of users per item)")
    parser.add_argument("--neighbours", type=int, default=None, metavar="M",
                        help="ease only: solve each item's weights over its M top co-occurring items "
                             "(sparse approximation for large catalogues; default: exact)")
    parser.add_argument("--popularity-exponent", type=float, default=0.15, metavar="BETA",
                        help="ease only: divide each item's scores by its number of users ** BETA, a number >= 0 "
                             "(default: 0.15; 0 is plain EASE)")
    parser.add_argument("--user-weight-exponent", type=float, default=0.25, metavar="ALPHA",
                        help="ease only: weight each user's rows by (their number of interactions) ** -ALPHA "
                             "when fitting, a number >= 0 (default: 0.25; 0 is plain EASE)")
    parser.add_argument("--history-popularity-exponent", type=float, default=0.2, metavar="DELTA",
                        help="ease only: divide what each history item adds to the scores by its number of "
                             "users ** DELTA, a number >= 0 (default: 0.2; 0 is plain EASE)")
    parser.add_argument("--top-k", default="64", metavar="N",
                        help="neighbours kept per item, or 'all' (default: 64)")
    parser.add_argument("--threshold", type=float, default=0.001,
                        help="drop similarities below this, a number >= 0 (default: 0.001)")
    add_table_options(parser)
    add_split_options(parser)
    from .spark_engine import add_engine_options

    add_engine_options(parser)  # --engine local|spark, --spark-master (issue 15)
    parser.set_defaults(handler=run)
    return parser


def _l2(value: str) -> float:
    from ...recommend.errors import RecommendError

    try:
        return float(value)
    except ValueError:
        raise RecommendError(f"--l2 {value!r}; expected a number > 0 or 'auto'", where="--l2") from None


def _top_k(value: str):
    from ...recommend.errors import RecommendError

    if value.lower() in ("all", "none"):
        return None
    try:
        return int(value)
    except ValueError:
        raise RecommendError(f"--top-k {value!r}; expected a positive integer or 'all'") from None


def run(args) -> Result:
    from ...recommend import ItemSimilarityRecommender

    from ...spec.errors import PippinError

    if (args.table is None) == (not args.demo):
        raise PippinError("give an interaction TABLE or --demo (not both)", where="pippin train recommender")
    from ...spec.io import check_output_path

    check_output_path(args.output)  # before the training run, not after it (issue 12.8)
    top_k = _top_k(args.top_k)
    if top_k is not None and top_k < 1:
        raise PippinError(f"--top-k {args.top_k}; expected a positive integer or 'all'")
    if not args.threshold >= 0 or args.threshold == float("inf"):
        raise PippinError(f"--threshold {args.threshold:g}; expected a finite number >= 0 "
                          "(similarities below it are dropped)")
    l2 = args.l2 if args.l2 in (None, "auto") else _l2(args.l2)
    if args.similarity == "ease" and getattr(args, "engine", "local") == "spark":
        raise PippinError("--similarity ease runs on --engine local only", where="--engine")
    if getattr(args, "engine", "local") == "spark":
        from .spark_engine import train_recommender

        return train_recommender(args, top_k)
    if args.demo:
        from ...datasets import make_demo_interactions

        table = make_demo_interactions()[["user_id", "item_id", "rating"]]
    else:
        table, _ = load_table(args, args.table, rating=args.rating_col)
    table, held_out = split(args, table)
    if getattr(args, "show_lines", True):
        held = f", {len(held_out)} held out" if held_out is not None else ""
        info(f"learning {args.similarity} similarities from {len(table)} interactions{held}")
    start = time.perf_counter()
    model = ItemSimilarityRecommender(similarity=args.similarity, top_k=top_k,
                                      threshold=args.threshold, progress=args.show_progress,
                                      l2=l2, neighbours=args.neighbours,
                                      popularity_exponent=args.popularity_exponent,
                                      user_weight_exponent=args.user_weight_exponent,
                                      history_popularity_exponent=args.history_popularity_exponent)
    model.fit(table, user=args.user_col, item=args.item_col, rating=args.rating_col)
    path = model.export(args.output)
    seconds = time.perf_counter() - start
    payload = {
        "model": str(path),
        "similarity": args.similarity,
        "top_k": model.top_k,
        "threshold": model.threshold,
        "l2": getattr(model, "l2_", None),
        "users": model.n_users_,
        "items": model.n_items_,
        "interactions": int(model.interactions_.nnz),
        "neighbour_pairs": int(model.similarity_.nnz),
        "seconds": round(seconds, 3),
        "held_out": None if held_out is None else len(held_out),
    }
    text = (f"wrote {path}: {args.similarity} similarity over {model.n_items_} items from "
            f"{model.interactions_.nnz} interactions of {model.n_users_} users "
            f"({model.similarity_.nnz} neighbour pairs, {seconds:.1f} s)")
    return Result(payload, text)
