"""Fit time and peak memory of pippin's item similarities against implicit's nearest-neighbour
recommenders with the same K, on MovieLens 100K and on a generated ~20M-interaction set.

    python benchmarks/bench_similarity.py [--json] [--scale 1.0] [--k 64] [--repeat 1] [--sparse-dot-topn]

Pairs: cosine - CosineRecommender, bm25 - BM25Recommender, tfidf - TFIDFRecommender;
jaccard, pearson, lift and cooccurrence have no implicit twin and are compared with
implicit's plain ItemItemRecommender (the raw co-occurrence dot product). Both sides
use every core (numba's threads; implicit's num_threads=0). Peak memory is the
process's resident set sampled every 5 ms during the fit (absolute, and above the
RSS before the fit). The generator below is fixed: fit cost grows with the sum of
squared user activity, so changing it changes every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SIMILARITY_PAIRS = {
    "cosine": "CosineRecommender",
    "bm25": "BM25Recommender",
    "tfidf": "TFIDFRecommender",
    "jaccard": "ItemItemRecommender",
    "pearson": "ItemItemRecommender",
    "lift": "ItemItemRecommender",
    "cooccurrence": "ItemItemRecommender",
}
MOVIELENS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "movielens-100k"


def generate(*, n_users: int = 138_000, n_items: int = 27_000, mean_activity: float = 170.0,
             sigma: float = 1.0, seed: int = 0) -> sp.csr_matrix:
    """The fixed benchmark set: item popularity ~ 1/(rank + 10), log-normal user activity.

    Returns a binary CSR [shape=(n_users, n_items)] of about n_users * mean_activity
    interactions (repeat draws of a (user, item) pair collapse into one).
    """
    rng = np.random.default_rng(seed)
    mu = np.log(mean_activity) - sigma ** 2 / 2
    activity = np.clip(np.round(rng.lognormal(mu, sigma, n_users)), 1, n_items // 4).astype(np.int64)
    popularity = 1.0 / (np.arange(n_items) + 10.0)
    item_of_rank = rng.permutation(n_items)
    cdf = np.cumsum(popularity / popularity.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), activity)
    items = item_of_rank[np.minimum(np.searchsorted(cdf, rng.random(users.size)), n_items - 1)]
    keys = np.unique(users * n_items + items)
    del users, items
    rows, cols = keys // n_items, (keys % n_items).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_users))])
    return sp.csr_matrix((np.ones(keys.size, dtype=np.float32), cols, indptr), shape=(n_users, n_items))


def movielens() -> sp.csr_matrix | None:
    path = MOVIELENS / "u.data"
    if not path.is_file():
        return None
    data = np.loadtxt(path, dtype=np.int64)
    users, items = np.unique(data[:, 0], return_inverse=True)[1], np.unique(data[:, 1], return_inverse=True)[1]
    return sp.csr_matrix((data[:, 2].astype(np.float32), (users, items)))


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn):
    """(seconds, peak RSS bytes, peak above the starting RSS) of one call."""
    gc.collect()
    start_rss = rss()
    peak = [start_rss]
    done = threading.Event()

    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    peak[0] = max(peak[0], rss())
    return seconds, peak[0], peak[0] - start_rss


def machine() -> dict:
    import implicit
    import numba

    from pippin.spec import __version__ as pippin_version

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": sp.__name__ and __import__("scipy").__version__, "numba": numba.__version__,
            "implicit": implicit.__version__, "pippin": pippin_version, "numba_threads": numba.get_num_threads()}


def sparse_dot_topn_cosine(X: sp.csr_matrix, k: int):
    """Cosine neighbours with the sparse_dot_topn library (the other way the issue names):
    L2-normalise the item columns, keep the top k+1 of each row of XnᵀXn (the item itself is
    among them), 2 threads. Returns its CSR result; timed as a third column for cosine."""
    from sparse_dot_topn import sp_matmul_topn

    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel())
    Xn = sp.csr_matrix(X @ sp.diags(1.0 / np.maximum(norms, 1e-300)), dtype=np.float32)
    return sp_matmul_topn(Xn.T.tocsr(), Xn, top_n=k + 1, threshold=0.0, sort=True, n_threads=2)


def bench_dataset(name: str, X: sp.csr_matrix, *, k: int, repeat: int, similarities,
                  topn_library: bool = False) -> list[dict]:
    import implicit.nearest_neighbours as nn

    from pippin.recommend import item_similarity

    X = sp.csr_matrix(X, dtype=np.float64)  # implicit's kernel takes float64; both get the same input
    rows = []
    for similarity in similarities:
        twin = SIMILARITY_PAIRS[similarity]
        ours = [measure(lambda: item_similarity(X, similarity=similarity, top_k=k, threshold=0.0))
                for _ in range(repeat)]
        cls = getattr(nn, twin)  # measured next to each pippin fit, so load drift hits both alike
        theirs = [measure(lambda: cls(K=k, num_threads=0).fit(X, show_progress=False)) for _ in range(repeat)]
        t_ours = float(np.median([m[0] for m in ours]))
        t_theirs = float(np.median([m[0] for m in theirs]))
        rows.append({
            "dataset": name, "similarity": similarity, "implicit": twin, "k": k,
            "pippin_s": round(t_ours, 3), "implicit_s": round(t_theirs, 3), "ratio": round(t_ours / t_theirs, 3),
            "pippin_peak_mb": round(max(m[1] for m in ours) / 2 ** 20),
            "pippin_peak_above_start_mb": round(max(m[2] for m in ours) / 2 ** 20),
            "implicit_peak_mb": round(max(m[1] for m in theirs) / 2 ** 20),
            "implicit_peak_above_start_mb": round(max(m[2] for m in theirs) / 2 ** 20),
        })
        if topn_library and similarity == "cosine":
            topn = [measure(lambda: sparse_dot_topn_cosine(X, k)) for _ in range(repeat)]
            t_topn = float(np.median([m[0] for m in topn]))
            rows[-1].update({"sparse_dot_topn_s": round(t_topn, 3), "sparse_dot_topn_ratio": round(t_topn / t_theirs, 3),
                             "sparse_dot_topn_peak_mb": round(max(m[1] for m in topn) / 2 ** 20)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--k", type=int, default=64, help="neighbours per item, both libraries (default 64)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the generated users (default 1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is reported")
    parser.add_argument("--similarities", default=",".join(SIMILARITY_PAIRS), help="comma-separated subset")
    parser.add_argument("--skip-generated", action="store_true", help="MovieLens only")
    parser.add_argument("--sparse-dot-topn", action="store_true",
                        help="also time cosine with the sparse_dot_topn library (pip install sparse_dot_topn)")
    args = parser.parse_args(argv)
    similarities = [s for s in args.similarities.split(",") if s]
    warm = generate(n_users=300, n_items=200, seed=1)
    bench_dataset("warm-up", warm, k=args.k, repeat=1, similarities=similarities)  # compile numba kernels
    results = {"machine": machine(), "rows": []}
    ml = movielens()
    if ml is not None:
        results["rows"] += bench_dataset("movielens-100k", ml, k=args.k, repeat=max(args.repeat, 3),
                                         similarities=similarities)
    if not args.skip_generated:
        t0 = time.perf_counter()
        X = generate(n_users=int(138_000 * args.scale))
        results["generated"] = {"users": X.shape[0], "items": X.shape[1], "interactions": int(X.nnz),
                                "generate_s": round(time.perf_counter() - t0, 1),
                                "sum_sq_activity": float((np.diff(X.indptr).astype(np.float64) ** 2).sum())}
        print(json.dumps(results["generated"]), file=sys.stderr, flush=True)
        results["rows"] += bench_dataset("generated", X, k=args.k, repeat=args.repeat, similarities=similarities,
                                         topn_library=args.sparse_dot_topn)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(" ".join(f"{k}={v}" for k, v in results["machine"].items()))
        if "generated" in results:
            print("generated:", results["generated"])
        print(f"{'dataset':16} {'similarity':13} {'implicit':20} {'pippin s':>9} {'implicit s':>10} {'ratio':>6} "
              f"{'pippin MB':>9} {'implicit MB':>11}")
        for r in results["rows"]:
            print(f"{r['dataset']:16} {r['similarity']:13} {r['implicit']:20} {r['pippin_s']:9.3f} "
                  f"{r['implicit_s']:10.3f} {r['ratio']:6.2f} {r['pippin_peak_mb']:9d} {r['implicit_peak_mb']:11d}")
            if "sparse_dot_topn_s" in r:
                print(f"{'':16} {'cosine':13} {'sparse_dot_topn':20} {r['sparse_dot_topn_s']:9.3f} "
                      f"{r['implicit_s']:10.3f} {r['sparse_dot_topn_ratio']:6.2f} {r['sparse_dot_topn_peak_mb']:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
