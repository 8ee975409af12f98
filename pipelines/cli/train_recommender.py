"""``pippin train recommender TABLE -o MODEL``: learn item similarities and export them.

TABLE is a CSV/TSV/Parquet file with one row per (user, item) interaction. The
result is a native Core ML ``ItemSimilarityRecommender`` (spec v4).
"""

from __future__ import annotations

import time

from .exit_codes import HELP_EPILOG
from .output import Result


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
    parser.add_argument("--similarity", default="jaccard", choices=sorted(SIMILARITIES),
                        help="similarity (default: jaccard)")
    parser.add_argument("--top-k", default="64", metavar="N",
                        help="neighbours kept per item, or 'all' (default: 64)")
    parser.add_argument("--threshold", type=float, default=0.001,
                        help="drop similarities below this (default: 0.001)")
    parser.set_defaults(handler=run)
    return parser


def _top_k(value: str):
    from ...recommend.errors import RecommendError

    if value.lower() in ("all", "none"):
        return None
    try:
        return int(value)
    except ValueError:
        raise RecommendError(f"--top-k {value!r}; expected a positive integer or 'all'", where="--top-k") from None


def run(args) -> Result:
    from ...recommend import ItemSimilarityRecommender

    from ...spec.errors import PippinError

    if (args.table is None) == (not args.demo):
        raise PippinError("give an interaction TABLE or --demo (not both)", where="pippin train recommender")
    table = args.table
    if args.demo:
        from ...datasets import make_demo_interactions

        table = make_demo_interactions()[["user_id", "item_id", "rating"]]
    start = time.perf_counter()
    model = ItemSimilarityRecommender(similarity=args.similarity, top_k=_top_k(args.top_k),
                                      threshold=args.threshold, progress=args.show_progress)
    model.fit(table, user=args.user_col, item=args.item_col, rating=args.rating_col)
    path = model.export(args.output)
    seconds = time.perf_counter() - start
    payload = {
        "model": str(path),
        "similarity": args.similarity,
        "top_k": model.top_k,
        "threshold": model.threshold,
        "users": model.n_users_,
        "items": model.n_items_,
        "interactions": int(model.interactions_.nnz),
        "neighbour_pairs": int(model.similarity_.nnz),
        "seconds": round(seconds, 3),
    }
    text = (f"wrote {path}: {args.similarity} similarity over {model.n_items_} items from "
            f"{model.interactions_.nnz} interactions of {model.n_users_} users "
            f"({model.similarity_.nnz} neighbour pairs, {seconds:.1f} s)")
    return Result(payload, text)
