"""``pippin recommend MODEL``: recommendations from an item-similarity recommender file.

One user: ``--items a,b,c`` (their items; ``--exclude`` adds items never to
recommend, besides those; ``--restrict`` limits the candidates). Many users:
``--histories TABLE --user-col U --item-col I`` scores every user of the table in
one batch and writes ``user, rank, item, score`` rows (``-o`` .csv or .parquet, else
CSV on stdout). Items the model does not know are ignored and counted.
"""

from __future__ import annotations


import numpy as np
import scipy.sparse as sp

from ...spec.errors import PippinError
from .exit_codes import HELP_EPILOG
from .output import Result, warn


def add_parser(subparsers, parents):
    parser = subparsers.add_parser(
        "recommend", parents=parents, help="recommend items with an item-similarity recommender",
        description=__doc__.split("\n\n")[0], epilog=HELP_EPILOG,
    )
    parser.add_argument("model", metavar="MODEL", help="an ItemSimilarityRecommender .mlmodel")
    parser.add_argument("--items", metavar="A,B,C", help="one user's items, comma-separated")
    parser.add_argument("--k", type=int, default=10, help="recommendations per user (default: 10)")
    parser.add_argument("--exclude", metavar="A,B", default=None, help="never recommend these (besides --items)")
    parser.add_argument("--restrict", metavar="A,B", default=None, help="only recommend among these")
    parser.add_argument("--histories", metavar="TABLE", help="many users: interactions table (.csv/.tsv/.parquet)")
    parser.add_argument("--user-col", default="user_id", help="user column of --histories (default: user_id)")
    parser.add_argument("--item-col", default="item_id", help="item column of --histories (default: item_id)")
    parser.add_argument("--rating-col", default=None, help="rating column of --histories (default: none)")
    parser.add_argument("-o", "--output", metavar="OUT", help="--histories: write .csv or .parquet here")
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


def _one_user(args, model) -> Result:
    items = _parse_items(model, args.items)
    inputs = {model.item_input: [items]}
    if model.k_input:
        inputs[model.k_input] = np.array([args.k])
    if args.exclude is not None and model.exclude_input:
        inputs[model.exclude_input] = [items + _parse_items(model, args.exclude)]
    if args.restrict is not None and model.restrict_input:
        inputs[model.restrict_input] = [_parse_items(model, args.restrict)]
    out = model.predict_batch(inputs)
    unknown = model.unknown_items
    ranked = out[model.list_output][0][: args.k] if model.list_output else list(out[model.score_output][0])[: args.k]
    score_of = out[model.score_output][0] if model.score_output else {}
    scores = [score_of.get(item) for item in ranked]
    if unknown and not args.json:
        warn(f"{unknown} of {len(items)} items are not in the model and were ignored")
    lines = [f"{rank:>3}  {item}  {score:.6g}" if score is not None else f"{rank:>3}  {item}"
             for rank, (item, score) in enumerate(zip(ranked, scores), start=1)]
    payload = {"items": ranked, "scores": scores, "unknown_items": unknown, "known_items": len(items) - unknown}
    return Result(payload, "\n".join(lines))


def _codes(model, column):
    """Item column -> model item indices (NaN where unknown), vectorized through a dict lookup."""
    import pandas as pd

    if model.string_ids:
        return column.astype(str).map(model.index)
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers.astype(np.float64).map({float(k): v for k, v in model.index.items()})


def _many_users(args, model) -> Result:
    import pandas as pd

    from ...datasets.interactions import load_interactions
    from ..runtime.item_similarity import recommend_topk

    table = load_interactions(args.histories, user=args.user_col, item=args.item_col, rating=args.rating_col)
    table = table.drop_duplicates([args.user_col, args.item_col], keep="last")
    keys = _codes(model, table[args.item_col])
    known = keys.notna().to_numpy()
    users, rows = np.unique(table[args.user_col].to_numpy(), return_inverse=True)
    values = table[args.rating_col].to_numpy(np.float64) if args.rating_col else np.ones(len(table))
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
    payload = {"users": len(users), "unknown_items": unknown, "k": args.k}
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
        warn(f"{unknown} interactions name items that are not in the model and were ignored")
    return Result(payload, text)


def run(args) -> Result:
    if (args.items is None) == (args.histories is None):
        raise PippinError("give exactly one of --items (one user) or --histories TABLE (many users)",
                          where="pippin recommend")
    if args.k < 0:
        raise PippinError(f"--k {args.k}; expected an integer >= 0", where="--k")
    model = _load(args.model)
    return _one_user(args, model) if args.items is not None else _many_users(args, model)
