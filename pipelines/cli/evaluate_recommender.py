"""``pippin evaluate MODEL --history TRAIN --holdout TEST``: ranking quality of a recommender file.

Each user of TEST gets the model's top-k from their TRAIN interactions (their own
items excluded, as the model does by default); the metrics are averaged over the
users with at least one held-out item the model knows. TRAIN's ratings count when the
model was trained on ratings (the rating column recorded in its metadata, or
``--rating-col``). ``--history TABLE --holdout-fraction F --seed S`` splits one table
as ``pippin train recommender`` did with the same flags. Called by ``evaluate_cmd``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...spec.errors import PippinError
from .output import Result
from .tables import load_table, recorded_rating, split


def _matrix(model, table, *, user, item, rating, users=None):
    from .recommend_cmd import _codes

    table = table.drop_duplicates([user, item], keep="last")
    codes = _codes(model, table[item])
    known = np.array(codes.notna().to_numpy(), dtype=bool)
    ids = table[user].astype(str).to_numpy(dtype=object)
    if users is None:
        users = np.unique(ids)
    rows = np.searchsorted(users, ids)
    rows = np.minimum(rows, max(len(users) - 1, 0))
    known &= (users[rows] == ids) if len(users) else False
    values = table[rating].to_numpy(np.float64) if rating else np.ones(len(table))
    m = sp.csr_matrix((values[known], (rows[known], codes[known].to_numpy(np.int64))),
                      shape=(len(users), model.n_items))
    return m, users, int((~codes.notna()).sum())


def run(args, spec) -> Result:
    from .. import load
    from ...recommend.evaluate import coverage, map_at_k, ndcg_at_k, precision_at_k, recall_at_k
    from ..runtime.item_similarity import recommend_topk

    if not args.history or (args.holdout is None) == (args.holdout_fraction is None):
        raise PippinError("a recommender needs --history TRAIN and either --holdout TEST or --holdout-fraction F",
                          where="pippin evaluate")
    if args.k < 1:
        raise PippinError(f"--k {args.k}; expected a positive integer")
    model = load(spec)
    history, rating = load_table(args, args.history, rating=args.rating_col, rating_default=recorded_rating(spec))
    if args.holdout is not None:
        holdout, _ = load_table(args, args.holdout, rating=None)
    else:
        history, holdout = split(args, history)
    test, users, unknown_test = _matrix(model, holdout, user=args.user_col, item=args.item_col, rating=None)
    keep = np.diff(test.indptr) > 0
    test, users = test[keep], users[keep]
    hist, _, unknown_hist = _matrix(model, history, user=args.user_col, item=args.item_col,
                                    rating=rating, users=users)
    ks = sorted({args.k, 10})
    codes, _ = recommend_topk(hist, model.similarity, model.shift, k=max(ks), exclude=hist)
    payload = {}
    for k in ks:
        payload[f"precision@{k}"] = precision_at_k(codes, test, k)
        payload[f"recall@{k}"] = recall_at_k(codes, test, k)
        payload[f"map@{k}"] = map_at_k(codes, test, k)
        payload[f"ndcg@{k}"] = ndcg_at_k(codes, test, k)
        payload[f"coverage@{k}"] = coverage(codes, model.n_items, k)
    payload["coverage"] = payload[f"coverage@{args.k}"]
    payload["k"] = args.k
    payload["users"] = int(len(users))
    payload["unknown_items"] = {"history": unknown_hist, "holdout": unknown_test}
    payload["rating_col"] = rating
    lines = [f"{len(users)} users, k={args.k}, " + (f"ratings from {rating!r}" if rating else "no ratings")]
    for k in ks:
        lines.append(f"@{k}: precision {payload[f'precision@{k}']:.4f}  recall {payload[f'recall@{k}']:.4f}  "
                     f"map {payload[f'map@{k}']:.4f}  ndcg {payload[f'ndcg@{k}']:.4f}  "
                     f"coverage {payload[f'coverage@{k}']:.4f}")
    return Result(payload, "\n".join(lines))
