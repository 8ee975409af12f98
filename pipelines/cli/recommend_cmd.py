"""``pippin recommend MODEL``: recommendations from an item-similarity recommender file.

One user: ``--items a,b,c`` (their items, each optionally ``item:rating``;
``--exclude`` adds items never to recommend, besides those; ``--restrict`` limits the
candidates). Many users: ``--histories TABLE --user-col U --item-col I`` scores every
user of the table in one batch and writes ``user, rank, item, score`` rows (``-o``
.csv or .parquet, else CSV on stdout). Items the model does not know are ignored,
counted and named. A user with no known item (a new user) gets the most popular
items when the model records item popularity (models trained by Pippin do).
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from ...spec.errors import PippinError
from .exit_codes import HELP_EPILOG
from .output import Result, warn
from .tables import add_table_options, load_table, recorded_rating


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "recommend", parents=parents, help="recommend items with an item-similarity recommender",
        description=__doc__.split("\n\n")[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="an ItemSimilarityRecommender .mlmodel")
    parser.add_argument("--items", metavar="A,B:5,C",
                        help="one user's items, comma-separated; 'item:rating' gives a rating (default 1)")
    parser.add_argument("--k", type=int, default=10, help="recommendations per user (default: 10)")
    parser.add_argument("--exclude", metavar="A,B", default=None, help="never recommend these (besides --items)")
    parser.add_argument("--restrict", metavar="A,B", default=None, help="only recommend among these")
    parser.add_argument("--histories", metavar="TABLE", help="many users: interactions table (.csv/.tsv/.parquet)")
    parser.add_argument("--user-col", default="user_id", help="user column of --histories (default: user_id)")
    parser.add_argument("--item-col", default="item_id", help="item column of --histories (default: item_id)")
    parser.add_argument("--rating-col", default=None,
                        help="rating column of --histories (default: the model's training rating column, "
                             "when the table has it)")
    add_table_options(parser)
    parser.add_argument("-o", "--output", metavar="OUT", help="--histories: write .csv or .parquet here")
    from .spark_engine import add_engine_options

    add_engine_options(parser)  # --engine local|spark, --spark-master (issue 15)
    parser.set_defaults(handler=run)
    return parser


def _load(path):
    from .. import load
    from ..errors import PipelineError

    model = load(path)
    if model.kind != "itemSimilarityRecommender":
        raise PipelineError(f"model kind is {model.kind!r}, expected itemSimilarityRecommender", where=str(path))
    return model


def _parse_items(model, text: str | None) -> list:
    if text is None:
        return []
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not model.string_ids:
        return [int(v) if v.lstrip("-").isdigit() else v for v in items]
    return items


def _rating(text: str):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _parse_history(model, text: str) -> dict:
    """``a,b:5,c`` -> {item: rating}; a suffix ``:x`` is a rating when ``x`` is a number and
    ``a:x`` is not itself an item of the model (string ids may hold colons)."""
    history = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        item, rating = part, 1.0
        head, sep, tail = part.rpartition(":")
        if sep and head and model.index_of(part) is None:
            value = _rating(tail)
            if value is None:
                raise PippinError(f"rating {tail!r} of item {head!r} is not a finite number", where="--items",
                                  hint="write item:rating, e.g. --items 50:5,172:4")
            item, rating = head.strip(), value
        if not model.string_ids and item.lstrip("-").isdigit():
            item = int(item)
        history[item] = rating
    return history


def _one_user(args, model) -> Result:
    history = _parse_history(model, args.items)
    items = list(history)
    inputs = {model.item_input: [history]}
    if model.k_input:
        inputs[model.k_input] = np.array([args.k])
    if args.exclude is not None and model.exclude_input:
        inputs[model.exclude_input] = [items + _parse_items(model, args.exclude)]
    if args.restrict is not None and model.restrict_input:
        inputs[model.restrict_input] = [_parse_items(model, args.restrict)]
    out = model.predict_batch(inputs)
    unknown_ids = [item for item in items if model.index_of(item) is None]
    fallback = "popularity" if len(model.fallback_rows) else None
    ranked = out[model.list_output][0][: args.k] if model.list_output else list(out[model.score_output][0])[: args.k]
    score_of = out[model.score_output][0] if model.score_output else {}
    scores = [score_of.get(item) for item in ranked]
    if unknown_ids and not args.json:
        shown = ", ".join(map(repr, unknown_ids[:10])) + (", ..." if len(unknown_ids) > 10 else "")
        warn(f"{len(unknown_ids)} of {len(items)} items are not in the model and were ignored: {shown}")
    if not args.json and len(items) == len(unknown_ids):
        warn("no known item: the most popular items follow" if fallback else
             "no known item, and the model records no item popularity: every score is 0, in item order")
    lines = table_lines(ranked, scores)
    payload = {"items": ranked, "scores": scores, "unknown_items": len(unknown_ids),
               "known_items": len(items) - len(unknown_ids), "unknown_ids": unknown_ids, "fallback": fallback}
    return Result(payload, "\n".join(lines))


def table_lines(items, scores) -> list[str]:
    """Rank, item and score columns, each padded to its widest entry."""
    names = [str(item) for item in items]
    values = ["" if score is None else f"{score:.6g}" for score in scores]
    rank_w, item_w = len(str(len(names))), max(map(len, names), default=0)
    score_w = max(map(len, values), default=0)
    return [f"{rank:>{rank_w}}  {name:<{item_w}}  {value:>{score_w}}".rstrip()
            for rank, (name, value) in enumerate(zip(names, values), start=1)]


def _codes(model, column):
    """Item column -> model item indices (NaN where unknown), vectorized through a dict lookup."""
    import pandas as pd

    if model.string_ids:
        return column.astype(str).map(model.index)
    if column.dtype.kind in "iu":  # exact: no detour through float64, which cannot hold ids past 2**53
        return column.map(model.index)
    numbers = pd.to_numeric(column, errors="coerce")
    whole = numbers.notna() & (numbers.abs() < 2.0 ** 53) & (numbers % 1 == 0)
    return numbers.where(whole).map(lambda v: model.index.get(int(v)) if v == v else None).astype(np.float64)


def _many_users(args, model) -> Result:
    import pandas as pd

    from ..runtime.item_similarity import popular_topk, recommend_topk

    table, rating = load_table(args, args.histories, rating=args.rating_col,
                               rating_default=recorded_rating(model.spec))
    table = table.drop_duplicates([args.user_col, args.item_col], keep="last")
    keys = _codes(model, table[args.item_col])
    known = keys.notna().to_numpy()
    users, rows = np.unique(table[args.user_col].to_numpy(), return_inverse=True)
    values = table[rating].to_numpy(np.float64) if rating else np.ones(len(table))
    hist = sp.csr_matrix((values[known], (rows[known], keys[known].to_numpy(np.int64))),
                         shape=(len(users), model.n_items))
    exclude = hist.copy()
    extra = _parse_items(model, args.exclude)
    extra = [model.index[v] for v in extra if v in model.index]
    if extra:
        exclude = (exclude + sp.csr_matrix((np.ones(len(users) * len(extra)),
                                            (np.repeat(np.arange(len(users)), len(extra)),
                                             np.tile(extra, len(users)))), shape=hist.shape)).tocsr()
    restrict = None
    if args.restrict is not None:
        allowed = sorted({model.index[v] for v in _parse_items(model, args.restrict) if v in model.index})
        restrict = sp.csr_matrix((np.ones(len(users) * len(allowed)),
                                  (np.repeat(np.arange(len(users)), len(allowed)), np.tile(allowed, len(users)))),
                                 shape=hist.shape)
        restrict.sort_indices()
    codes, scores = recommend_topk(hist, model.similarity, model.shift, k=args.k, exclude=exclude, restrict=restrict)
    new_users = np.flatnonzero(np.diff(hist.indptr) == 0)
    if len(new_users) and args.k and model.popularity is not None:  # no known item: the most popular
        codes[new_users], scores[new_users] = popular_topk(
            model.popularity, k=args.k, exclude=exclude[new_users], n_users=len(new_users),
            restrict=None if restrict is None else restrict[new_users])
    valid = codes >= 0
    ids = np.asarray(model.item_ids, dtype=object)
    out = pd.DataFrame({
        args.user_col: np.repeat(users, args.k)[valid.ravel()],
        "rank": np.tile(np.arange(1, args.k + 1), len(users))[valid.ravel()],
        args.item_col: ids[codes[valid]],
        "score": scores[valid],
    })
    if not model.string_ids:
        out[args.item_col] = out[args.item_col].astype(np.int64)
    unknown = int((~known).sum())
    unknown_ids = list(dict.fromkeys(table[args.item_col].to_numpy()[~known].tolist()))
    payload = {"unknown_ids": unknown_ids[:100], "users": len(users), "unknown_items": unknown, "k": args.k, "new_users": int(len(new_users)),
               "fallback": "popularity" if len(new_users) and model.popularity is not None else None,
               "rating_col": rating}
    text = ""
    if args.output:
        if str(args.output).lower().endswith((".parquet", ".pq")):
            out.to_parquet(args.output, index=False)
        else:
            out.to_csv(args.output, index=False)
        payload["output"] = str(args.output)
        text = f"wrote {len(out)} recommendations for {len(users)} users to {args.output}"
    elif args.json:
        payload["recommendations"] = out.to_dict(orient="records")
    else:
        text = out.to_csv(index=False)
    if unknown and not args.json:
        shown = ", ".join(map(repr, unknown_ids[:10])) + (", ..." if len(unknown_ids) > 10 else "")
        warn(f"{unknown} interactions name {len(unknown_ids)} items that are not in the model and were ignored: "
             f"{shown}")
    return Result(payload, text)


def run(args) -> Result:
    if (args.items is None) == (args.histories is None):
        raise PippinError("give exactly one of --items (one user) or --histories TABLE (many users)",
                          where="pippin recommend")
    if args.k < 0:
        raise PippinError(f"--k {args.k}; expected an integer >= 0", where="--k")
    if getattr(args, "engine", "local") == "spark" and args.histories is not None:
        from .spark_engine import recommend_histories

        return recommend_histories(args)
    model = _load(args.model)
    return _one_user(args, model) if args.items is not None else _many_users(args, model)
