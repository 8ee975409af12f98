"""Similarity fit speed over a grid of data shapes, pippin against implicit, interleaved.

    python benchmarks/bench_similarity_grid.py [--quick] [--json] [--interactions 1M,3M,20M]
        [--activity even,lognormal,heavy] [--items 5k,27k,100k] [--similarities cosine,bm25,tfidf,jaccard]
        [--k 64] [--repeat 3] [--memory-repeat 1] [--recommend] [--ease [--ease-items 20000]]

Shapes: every combination of total interactions, user activity distribution and
catalogue size. Item popularity is ~1/(rank + 10) everywhere; users are
``interactions / 50`` with activity
  * ``even``: every user 50 items (the issue's 3M example: about 48 after repeats collapse),
  * ``lognormal``: log-normal, sigma 1, mean 50,
  * ``heavy``: Pareto (shape 1.2) scaled to mean 50: a few users with thousands of items,
all clipped to a quarter of the catalogue. Pairs: cosine - CosineRecommender,
bm25 - BM25Recommender, tfidf - TFIDFRecommender, jaccard - ItemItemRecommender (its plain
co-occurrence; implicit has no Jaccard). Each timing alternates pippin and implicit
``--repeat`` times in this process (so load drift hits both) and reports the medians, their
ratio and the 1-minute load average beside it.

Peak memory is measured apart from the timing, each fit in a fresh Python process
(``fit_memory.py``: the matrix loaded from a scratch folder, a warm-up fit on 2,000 users padded
to the full shape, then the kernel's exact high-water mark of the resident set, reset right
before the fit, minus the resident set at its start), pippin and implicit alternately
``--memory-repeat`` times; the median is reported (every run is in the JSON). The figure is the
fit's own peak, whatever ran before: inside this process, large requests can be served from free
chunks of glibc's heap that earlier work left (numpy's ``np.unique`` in the generator leaves
about 150 MB at 20M interactions), which stay resident when freed during the fit, so the same
fit read 136, 182 or 218 MB above its start depending on the process's history (20M log-normal
x 5k, jaccard, before the count kernels). ``--memory-repeat 0`` reports the in-process figure
instead (peak RSS sampled every 5 ms above the start, the maximum over repeats, after
``malloc_trim`` and with ``mallopt(M_MMAP_THRESHOLD)`` at 64 kB).

``--recommend``: batch top-10 for 100,000 users (5M interactions, log-normal; 27k items, 5k
with ``--quick``): pippin's cosine (K=64) and, on the 5k catalogue, EASE (top 256) tables
against implicit's ``CosineRecommender(K=65).recommend`` on the same users (and EASE also
against ``K=257``, implicit's table of the same density).
``--ease``: the exact EASE fit on an ``--ease-items`` catalogue (3M interactions,
log-normal): seconds and peak memory, with the sparse approximation (256 neighbours) beside it.
Both EASE tables use the estimator's defaults (``ease_defaults``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_similarity import machine, measure  # noqa: E402  (scripts run from this folder)

PAIRS = {"cosine": "CosineRecommender", "bm25": "BM25Recommender", "tfidf": "TFIDFRecommender",
         "jaccard": "ItemItemRecommender"}
MEAN_ACTIVITY = 50
QUICK = {"interactions": "1M,3M", "activity": "even,lognormal,heavy", "items": "5k,27k"}
FULL = {"interactions": "1M,3M,20M", "activity": "even,lognormal,heavy", "items": "5k,27k,100k"}


def _count(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def activities(kind: str, n_users: int, n_items: int, rng) -> np.ndarray:
    """Items per user [shape=(n_users,)] with mean ``MEAN_ACTIVITY``."""
    if kind == "even":
        a = np.full(n_users, float(MEAN_ACTIVITY))
    elif kind == "lognormal":
        a = rng.lognormal(np.log(MEAN_ACTIVITY) - 0.5, 1.0, n_users)
    elif kind == "heavy":
        shape = 1.2
        a = (rng.pareto(shape, n_users) + 1) * MEAN_ACTIVITY * (shape - 1) / shape
    else:
        raise SystemExit(f"unknown activity {kind!r}; expected even, lognormal or heavy")
    return np.clip(np.round(a), 1, max(n_items // 4, 1)).astype(np.int64)


def generate(n_interactions: int, activity: str, n_items: int, seed: int = 0) -> sp.csr_matrix:
    """A binary CSR [shape=(n_interactions / 50, n_items)]; repeated (user, item) draws collapse."""
    rng = np.random.default_rng(seed)
    n_users = max(n_interactions // MEAN_ACTIVITY, 1)
    act = activities(activity, n_users, n_items, rng)
    popularity = 1.0 / (np.arange(n_items) + 10.0)
    cdf = np.cumsum(popularity / popularity.sum())
    item_of_rank = rng.permutation(n_items)
    users = np.repeat(np.arange(n_users, dtype=np.int64), act)
    items = item_of_rank[np.minimum(np.searchsorted(cdf, rng.random(users.size)), n_items - 1)]
    keys = np.unique(users * n_items + items)
    del users, items
    rows, cols = keys // n_items, (keys % n_items).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_users))])
    return sp.csr_matrix((np.ones(keys.size, dtype=np.float64), cols, indptr), shape=(n_users, n_items))


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def honest_rss() -> bool:
    """Large allocations mapped and unmapped one by one (glibc only), so RSS tracks live memory."""
    libc = _libc()
    m_mmap_threshold = -3
    return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(m_mmap_threshold, 64 << 10))


def measured(fn):
    """``measure(fn)`` after returning freed heap memory to the system, plus the process CPU
    seconds (all threads) of the call: (seconds, peak, peak above start, cpu seconds)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        import gc

        gc.collect()
        libc.malloc_trim(0)
    cpu = time.process_time()
    out = measure(fn)
    return (*out, time.process_time() - cpu)


def interleaved(ours, theirs, repeat: int):
    """Alternate the two callables ``repeat`` times: (ours, theirs) lists of measure() tuples."""
    a, b = [], []
    for _ in range(repeat):
        a.append(measured(ours))
        b.append(measured(theirs))
    return a, b


def _summary(a, b, memory: dict | None = None) -> dict:
    ta, tb = float(np.median([m[0] for m in a])), float(np.median([m[0] for m in b]))
    ca, cb = float(np.median([m[3] for m in a])), float(np.median([m[3] for m in b]))
    return {"pippin_s": round(ta, 3), "implicit_s": round(tb, 3), "ratio": round(ta / tb, 3),
            "pippin_cpu_s": round(ca, 3), "implicit_cpu_s": round(cb, 3), "cpu_ratio": round(ca / max(cb, 1e-9), 3),
            "pippin_peak_above_start_mb": round(max(m[2] for m in a) / 2**20),
            "implicit_peak_above_start_mb": round(max(m[2] for m in b) / 2**20), "memory_method": "in-process",
            **(memory or {})}


def fresh_process_memory(folder: str, name: str, k: int, repeat: int) -> dict | None:
    """Each library's fit peak above its start, MB, median of ``repeat`` fresh processes each
    (``fit_memory.fit_peak``, alternating pippin and implicit); None for ``repeat`` 0."""
    if repeat <= 0:
        return None
    from fit_memory import fit_peak

    runs = {"pippin": [], "implicit": []}
    methods = set()
    for _ in range(repeat):
        for library, values in runs.items():
            out = fit_peak(folder, library, name, k)
            values.append(out["peak_above_start"] / 2**20)
            methods.add(out["method"])
    return {"pippin_peak_above_start_mb": round(float(np.median(runs["pippin"]))),
            "implicit_peak_above_start_mb": round(float(np.median(runs["implicit"]))),
            "pippin_peak_runs_mb": [round(v, 1) for v in runs["pippin"]],
            "implicit_peak_runs_mb": [round(v, 1) for v in runs["implicit"]],
            "memory_method": "fresh process, " + "/".join(sorted(methods))}


def _padded(X: sp.csr_matrix, n_users: int, n_items: int) -> sp.csr_matrix:
    """``X`` with empty users and items appended [shape=(n_users, n_items)]: the same small fit."""
    indptr = np.concatenate([X.indptr, np.full(n_users - X.shape[0], X.indptr[-1])])
    return sp.csr_matrix((X.data, X.indices, indptr), shape=(n_users, n_items))


def warm_id_widths(X: sp.csr_matrix, similarities, k: int) -> None:
    """Compile (or load from numba's cache) the fit kernels for every width of item and user ids
    (uint16 up to 65,536, else int32) on both walks, so no measured fit pays for it: the first
    fit of a 100k-item set otherwise spent seconds and megabytes loading its kernels."""
    from pippin.recommend import item_similarity

    for n_users, n_items in ((X.shape[0], X.shape[1]), (70_000, X.shape[1]), (X.shape[0], 70_000),
                             (70_000, 70_000)):
        for _ in each_walk():
            for name in similarities:
                item_similarity(_padded(X, n_users, n_items), similarity=name, top_k=k, threshold=0.0)


def each_walk():
    """Yield twice: Pippin's fit forced onto its blocked walk, then onto its symmetric one; the
    fit's own choice (``similarity._SYMMETRIC_BUDGET``, ``_SYMMETRIC_MIN_REPEATS``) is restored after."""
    import pippin.recommend.similarity as fit

    budget, repeats = fit._SYMMETRIC_BUDGET, fit._SYMMETRIC_MIN_REPEATS
    try:
        for walk_budget in (0, 1 << 40):
            fit._SYMMETRIC_BUDGET, fit._SYMMETRIC_MIN_REPEATS = walk_budget, 0.0
            yield walk_budget
    finally:
        fit._SYMMETRIC_BUDGET, fit._SYMMETRIC_MIN_REPEATS = budget, repeats


def bench_shape(X, shape: dict, similarities, k: int, repeat: int, memory_repeat: int = 1) -> list[dict]:
    import implicit.nearest_neighbours as nn

    from pippin.recommend import item_similarity

    import tempfile

    from fit_memory import save_matrix

    rows = []
    with tempfile.TemporaryDirectory(dir=_scratch()) as folder:
        if memory_repeat > 0:
            save_matrix(X, folder)
        for name in similarities:
            cls = getattr(nn, PAIRS[name])
            load_before = _load()
            a, b = interleaved(lambda: item_similarity(X, similarity=name, top_k=k, threshold=0.0),
                               lambda: cls(K=k, num_threads=0).fit(X, show_progress=False), repeat)
            memory = fresh_process_memory(folder, name, k, memory_repeat)
            row = {**shape, "similarity": name, "implicit": PAIRS[name], "k": k, **_summary(a, b, memory),
                   "load": [load_before, _load()]}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _scratch() -> str | None:
    """Where the memory probes read the matrix: RAM-backed /dev/shm when writable, else the default."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def ease_defaults() -> dict:
    """The EASE parameters a user gets from ``ItemSimilarityRecommender(similarity="ease")``, as ``fit_ease``
    keywords (penalty from the data, popularity exponents, user weighting)."""
    from pippin.recommend import ItemSimilarityRecommender

    model = ItemSimilarityRecommender(similarity="ease")
    return {"l2": model.l2, "beta": model.popularity_exponent, "alpha": model.user_weight_exponent,
            "delta": model.history_popularity_exponent}


def bench_recommend(X, *, k: int, n_users: int, repeat: int) -> list[dict]:
    """Top-10 for ``n_users`` users: pippin's batch kernel against implicit's ``recommend``."""
    import implicit.nearest_neighbours as nn

    from pippin.pipelines.runtime.item_similarity import recommend_topk
    from pippin.recommend import item_similarity
    from pippin.recommend.ease import fit_ease

    users = np.arange(min(n_users, X.shape[0]))
    H = X[users]
    theirs = {}  # implicit's K counts the item itself

    def implicit_model(K):
        if K not in theirs:
            theirs[K] = nn.CosineRecommender(K=K, num_threads=0)
            theirs[K].fit(X, show_progress=False)
        return theirs[K]

    out = []
    tables = {"cosine": item_similarity(X, similarity="cosine", top_k=k, threshold=0.0)[0]}
    if X.shape[1] <= 10_000:  # the exact EASE fit (n_items³ flops) only on the small catalogue
        tables["ease"] = fit_ease(X, top_k=256, threshold=0.0, **ease_defaults())[0]
    for name, S in tables.items():
        shift = np.zeros(X.shape[1])
        # implicit's matching density (K=k+1) and, for EASE, its own 256 per item
        for K in sorted({k + 1, 257} if name == "ease" else {k + 1}):
            model = implicit_model(K)
            a, b = interleaved(lambda: recommend_topk(H, S, shift, k=10, exclude=H),
                               lambda: model.recommend(users, H, N=10, filter_already_liked_items=True),
                               repeat)
            row = {"task": "recommend", "users": int(len(users)), "pippin_table": name,
                   "pippin_neighbours": int(S.nnz), "implicit": f"CosineRecommender(K={K})", **_summary(a, b),
                   "load": _load()}
            row["speedup"] = round(1 / row["ratio"], 2)
            row["cpu_speedup"] = round(1 / max(row["cpu_ratio"], 1e-9), 2)
            out.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def bench_ease(n_items: int, repeat: int) -> list[dict]:
    from pippin.recommend.ease import dense_bytes, fit_ease
    from pippin.recommend.ease_sparse import fit_ease_sparse

    X = generate(3_000_000, "lognormal", n_items, seed=1)
    out = []
    params = ease_defaults()
    for label, fn in (("exact", lambda: fit_ease(X, top_k=256, threshold=0.0, **params)),
                      ("sparse-256", lambda: fit_ease_sparse(X, neighbours=256, top_k=256, threshold=0.0,
                                                             **params))):
        load_before = _load()
        runs = [measured(fn) for _ in range(repeat)]
        row = {"task": "ease", "fit": label, "items": n_items, "users": X.shape[0], "interactions": int(X.nnz),
               "seconds": round(float(np.median([m[0] for m in runs])), 2),
               "peak_above_start_mb": round(max(m[2] for m in runs) / 2**20),
               "dense_matrix_mb": round(dense_bytes(n_items) / 2**20), "load": [load_before, _load()]}
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help=f"the subset {QUICK}")
    parser.add_argument("--interactions", help=f"comma-separated (default {FULL['interactions']})")
    parser.add_argument("--activity", help=f"comma-separated (default {FULL['activity']})")
    parser.add_argument("--items", help=f"comma-separated (default {FULL['items']})")
    parser.add_argument("--similarities", default=",".join(PAIRS), help="comma-separated subset")
    parser.add_argument("--k", type=int, default=64, help="neighbours per item, both libraries (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per measurement (median)")
    parser.add_argument("--memory-repeat", type=int, default=1,
                        help="fresh-process peak memory runs per library and cell (median; 0: in-process figure)")
    parser.add_argument("--recommend", action="store_true", help="also batch recommend for 100,000 users")
    parser.add_argument("--ease", action="store_true", help="also the EASE fit on --ease-items items")
    parser.add_argument("--ease-items", type=int, default=20_000)
    parser.add_argument("--no-grid", action="store_true", help="skip the fit grid (with --recommend/--ease)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    grid = {key: [v for v in (getattr(args, key) or base[key]).split(",") if v] for key in FULL}
    similarities = [s for s in args.similarities.split(",") if s]
    from bench_similarity import bench_dataset, generate as warm_set

    bench_dataset("warm-up", warm_set(n_users=300, n_items=200, seed=1), k=args.k, repeat=1,
                  similarities=[s for s in similarities if s in PAIRS])  # compile numba kernels
    warm_id_widths(warm_set(n_users=300, n_items=200, seed=1), similarities, args.k)
    results = {"machine": machine(), "load_start": list(os.getloadavg()), "rows": [],
               "allocations_mapped_one_by_one": honest_rss()}
    for n_int in ([] if args.no_grid else grid["interactions"]):
        for activity in grid["activity"]:
            for n_items in grid["items"]:
                t0 = time.perf_counter()
                X = generate(_count(n_int), activity, _count(n_items))
                shape = {"interactions": int(X.nnz), "activity": activity, "users": X.shape[0],
                         "items": X.shape[1], "max_activity": int(np.diff(X.indptr).max()),
                         "generate_s": round(time.perf_counter() - t0, 1)}
                results["rows"] += bench_shape(X, shape, similarities, args.k, args.repeat, args.memory_repeat)
                del X
    if args.recommend:
        X = generate(100_000 * MEAN_ACTIVITY, "lognormal", 27_000 if not args.quick else 5_000)  # 100k users
        results["recommend"] = bench_recommend(X, k=args.k, n_users=100_000, repeat=args.repeat)
    if args.ease:
        results["ease"] = bench_ease(args.ease_items, repeat=1)
    results["load_end"] = list(os.getloadavg())
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(" ".join(f"{k}={v}" for k, v in results["machine"].items()))
    print(f"load average at start {results['load_start']}, at end {results['load_end']}")
    if results["rows"]:
        print(f"peak MB above the fit's start: {results['rows'][0]['memory_method']}"
              + (f", median of {args.memory_repeat}" if args.memory_repeat > 0 else ", maximum over repeats"))
    print(f"{'interactions':>12} {'activity':9} {'items':>6} {'similarity':10} {'pippin s':>9} {'implicit s':>10} "
          f"{'ratio':>6} {'cpu ratio':>9} {'pippin MB':>9} {'implicit MB':>11} {'load':>11}")
    for r in results["rows"]:
        print(f"{r['interactions']:12d} {r['activity']:9} {r['items']:6d} {r['similarity']:10} {r['pippin_s']:9.3f} "
              f"{r['implicit_s']:10.3f} {r['ratio']:6.2f} {r['cpu_ratio']:9.2f} {r['pippin_peak_above_start_mb']:9d} "
              f"{r['implicit_peak_above_start_mb']:11d} {r['load'][0]:5.1f}-{r['load'][1]:<5.1f}")
    for r in results.get("recommend", []):
        print(f"recommend {r['users']} users, pippin {r['pippin_table']} ({r['pippin_neighbours']} weights) "
              f"{r['pippin_s']:.3f} s vs implicit {r['implicit']} {r['implicit_s']:.3f} s: {r['speedup']}x "
              f"(CPU time {r['cpu_speedup']}x), "
              f"load {r['load']}")
    for r in results.get("ease", []):
        print(f"ease {r['fit']}: {r['items']} items, {r['interactions']} interactions: {r['seconds']} s, "
              f"peak +{r['peak_above_start_mb']} MB (dense matrix {r['dense_matrix_mb']} MB), load {r['load']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
