"""Batch recommend throughput (users per second, k=10): pippin against implicit's ``recommend``
on the same users, same similarity (cosine) and the same K.

    python benchmarks/bench_recommend.py [--json] [--scale 1.0] [--users 100000] [--k 64] [--repeat 3]

Data: MovieLens 100K (every user) and the fixed generated set of
``bench_similarity.generate`` (the first ``--users`` users). Both recommenders
exclude the users' own items. pippin scores the whole batch in one compiled pass
(sparse product + partial sort per user, both cores); implicit's batch ``recommend``
loops over the users in Python around its compiled scorer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import generate, machine, measure, movielens  # noqa: E402


def _median_time(fn, repeat: int) -> tuple[float, float]:
    runs = [measure(fn) for _ in range(repeat)]
    return float(np.median([r[0] for r in runs])), max(r[1] for r in runs) / 2 ** 20


def bench(name: str, X: sp.csr_matrix, *, n_users: int, k: int, repeat: int) -> dict:
    import implicit.nearest_neighbours as nn

    from pippin.recommend import ItemSimilarityRecommender

    X = sp.csr_matrix(X, dtype=np.float64)
    ours = ItemSimilarityRecommender(similarity="cosine", top_k=k, threshold=0.0).fit(X)
    theirs = nn.CosineRecommender(K=k, num_threads=0)
    theirs.fit(X, show_progress=False)
    users = np.arange(min(n_users, X.shape[0]))
    batch = X[users]
    ours.recommend(users[:100], k=10)  # warm-up (compiles the scorer)
    theirs.recommend(users[:100], batch[:100], N=10)
    t_ours, mb_ours = _median_time(lambda: ours.recommend(users, k=10), repeat)
    t_theirs, mb_theirs = _median_time(lambda: theirs.recommend(users, batch, N=10,
                                                                filter_already_liked_items=True), repeat)
    ids_ours, _ = ours.recommend(users, k=10)
    ids_theirs, _ = theirs.recommend(users, batch, N=10)
    overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids_ours[:2000], ids_theirs[:2000])]))
    row = {
        "dataset": name, "users": int(len(users)), "k": 10, "K": k,
        "pippin_s": round(t_ours, 3), "implicit_s": round(t_theirs, 3),
        "pippin_users_per_s": round(len(users) / t_ours), "implicit_users_per_s": round(len(users) / t_theirs),
        "speedup": round(t_theirs / t_ours, 2), "pippin_peak_mb": round(mb_ours), "implicit_peak_mb": round(mb_theirs),
        "top10_overlap_first_2000_users": round(overlap, 3),
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--k", type=int, default=64, help="neighbours per item, both libraries (default 64)")
    parser.add_argument("--users", type=int, default=100_000, help="users per batch (default 100000)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the generated users (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    args = parser.parse_args(argv)
    results = {"machine": machine(), "rows": []}
    ml = movielens()
    if ml is not None:
        results["rows"].append(bench("movielens-100k", ml, n_users=ml.shape[0], k=args.k, repeat=args.repeat))
    X = generate(n_users=int(138_000 * args.scale))
    results["rows"].append(bench("generated", X, n_users=args.users, k=args.k, repeat=args.repeat))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(" ".join(f"{k}={v}" for k, v in results["machine"].items()))
        print(f"{'dataset':16} {'users':>7} {'pippin users/s':>15} {'implicit users/s':>17} {'speedup':>8}")
        for r in results["rows"]:
            print(f"{r['dataset']:16} {r['users']:7d} {r['pippin_users_per_s']:15d} {r['implicit_users_per_s']:17d} "
                  f"{r['speedup']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
