"""The staged plan of ``pippin.recommend.spark``'s fit: every similarity and the heavy-user cap.

bm25 and tfidf weight an entry by its user's activity, pearson with ratings depends on
whether ratings vary anywhere in the table, and the cap ranks each user's items: none of
them can be computed from an item's own column, so they run in stages:
de-duplication (and the cap) shuffled by item, the item statistics collected on the
driver (``O(n_items)``), then weighted tiles (``spark_tasks.tile_topk``) and a window
merging each item's partial lists. Shuffle volumes: README "On Apache Spark".
"""

from __future__ import annotations

from functools import partial

import numpy as np

from . import spark_tasks
from .errors import RecommendError
from .spark_tiles import n_blocks_for

__all__ = ["staged"]


def _deduplicated(data, cap: int | None, parts: int):
    """One row per (user, item), the last in table order; with ``cap``, a user's ``cap`` items
    of lowest ``xxhash64(user, item)`` (a seeded, order-free sample).

    Returns (frame ``(u, i, r)``, users capped, whether the frame is still partitioned by
    item and sorted by (item, user)): without a cap, the de-duplication's own shuffle by
    item is the one the item statistics need.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    schema = f"u {data.schema['u'].dataType.simpleString()}, i {data.schema['i'].dataType.simpleString()}, r double"
    clean = (data.repartition(parts, "i").sortWithinPartitions("i", "u", "seq")
             .mapInPandas(spark_tasks.last_rows, schema))
    if cap is None:
        return clean, 0, True
    per_user = Window.partitionBy("u")
    ranked = (clean.withColumn("_n", F.row_number().over(per_user.orderBy(F.xxhash64("u", "i"), "i")))
              .withColumn("_a", F.count(F.lit(1)).over(per_user)))
    capped = ranked.where(F.col("_a") > cap).select("u").distinct().count()
    return ranked.where(F.col("_n") <= cap).drop("_n", "_a"), capped, False



def staged(data, *, n_users: int, n_items: int, similarity: str, top_k, threshold: float, cap, n_blocks, lap):
    """Every similarity, in stages: de-duplication (and the cap) shuffled by item, the item
    statistics on the driver, then weighted tiles (``spark_tasks.tile_topk``) and a merge.
    Returns (neighbour table sorted by item then rank, item ids, item counts, item vectors, users capped, blocks)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = data.sparkSession
    parts = max(2, spark.sparkContext.defaultParallelism)
    clean, capped, by_item = _deduplicated(data, cap, parts)
    clean = clean.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        if capped:  # the cap may drop every row of an item
            n_items = clean.select("i").distinct().count()
        source = clean
        if similarity in ("bm25", "tfidf"):  # both weight an entry by its user's activity
            source = clean.join(clean.groupBy("u").agg(F.count(F.lit(1)).alias("uc")), on="u")
            by_item = False
        i_type = clean.schema["i"].dataType
        ordered = source if by_item else source.repartition(parts, "i").sortWithinPartitions("i", "u")
        stats = (ordered
                 .mapInPandas(partial(spark_tasks.item_statistics, similarity=similarity, n_items=n_items),
                              f"i {i_type.simpleString()}, count long, s1 double, s2 double, lo double, hi double")
                 .toPandas())
        nnz = int(stats["count"].sum())
        if nnz == 0:
            raise RecommendError("no interactions to learn from", where="df")
        ids = stats["i"].to_numpy(dtype=np.int64 if i_type.typeName() == "long" else object)
        item_ids, order = np.unique(ids, return_index=True)
        stats = stats.iloc[order].reset_index(drop=True)
        assert len(item_ids) == n_items, (len(item_ids), n_items)
        rated_pearson = similarity == "pearson" and bool(stats["hi"].max() > stats["lo"].min())
        vec = spark_tasks.item_vectors(similarity, stats["count"].to_numpy(), stats["s1"].to_numpy(),
                                       stats["s2"].to_numpy(), n_users=n_users, rated_pearson=rated_pearson)
        lap("item statistics")
        k = n_items - 1 if top_k is None else min(int(top_k), max(n_items - 1, 1))
        k = max(k, 1)
        blocks = n_blocks_for(spark, nnz, n_blocks)
        sc = spark.sparkContext
        shared = sc.broadcast({"item_ids": item_ids, "factor": vec["factor"], "sa": vec["sa"], "sb": vec["sb"]})
        task_threads = max(1, int(sc.getConf().get("spark.task.cpus", "1")))
        mode = int(vec["mode"])

        def weights(batches):
            v = shared.value
            yield from spark_tasks.weight_batches(batches, similarity=similarity, rated_pearson=rated_pearson,
                                                  item_ids=v["item_ids"], factor=v["factor"], n_items=n_items,
                                                  n_blocks=blocks)

        def tiles(frame):
            import numba

            numba.set_num_threads(min(task_threads, numba.config.NUMBA_NUM_THREADS))
            v = shared.value
            return spark_tasks.tile_topk(frame, n_blocks=blocks, sa=v["sa"], sb=v["sb"], mode=mode,
                                         n_users=n_users, top_k=k, threshold=float(threshold))

        u_type = clean.schema["u"].dataType.simpleString()
        tiled = (source.mapInPandas(weights, f"tile long, u {u_type}, idx long, w float")
                 .groupBy("tile").applyInPandas(tiles, "idx long, pos int, nbr long, val double"))
        if blocks > 1:  # merge each item's partial lists: one per block of neighbours
            best = Window.partitionBy("idx").orderBy(F.col("val").desc(), F.col("nbr").asc())
            tiled = tiled.withColumn("pos", F.row_number().over(best)).where(F.col("pos") <= k)
        table = tiled.toPandas()
        shared.unpersist()
    finally:
        clean.unpersist()
    lap("pairs")
    table = table.iloc[np.lexsort((table["pos"].to_numpy(), table["idx"].to_numpy()))]  # by item, then rank
    return table, item_ids, stats["count"].to_numpy(np.int64), vec, capped, blocks
