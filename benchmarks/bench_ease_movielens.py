"""How EASE's defaults (l2, popularity_exponent, history_popularity_exponent, user_weight_exponent)
were chosen on MovieLens 100K without its test split.

    python benchmarks/bench_ease_movielens.py [--data ../shared/datasets/movielens-100k] [--seeds 0,...,9]
        [--l2-scale 10,15,...| --l2 200,300,...] [--alpha 0,0.25,...] [--beta 0,0.05,...]
        [--delta 0,0.1,...]
        [--inner-seeds 0,1,2] [--depth 1] [--top-k 256] [--no-test] [--json]

For each seed, ``random_holdout`` (per user, 20%) gives train/test. The training part is
split again (``ease._split``, inner seeds 0, 1, 2), and every grid point is fitted on the
inner training part and scored (precision@10, seen items excluded) on the inner held-out
part: the validation table, the only one the choice may use. ``--depth d`` splits d times (level 2:
the inner training part split again, seed + 100, ...: 64%, 51%, 41% of the data), to see whether a
choice holds as the data grows. The penalty is given either
relative (``--l2-scale s``: λ = s x the mean diagonal of the user-weighted Gram matrix of the
part being fitted, what ``l2=None`` does with ``ease.L2_SCALE``) or absolute (``--l2``).
``alpha`` is the user weight exponent (``ease.user_weighted``), ``beta`` the popularity
exponent (columns), ``delta`` the history popularity exponent (rows). Without ``--no-test`` the
test precision@10 of every grid point (fitted on the whole
training part) is printed beside it, per seed; ``--top-k 256`` adds each point's table cut to
256 weights per item by magnitude.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import scipy.sparse as sp

L2_SCALE = (10.0, 15.0, 20.0, 25.0)
ALPHA = (0.0, 0.25, 0.5)
BETA = (0.0, 0.15, 0.25)
DELTA = (0.0, 0.1, 0.2)


def _top10(H: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Each row's 10 best unseen items of ``H @ B`` (ties: lower item), as the runtime ranks them."""
    scores = H @ B
    scores[H != 0] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


def _grid(X: sp.csr_matrix, truth: sp.csr_matrix, l2s, relative: bool, alphas, betas, deltas, top_k=None) -> dict:
    from pippin.recommend import precision_at_k
    from pippin.recommend.ease import _scaled, ease_dense, gram, popularity_scale, topk_by_magnitude, user_weighted

    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    hist = X[users].toarray()
    out = {}
    for alpha in alphas:
        G = gram(user_weighted(X, alpha), np.float64)
        mean_diag = float(np.mean(G.diagonal()))
        for l2 in l2s:
            B0 = ease_dense(G, l2 * mean_diag if relative else l2)
            for beta in betas:
                for delta in deltas:
                    B = _scaled(B0.copy(), popularity_scale(X, beta), popularity_scale(X, delta))
                    out[(l2, alpha, beta, delta)] = precision_at_k(_top10(hist, B), truth[users], 10)
                    if top_k:
                        B = topk_by_magnitude(B, top_k, 0.0).toarray()
                        out[(l2, alpha, beta, delta, "top")] = precision_at_k(_top10(hist, B), truth[users], 10)
    return out


def _nested(X: sp.csr_matrix, seed: int, depth: int):
    """The validation split ``depth`` levels down: level 1 splits ``X`` (``ease._split``, ``seed``), level d
    splits level d-1's training part (seed ``seed + 100 (d - 1)``)."""
    from pippin.recommend.ease import _split

    part, held = _split(X, 0.2, seed)
    for level in range(1, depth):
        part, held = _split(part, 0.2, seed + 100 * level)
    return part, held


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main(argv=None) -> int:
    from pippin.datasets import load_movielens
    from pippin.recommend import random_holdout
    from pippin.recommend.matrix import to_interactions

    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "datasets", "movielens-100k"))
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--l2-scale", default=",".join(f"{v:g}" for v in L2_SCALE),
                        help="comma-separated grid of s, λ = s x mean Gram diagonal (the default mode)")
    parser.add_argument("--l2", default=None, help="comma-separated grid of absolute λ (instead of --l2-scale)")
    parser.add_argument("--alpha", default=",".join(f"{v:g}" for v in ALPHA), help="user weight exponents")
    parser.add_argument("--beta", default=",".join(f"{v:g}" for v in BETA), help="popularity exponents")
    parser.add_argument("--delta", default=",".join(f"{v:g}" for v in DELTA), help="history popularity exponents")
    parser.add_argument("--inner-seeds", default="0,1,2", help="validation splits of each training part")
    parser.add_argument("--depth", type=int, default=1,
                        help="validation level: split the training part this many times (default 1)")
    parser.add_argument("--top-k", type=int, default=None, help="also score each table cut to this many weights")
    parser.add_argument("--no-test", action="store_true", help="score the validation splits only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    relative = args.l2 is None
    l2s = _floats(args.l2_scale if relative else args.l2)
    alphas, betas, deltas = _floats(args.alpha), _floats(args.beta), _floats(args.delta)
    inner_seeds = [int(v) for v in args.inner_seeds.split(",")]
    ratings = load_movielens(args.data)
    val, test = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train, held = random_holdout(ratings, user="user_id", fraction=0.2, seed=seed)
        tr, _ = to_interactions(train, user="user_id", item="item_id")
        te, _ = to_interactions(held, user="user_id", item="item_id", item_ids=tr.item_ids)
        X = sp.csr_matrix(tr.matrix, dtype=np.float64)
        inner = [_grid(*_nested(X, s, args.depth), l2s, relative, alphas, betas, deltas, args.top_k)
                 for s in inner_seeds]
        val.append({key: float(np.mean([v[key] for v in inner])) for key in inner[0]})
        test.append({} if args.no_test else _grid(X, te.matrix, l2s, relative, alphas, betas, deltas, args.top_k))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    rows = [{"l2_scale" if relative else "l2": key[0], "alpha": key[1], "beta": key[2], "delta": key[3],
             "table": "top" if len(key) > 4 else "all",
             "validation": round(float(np.mean([v[key] for v in val])), 5),
             "validation_by_seed": [round(v[key], 4) for v in val],
             "test_by_seed": [round(t[key], 4) for t in test if t]} for key in val[0]]
    best = max((r for r in rows if r["table"] == "all"), key=lambda r: r["validation"])
    if args.json:
        print(json.dumps({"rows": rows, "best_on_validation": best}, indent=2))
        return 0
    name = "l2_scale" if relative else "l2"
    for r in sorted(rows, key=lambda r: (r["table"], -r["validation"])):
        tests = r["test_by_seed"]
        summary = f"  test mean {np.mean(tests):.4f} min {min(tests):.4f}: " if tests else ""
        print(f"{r['table']:3s} {name}={r[name]:<6g} alpha={r['alpha']:<5g} beta={r['beta']:<5g} "
              f"delta={r['delta']:<5g} "
              f"validation {r['validation']:.5f} (min seed {min(r['validation_by_seed']):.4f})"
              + summary + " ".join(f"{v:.4f}" for v in tests))
    print(f"best on validation: {name}={best[name]:g} alpha={best['alpha']:g} beta={best['beta']:g} "
          f"delta={best['delta']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
