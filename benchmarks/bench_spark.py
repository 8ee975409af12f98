"""Item similarity on Apache Spark (``pippin.recommend.spark``) against the single-machine fit
and implicit, on MovieLens 100K and the generated sets of ``bench_similarity.py``.

    python benchmarks/bench_spark.py [--scale 0.15] [--movielens] [--similarities cosine,jaccard]
                                     [--ratings] [--master local[2]] [--blocks N] [--json]

Per dataset and similarity, interleaved in one run: the single-machine fit
(``ItemSimilarityRecommender.fit`` on the table), the Spark fit on ``--master`` reading
the same rows from Parquet, and for cosine/bm25/tfidf implicit's twin with the same K.
Reported: seconds (Spark split into session start, validation, then the tile job, or for
the staged plan item statistics and pairs), the Python driver's peak RSS (absolute, and above its RSS before the fit), whether the exported model files are
byte-identical, whether Spark ``recommend`` with the Spark-fitted model equals single-machine
``recommend`` (every 7th user's history, k=10: same items, scores to 1e-9), the pair updates (sum over users of activity^2 / 2: the quadratic work
every formulation does) and the interactions shuffled into tiles (nnz * n_blocks).
``--scale`` is the fraction of bench_similarity's 138,000 generated users: 0.013 gives
about 300k interactions, 0.15 about 3M, 1.0 about 20M. ``--ratings`` adds seeded float
ratings 1-5 (so the weighted kernels' float32 sums are checked bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import SIMILARITY_PAIRS, generate, machine, measure, movielens  # noqa: E402


def _table(X: sp.csr_matrix, ratings: bool, seed: int = 0) -> pd.DataFrame:
    coo = X.tocoo()
    table = pd.DataFrame({"user_id": coo.row.astype(np.int64), "item_id": coo.col.astype(np.int64)})
    if ratings:
        table["rating"] = np.round(np.random.default_rng(seed).random(len(table)) * 4 + 1, 2)
    return table


def _recommend_equal(spark, remote, local, table: pd.DataFrame, parquet: Path, rating) -> bool:
    """Spark ``recommend`` with the Spark-fitted model equals the single-machine ``recommend``
    with the local model, for every 7th user's history: same items, scores to 1e-9 relative."""
    from pippin.recommend.matrix import to_interactions
    from pippin.recommend.spark import recommend

    every = spark.read.parquet(str(parquet))
    histories = every.filter(every.user_id % 7 == 0)
    got = (recommend(remote, histories, k=10, user="user_id", item="item_id", rating=rating).toPandas()
           .sort_values(["user_id", "rank"]).reset_index(drop=True))
    rows = table[table.user_id % 7 == 0]
    data, _ = to_interactions(rows, user="user_id", item="item_id", rating=rating, item_ids=local.item_ids_)
    ids, scores = local.recommend(data.matrix, k=10)
    keep = ids >= 0 if ids.dtype.kind in "iu" else np.ones(ids.shape, bool)
    if len(got) != int(keep.sum()):
        return False
    return bool(np.array_equal(got.user_id.to_numpy(), np.repeat(data.user_ids, keep.sum(axis=1)))
                and np.array_equal(got.item_id.to_numpy(), ids[keep])
                and np.allclose(got.score.to_numpy(), scores[keep], rtol=1e-9, atol=0))


def bench(name: str, table: pd.DataFrame, spark, similarities, *, k: int, blocks, folder: Path) -> list[dict]:
    from pippin.recommend import ItemSimilarityRecommender
    from pippin.recommend.spark import fit_item_similarity

    rating = "rating" if "rating" in table else None
    parquet = folder / f"{name}.parquet"
    table.to_parquet(parquet, index=False)
    activity = table.groupby("user_id").size().to_numpy(np.float64)
    rows = []
    for similarity in similarities:
        local = ItemSimilarityRecommender(similarity=similarity, top_k=k)
        t_local, peak_local, extra_local = measure(lambda: local.fit(table, user="user_id", item="item_id", rating=rating))
        holder = {}

        def spark_fit():
            df = spark.read.parquet(str(parquet))
            holder["m"] = fit_item_similarity(df, user="user_id", item="item_id", rating=rating,
                                              similarity=similarity, top_k=k, n_blocks=blocks)

        t_spark, peak_spark, extra_spark = measure(spark_fit)
        remote = holder["m"]
        same = (local.export(folder / "l.mlmodel").read_bytes() == remote.export(folder / "s.mlmodel").read_bytes())
        # the single-tile plan reads the table in one task without a shuffle
        shuffled = 0 if "single tile" in remote.spark_seconds_ else int(remote.n_interactions_ * remote.spark_blocks_)
        row = {"dataset": name, "similarity": similarity, "interactions": int(remote.n_interactions_),
               "users": int(remote.n_users_), "items": int(remote.n_items_), "local_s": round(t_local, 2),
               "spark_s": round(t_spark, 2), "ratio": round(t_spark / t_local, 2), "spark_stages_s": remote.spark_seconds_,
               "blocks": remote.spark_blocks_, "tile_rows_shuffled": shuffled,
               "pair_updates": int((activity ** 2).sum() / 2), "driver_peak_mb_local": round(peak_local / 2**20),
               "driver_peak_mb_spark": round(peak_spark / 2**20), "driver_extra_mb_local": round(extra_local / 2**20),
               "driver_extra_mb_spark": round(extra_spark / 2**20), "bytes_equal": bool(same), "load": os.getloadavg()[0]}
        row["recommend_equal"] = _recommend_equal(spark, remote, local, table, parquet, rating)
        twin = SIMILARITY_PAIRS.get(similarity)
        if twin and twin != "ItemItemRecommender":
            import implicit.nearest_neighbours as nn

            X = local.interactions_
            t_impl, _, _ = measure(lambda: getattr(nn, twin)(K=k + 1, num_threads=0).fit(X, show_progress=False))
            row["implicit_s"] = round(t_impl, 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.15)
    parser.add_argument("--movielens", action="store_true", help="also MovieLens 100K (with its ratings)")
    parser.add_argument("--no-generated", action="store_true", help="skip the generated set")
    parser.add_argument("--similarities", default="cosine,jaccard")
    parser.add_argument("--ratings", action="store_true", help="seeded float ratings on the generated set")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--memory", default="2g")
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    from pippin.datasets.spark import spark_session

    t0 = time.perf_counter()
    spark = spark_session(args.master, memory=args.memory)
    spark.range(1).count()
    session_s = time.perf_counter() - t0
    similarities = args.similarities.split(",") if args.similarities != "all" else list(SIMILARITY_PAIRS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.movielens:
            X = movielens()
            if X is not None:
                coo = X.tocoo()
                table = pd.DataFrame({"user_id": coo.row.astype(np.int64), "item_id": coo.col.astype(np.int64),
                                      "rating": coo.data.astype(np.float64)})
                rows += bench("movielens-100k", table, spark, similarities, k=args.k, blocks=args.blocks,
                              folder=Path(tmp))
        if not args.no_generated:
            X = generate(n_users=int(138_000 * args.scale))
            rows += bench(f"generated-{X.nnz}", _table(X, args.ratings), spark, similarities, k=args.k,
                          blocks=args.blocks, folder=Path(tmp))
    report = {"machine": {**machine(), "spark_master": args.master, "pyspark": __import__("pyspark").__version__},
              "session_start_s": round(session_s, 2), "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"# {report['machine']}  session start {session_s:.1f} s")
        cols = ["dataset", "similarity", "interactions", "local_s", "spark_s", "ratio", "implicit_s", "blocks",
                "pair_updates", "tile_rows_shuffled", "driver_extra_mb_local", "driver_extra_mb_spark", "bytes_equal",
                "recommend_equal", "load"]
        print(pd.DataFrame(rows).reindex(columns=cols).to_string(index=False))
    return 0 if all(r["bytes_equal"] and r["recommend_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
