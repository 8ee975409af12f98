"""k-NN prediction throughput: Pippin's batched k-NN runtime vs scikit-learn's KNeighborsClassifier.

Both classify the same queries against the same index (squared Euclidean /
Euclidean give the same neighbours), linear (brute) and kd-tree indexes, uniform
weighting, k=5. Queries per second, median of ``--repeats`` runs after a
warm-up, in the same process; the ratio is Pippin / scikit-learn. ``agree`` is the
share of neighbour indices both find (labels can differ only on vote ties, which the
two break differently).

    python benchmarks/bench_knn.py [--samples 20000] [--queries 5000] [--dims 32] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np
from timing import median_seconds

from pippin.pipelines import KNearestNeighborsClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from sklearn import __version__ as sklearn_version
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    samples = rng.normal(size=(args.samples, args.dims)).astype(np.float32)
    labels = [f"c{i}" for i in rng.integers(0, 10, args.samples)]
    queries = rng.normal(size=(args.queries, args.dims)).astype(np.float32)
    rows = []
    for index, algorithm in (("linear", "brute"), ("kd_tree", "kd_tree")):
        ours = KNearestNeighborsClassifier(n_dimensions=args.dims, default_label="?", k=5, index=index,
                                           leaf_size=30).add_samples(samples, labels).model()
        theirs = KNeighborsClassifier(n_neighbors=5, algorithm=algorithm, leaf_size=30).fit(samples, labels)
        # neighbour sets must agree; labels may differ on vote ties (pippin: closest neighbour's label,
        # scikit-learn: first label in sorted order)
        _, mine = ours.neighbours(queries, 5)
        _, sk = theirs.kneighbors(queries)
        agree = float(np.mean(np.sort(mine, axis=1) == np.sort(sk, axis=1)))
        t_ours = median_seconds(lambda: ours.predict_batch({"features": queries}), args.repeats)
        t_theirs = median_seconds(lambda: theirs.predict(queries), args.repeats)
        rows.append({"index": index, "pippin_qps": args.queries / t_ours, "sklearn_qps": args.queries / t_theirs,
                     "ratio": t_theirs / t_ours, "neighbour_agreement": agree})
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                          "sklearn": sklearn_version},
              "samples": args.samples, "queries": args.queries, "dims": args.dims, "k": 5, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.samples} samples x {args.dims} dims, {args.queries} queries, k=5, "
          f"{os.cpu_count()} CPUs, numpy {np.__version__}, scikit-learn {sklearn_version}")
    print(f"{'index':<8} {'pippin q/s':>12} {'sklearn q/s':>12} {'ratio':>7} {'agree':>6}")
    for r in rows:
        print(f"{r['index']:<8} {r['pippin_qps']:>12.0f} {r['sklearn_qps']:>12.0f} {r['ratio']:>7.2f} "
              f"{r['neighbour_agreement']:>6.3f}")


if __name__ == "__main__":
    main()
