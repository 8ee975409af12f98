"""How EASE's defaults (l2, popularity_exponent) were chosen on MovieLens 100K without its test split.

    python benchmarks/bench_ease_movielens.py [--data ../shared/datasets/movielens-100k] [--seeds 0,1,2,3,4]
        [--l2 200,300,...] [--beta 0,0.05,...] [--inner-seeds 0,1,2] [--no-test] [--json]

For each seed, ``random_holdout`` (per user, 20%) gives train/test. The training part is
split again three times (``ease._split``, inner seeds 0, 1, 2), and every (l2, beta) of the
grid is fitted on the inner training part and scored (precision@10, seen items excluded) on
the inner held-out part: the validation table, the only one the choice may use. The test
precision@10 of every grid point is printed beside it, for the record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import scipy.sparse as sp

L2 = (200.0, 300.0, 400.0, 500.0, 600.0, 800.0)
BETA = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)


def _top10(H: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Each row's 10 best unseen items of ``H @ B`` (ties: lower item), as the runtime ranks them."""
    scores = H @ B
    scores[H != 0] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


def _grid(X: sp.csr_matrix, truth: sp.csr_matrix, l2s=L2, betas=BETA) -> dict:
    from pippin.recommend import precision_at_k
    from pippin.recommend.ease import _scaled, ease_dense, gram, popularity_scale

    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    hist = X[users].toarray()
    G = gram(X, np.float64)
    out = {}
    for l2 in l2s:
        B0 = ease_dense(G, l2)
        for beta in betas:
            B = _scaled(B0.copy(), popularity_scale(X, beta))
            out[(l2, beta)] = precision_at_k(_top10(hist, B), truth[users], 10)
    return out


def main(argv=None) -> int:
    from pippin.datasets import load_movielens
    from pippin.recommend import random_holdout
    from pippin.recommend.ease import _split
    from pippin.recommend.matrix import to_interactions

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "datasets", "movielens-100k"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--l2", default=",".join(f"{v:g}" for v in L2), help="comma-separated grid")
    parser.add_argument("--beta", default=",".join(f"{v:g}" for v in BETA), help="comma-separated grid")
    parser.add_argument("--inner-seeds", default="0,1,2", help="validation splits of each training part")
    parser.add_argument("--no-test", action="store_true", help="score the validation splits only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    l2s = [float(v) for v in args.l2.split(",")]
    betas = [float(v) for v in args.beta.split(",")]
    inner_seeds = [int(v) for v in args.inner_seeds.split(",")]
    ratings = load_movielens(args.data)
    val, test = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train, held = random_holdout(ratings, user="user_id", fraction=0.2, seed=seed)
        tr, _ = to_interactions(train, user="user_id", item="item_id")
        te, _ = to_interactions(held, user="user_id", item="item_id", item_ids=tr.item_ids)
        X = sp.csr_matrix(tr.matrix)
        inner = [_grid(*_split(X, 0.2, s), l2s, betas) for s in inner_seeds]
        val.append({key: float(np.mean([v[key] for v in inner])) for key in inner[0]})
        test.append({} if args.no_test else _grid(X, te.matrix, l2s, betas))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    rows = [{"l2": l2, "beta": beta, "validation": round(float(np.mean([v[(l2, beta)] for v in val])), 5),
             "test_by_seed": [round(t[(l2, beta)], 4) for t in test if t]} for l2 in l2s for beta in betas]
    best = max(rows, key=lambda r: r["validation"])
    if args.json:
        print(json.dumps({"rows": rows, "best_on_validation": best}, indent=2))
        return 0
    for r in rows:
        print(f"l2={r['l2']:6.0f} beta={r['beta']:.3f} validation {r['validation']:.5f}   test "
              + " ".join(f"{v:.4f}" for v in r["test_by_seed"]))
    print(f"best on validation: l2={best['l2']:g} beta={best['beta']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
