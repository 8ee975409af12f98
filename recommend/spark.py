"""Item similarity and batch recommendation on Apache Spark, equal to the single-machine results.

``fit_item_similarity(df, ...)`` returns the ``ItemSimilarityRecommender`` that
``ItemSimilarityRecommender(...).fit`` learns from the same rows: the same item
numbering, the same similarity table bit for bit, so the exported file is byte-identical.
``recommend(model, histories_df, ...)`` scores a DataFrame of histories with the model
broadcast once. The rules are the single-machine ones:

- ids: integer columns (and integer-valued float columns) are int64 ids, anything else
  text; items are numbered in sorted id order.
- a repeated (user, item) row: the last one in table order wins (its rating counts).
- ratings: the rating column, else 1 for every interaction.
- ties: a row's neighbours rank by similarity, then by lower item index.

How the work is split (chosen for exactness first; the alternatives' costs are the issue's
measurements, this one's are ``benchmarks/bench_spark.py``'s, in the README):
the per-item statistics (counts, sums, norms; one pass grouped by item) go to the
driver, ``O(n_items)``. The pair accumulation, quadratic in each user's activity, runs
on the executors over *tiles*: items fall into ``n_blocks`` blocks and tile ``(b, c)``
holds the complete columns of the items of blocks ``b`` and ``c``, so it computes every
``(i in b, j in c)`` co-occurrence with the single-machine compiled kernel
(``kernels.topk_block``) over the same users in the same order: the same float32 bits.
Each tile emits only its rows' ``top_k``; a window per item merges the ``n_blocks``
partial lists (exact: a pair's value comes from one tile, ties break by item index).
The alternatives do not give exact results or do not fit: user partitions accumulating
partial sums change the float32 summation order (different bits for weighted data) and
shuffle every co-occurring pair before any top-k can be taken; a self-join exploding
per-user pairs shuffles ``sum(activity^2)/2`` rows (the issue measured 544 s and 9 GB on
the 3M set). Tiles shuffle each interaction ``n_blocks`` times and hold about
``2 * nnz / n_blocks`` interactions each, so ``n_blocks`` trades shuffle for task memory.

Two plans run this. For the similarities whose statistics need only an item's own column
(``spark_tasks.ITEM_LOCAL``: cosine, jaccard, lift, cooccurrence, pearson without ratings)
and no cap, one shuffle does it all: after one aggregation (id checks, users, rows), each
raw row goes to the ``n_blocks`` tiles of its item's block, one tile per task, and the
task de-duplicates, computes its items' statistics from their complete columns (the same
bits as anywhere else), weights and runs the kernel; the driver merges the partial lists.
Measured on the 3M set against the staged plan below, it removes the de-duplication
shuffle, the cached intermediate, two Python passes and the merge window
(``benchmarks/bench_spark.py``; README). bm25 and tfidf (user activity), pearson with
ratings (whether they vary is a whole-table fact) and the cap use stages: de-duplication
and item statistics shuffled by item, statistics to the driver, weighted tiles, merge.

The driver never holds the interactions: it collects the item statistics and the
similarity table (``n_items * top_k`` entries). A Spark-fitted model therefore has no
``interactions_`` or ``user_ids_``: recommend for users through ``recommend`` here, or
with histories as a sparse matrix.
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..datasets.spark import check_columns, partition_keys, require_pyspark, session_conf, spark_job
from . import spark_tasks
from .errors import RecommendError
from .matrix import encode_items
from .model import ItemSimilarityRecommender
from .similarity import SIMILARITIES

__all__ = ["fit_item_similarity", "recommend"]

logger = logging.getLogger(__name__)

# A tile holds about 2 * nnz / n_blocks interactions: at least this many blocks per that many.
_TILE_ENTRIES = 20_000_000
# rows per Arrow batch between the JVM and the Python tasks (Spark's default, 10,000, costs a
# pandas round of overhead per 10,000 rows)
_ARROW_BATCH = 1 << 20


def _check_params(similarity, top_k, threshold, cap) -> None:
    if similarity not in SIMILARITIES:
        raise RecommendError(f"similarity={similarity!r}; expected one of {sorted(SIMILARITIES)}", where="similarity",
                             hint="EASE solves one item x item system: fit it on one machine")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise RecommendError(f"top_k={top_k!r}; expected a positive integer or None", where="top_k")
    if not np.isfinite(float(threshold)):
        raise RecommendError(f"threshold={threshold!r}; expected a finite number", where="threshold")
    if cap is not None and (not isinstance(cap, (int, np.integer)) or cap < 1):
        raise RecommendError(f"degree_approximation_threshold={cap!r}; expected a positive integer or None",
                             where="degree_approximation_threshold")


def _id_column(df, name: str):
    """(column expression, kind) following ``datasets.interactions``: integers -> long, else string."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = df.schema[name].dataType
    if isinstance(dtype, T.IntegralType):
        return F.col(name).cast("long"), "long"
    if isinstance(dtype, (T.FloatType, T.DoubleType, T.DecimalType)):
        return F.col(name).try_cast("long"), "float"
    return F.col(name).cast("string"), "string"


def _validated(df, user: str, item: str, rating: str | None, *, count_items: bool = True):
    """``(u, i, r, seq)``, n_users, n_items (None unless ``count_items``), n_rows, from one pass
    checking ids and ratings; raises ``RecommendError``."""
    from pyspark.sql import functions as F

    check_columns(df, {"user": user, "item": item, "rating": rating}, where="df", error=RecommendError)
    cols, checks = {}, []
    for role, name in (("user", user), ("item", item)):
        expr, kind = _id_column(df, name)
        cols[role] = expr
        bad = F.col(name).isNull()
        if kind == "string":
            bad = bad | (F.trim(F.col(name).cast("string")) == "")
        elif kind == "float":
            bad = bad | F.isnan(F.col(name)) | (F.col(name) != F.floor(F.col(name))) | expr.isNull()
        checks.append(F.sum(bad.cast("long")).alias(role))
    r = F.col(rating).try_cast("double") if rating else F.lit(1.0)
    if rating:
        checks.append(F.sum((r.isNull() | F.isnan(r) | (F.abs(r) == float("inf"))).cast("long")).alias("rating"))
    checks += [F.countDistinct(cols["user"]).alias("n_users"), F.count(F.lit(1)).alias("n_rows")]
    if count_items:
        checks.append(F.countDistinct(cols["item"]).alias("n_items"))
    counts = df.agg(*checks).collect()[0].asDict()
    n_users, n_rows = int(counts.pop("n_users")), int(counts.pop("n_rows"))
    n_items = int(counts.pop("n_items")) if count_items else None
    for role, n_bad in counts.items():
        if n_bad:
            what = "a finite number" if role == "rating" else "a non-empty integer or string id"
            name = {"user": user, "item": item, "rating": rating}[role]
            raise RecommendError(f"{n_bad} rows have a value that is not {what} in column {name!r}",
                                 where=f"df: column {name!r}")
    data = df.select(cols["user"].alias("u"), cols["item"].alias("i"), r.alias("r"),
                     F.monotonically_increasing_id().alias("seq"))
    return data, n_users, n_items, n_rows


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


def _n_blocks(spark, nnz: int, n_blocks: int | None) -> int:
    if n_blocks:
        return int(n_blocks)
    slots = spark.sparkContext.defaultParallelism
    by_tasks = next(b for b in range(1, 1000) if b * (b + 1) // 2 >= slots)
    return max(by_tasks, math.ceil(2 * nnz / _TILE_ENTRIES))


def _one_shuffle(data, *, n_users: int, n_rows: int, similarity: str, top_k, threshold: float, n_blocks):
    """Tiles straight from the raw rows (``spark_tasks.raw_tile``): the only shuffle sends each row
    to the ``n_blocks`` tiles of its item's block; de-duplication, item statistics, weights and
    the pair kernel all run inside the tile tasks. Returns (merged neighbour table, item ids,
    item counts, blocks)."""
    from pyspark.sql import functions as F

    spark = data.sparkSession
    blocks = _n_blocks(spark, n_rows, n_blocks)
    n_tiles = blocks * (blocks + 1) // 2
    # tasks start in partition order: the two-block tiles (twice the work) first
    tiles = sorted(((b, c) for b in range(blocks) for c in range(b, blocks)), key=lambda t: t[0] == t[1])
    keys = partition_keys(n_tiles)
    key_of = {b * blocks + c: key for (b, c), key in zip(tiles, keys)}
    blk = F.pmod(F.xxhash64("i"), F.lit(blocks))
    tile_ids = [F.least(blk, F.lit(c)) * blocks + F.greatest(blk, F.lit(c)) for c in range(blocks)]
    by_tile_id = [key_of.get(t, 0) for t in range(blocks * blocks)]  # one literal array, not a CASE per tile
    key_expr = F.element_at(F.array(*[F.lit(k).cast("long") for k in by_tile_id]), F.col("tile").cast("int") + 1)
    i_type = data.schema["i"].dataType.simpleString()
    threads = max(1, int(spark.sparkContext.getConf().get("spark.task.cpus", "1")))
    task = partial(_raw_tiles, threads=threads, n_blocks=blocks, similarity=similarity, n_users=n_users,
                   top_k=top_k, threshold=float(threshold))
    out = (data.select(F.explode(F.array(*tile_ids)).alias("tile"), blk.alias("blk"), "u", "i", "r", "seq")
           .withColumn("key", key_expr).repartition(n_tiles, "key").drop("key")
           .mapInPandas(task, f"i {i_type}, count long, nbr array<{i_type}>, val array<double>").toPandas())
    is_item = out["count"].to_numpy() >= 0
    items = out[is_item]
    ids = items["i"].to_numpy(dtype=np.int64 if i_type == "bigint" else object)
    item_ids, order = np.unique(ids, return_index=True)
    counts = items["count"].to_numpy(np.int64)[order]
    pairs = out[~is_item]
    sizes = np.array([len(v) for v in pairs["val"]], dtype=np.int64)
    flat = np.concatenate(list(pairs["nbr"])) if len(pairs) else np.zeros(0, np.int64)
    idx, _ = encode_items(item_ids, np.repeat(pairs["i"].to_numpy(), sizes))
    nbr, _ = encode_items(item_ids, flat)
    val = np.concatenate(list(pairs["val"])).astype(np.float64) if len(pairs) else np.zeros(0)
    n_items = len(item_ids)
    k = n_items - 1 if top_k is None else min(int(top_k), max(n_items - 1, 1))
    order = np.lexsort((nbr, -val, idx))  # per item: best first, ties by lower item index
    idx, nbr, val = idx[order], nbr[order], val[order]
    starts = np.r_[0, np.flatnonzero(idx[1:] != idx[:-1]) + 1] if len(idx) else np.zeros(0, np.int64)
    pos = np.arange(len(idx)) - np.repeat(starts, np.diff(np.r_[starts, len(idx)]))
    keep = pos < max(k, 1)
    table = pd.DataFrame({"idx": idx[keep], "pos": pos[keep], "nbr": nbr[keep], "val": val[keep]})
    return table, item_ids, counts, blocks


def _raw_tiles(batches, *, threads: int, **kwargs):
    """One partition = one tile (``partition_keys``): all its batches, then ``spark_tasks.raw_tile``."""
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # the task's share of the cores
    frames = [frame for frame in batches if len(frame)]
    if frames:
        yield spark_tasks.raw_tile(pd.concat(frames, ignore_index=True), **kwargs)


def fit_item_similarity(df, *, user: str, item: str, rating: str | None = None, similarity: str = "jaccard",
                        top_k: int | None = 64, threshold: float = 0.001,
                        degree_approximation_threshold: int | None = None, n_blocks: int | None = None,
                        progress: bool = False) -> ItemSimilarityRecommender:
    """Learn an ``ItemSimilarityRecommender`` from a Spark DataFrame of interactions.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per interaction [shape=(n_rows,)].
    user, item : str
        Id columns (integers or strings).
    rating : str, optional
        Rating column; without it every interaction counts 1.
    similarity, top_k, threshold
        As ``ItemSimilarityRecommender``.
    degree_approximation_threshold : int, optional
        An approximation, off by default: a user with more items keeps only this many
        (those of lowest ``xxhash64(user, item)``), which bounds the quadratic work of
        heavy users. The result then equals the single-machine fit of the capped rows;
        ``n_users_capped_`` counts the users it touched.
    n_blocks : int, optional
        Item blocks (``n_blocks * (n_blocks + 1) / 2`` tiles); default: enough tiles for
        every task slot and at most about 20M interactions per tile.
    progress : bool
        Log each stage's time (Spark's own progress bar is a session setting).

    Returns
    -------
    ItemSimilarityRecommender
        Fitted: ``similarity_``, ``shift_``, ``item_ids_``, ``n_items_``, ``n_users_``,
        ``has_ratings_``, plus ``n_interactions_``, ``n_users_capped_``, ``spark_blocks_``
        and ``spark_seconds_`` (seconds per stage).

    Raises
    ------
    RecommendError
        A column is missing, an id or rating is invalid, a parameter is out of range,
        there are no interactions, or a Spark job failed after Spark's own retries
        (the message names the failed task's error).
    """
    require_pyspark()
    _check_params(similarity, top_k, threshold, degree_approximation_threshold)
    spark = df.sparkSession
    clock, times = time.perf_counter(), {}

    def lap(name):
        nonlocal clock
        times[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
        if progress:
            logger.info("spark fit: %s in %.1f s", name, times[name])

    one_shuffle = (similarity in spark_tasks.ITEM_LOCAL and not (similarity == "pearson" and rating)
                   and degree_approximation_threshold is None)
    settings = {"spark.sql.execution.arrow.maxRecordsPerBatch": _ARROW_BATCH}
    with spark_job(f"fitting {similarity} similarities", error=RecommendError), session_conf(spark, settings):
        data, n_users, n_items, n_rows = _validated(df, user, item, rating, count_items=not one_shuffle)
        lap("validate")
        if one_shuffle:
            table, item_ids, counts, blocks = _one_shuffle(data, n_users=n_users, n_rows=n_rows,
                                                           similarity=similarity, top_k=top_k,
                                                           threshold=threshold, n_blocks=n_blocks)
            vec, capped = {"shift": np.zeros(len(item_ids))}, 0
            lap("pairs")
        else:
            table, item_ids, counts, vec, capped, blocks = _general(
                data, n_users=n_users, n_items=n_items, similarity=similarity, top_k=top_k, threshold=threshold,
                cap=degree_approximation_threshold, n_blocks=n_blocks, lap=lap)
    n_items, nnz = len(item_ids), int(counts.sum())
    if nnz == 0:
        raise RecommendError("no interactions to learn from", where="df")
    table = table.iloc[np.lexsort((table["pos"].to_numpy(), table["idx"].to_numpy()))]
    per_item = np.bincount(table["idx"].to_numpy(np.int64), minlength=n_items)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(per_item, out=indptr[1:])
    S = sp.csr_matrix((table["val"].to_numpy(np.float64), table["nbr"].to_numpy(np.int32), indptr),
                      shape=(n_items, n_items))
    model = ItemSimilarityRecommender(similarity=similarity, top_k=top_k, threshold=threshold, progress=progress)
    model.similarity_, model.shift_ = S, np.asarray(vec["shift"], dtype=np.float64)
    model.item_ids_, model.n_items_, model.n_users_ = item_ids, n_items, n_users
    model.has_ratings_ = rating is not None
    model.popularity_ = counts  # training interactions per item
    model.columns_ = {"user": user, "item": item, "rating": rating}
    model.n_interactions_, model.n_users_capped_, model.spark_blocks_ = nnz, int(capped), blocks
    model.spark_seconds_ = times
    if capped:
        logger.warning("degree_approximation_threshold=%d: %d users kept only that many items",
                       degree_approximation_threshold, capped)
    return model


def _general(data, *, n_users: int, n_items: int, similarity: str, top_k, threshold: float, cap, n_blocks, lap):
    """Every similarity, in stages: de-duplication (and the cap) shuffled by item, the item
    statistics on the driver, then weighted tiles (``spark_tasks.tile_topk``) and a merge.
    Returns (neighbour table, item ids, item counts, item vectors, users capped, blocks)."""
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
        blocks = _n_blocks(spark, nnz, n_blocks)
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
    return table, item_ids, stats["count"].to_numpy(np.int64), vec, capped, blocks


def _scoring_model(model) -> ItemSimilarityRecommender:
    """A light fitted estimator (similarities, shifts, item ids only) from an estimator or a model file."""
    light = ItemSimilarityRecommender()
    if isinstance(model, ItemSimilarityRecommender):
        model._check_fitted()
        light.similarity_, light.shift_, light.item_ids_ = model.similarity_, model.shift_, model.item_ids_
    else:
        from ..pipelines import load

        loaded = load(model)
        if loaded.kind != "itemSimilarityRecommender":
            raise RecommendError(f"model kind is {loaded.kind!r}, expected itemSimilarityRecommender",
                                 where=str(model))
        light.similarity_ = sp.csr_matrix(loaded.similarity)
        light.shift_ = np.asarray(loaded.shift, dtype=np.float64)
        light.item_ids_ = np.asarray(loaded.item_ids, dtype=object if loaded.string_ids else np.int64)
    light.n_items_ = len(light.item_ids_)
    return light


def _score_batches(batches, *, shared, k: int, rating: bool, exclude_seen: bool, exclude, restrict_to,
                   user: str, item: str):
    light = shared.value
    for frame in spark_tasks.whole_groups(batches, "u"):
        frame = frame.drop_duplicates(["u", "i"], keep="last")  # sorted by (user, row order): last row wins
        users, rows = np.unique(frame["u"].to_numpy(), return_inverse=True)
        codes, known = encode_items(light.item_ids_, frame["i"].to_numpy())
        values = frame["r"].to_numpy(np.float64) if rating else np.ones(len(frame))
        hist = sp.csr_matrix((values[known], (rows[known], codes[known])), shape=(len(users), light.n_items_))
        ids, scores = light.recommend(hist, k=k, exclude_seen=exclude_seen, exclude=exclude,
                                      restrict_to=restrict_to)
        valid = np.isfinite(scores)
        yield pd.DataFrame({user: np.repeat(users, k)[valid.ravel()],
                            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(users))[valid.ravel()],
                            item: ids[valid], "score": scores[valid]})


def recommend(model, histories_df, k: int = 10, *, user: str = "user_id", item: str = "item_id",
              rating: str | None = None, exclude_seen: bool = True, exclude=None, restrict_to=None):
    """The ``k`` best items for every user of a Spark DataFrame of histories.

    Parameters
    ----------
    model : ItemSimilarityRecommender or path-like
        A fitted estimator or an ``ItemSimilarityRecommender`` .mlmodel; broadcast once.
    histories_df : pyspark.sql.DataFrame
        One row per (user, item[, rating]); a repeated pair's last row wins, unknown items are ignored.
    k : int >= 0
    user, item, rating : str
        Column names; ``rating`` None counts every interaction 1.
    exclude_seen, exclude, restrict_to
        As ``ItemSimilarityRecommender.recommend``.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns ``user``, ``rank`` (1 = best), ``item``, ``score`` (named after the input
        columns), one row per recommendation; what ``pippin recommend --histories`` writes.
    """
    require_pyspark()
    from pyspark.sql import functions as F

    if not isinstance(k, (int, np.integer)) or k < 0:
        raise RecommendError(f"k={k!r}; expected an integer >= 0", where="k")
    check_columns(histories_df, {"user": user, "item": item, "rating": rating}, where="histories_df",
                  error=RecommendError)
    light = _scoring_model(model)
    string_ids = light.item_ids_.dtype == object
    spark = histories_df.sparkSession
    shared = spark.sparkContext.broadcast(light)
    item_col = F.col(item).cast("string") if string_ids else F.col(item)
    r = F.col(rating).try_cast("double") if rating else F.lit(1.0)
    data = histories_df.select(F.col(user).alias("u"), item_col.alias("i"), r.alias("r"),
                               F.monotonically_increasing_id().alias("seq"))
    parts = max(2, spark.sparkContext.defaultParallelism)
    schema = (f"`{user}` {histories_df.schema[user].dataType.simpleString()}, rank long, "
              f"`{item}` {'string' if string_ids else 'long'}, score double")
    return (data.repartition(parts, "u").sortWithinPartitions("u", "seq")
            .mapInPandas(partial(_score_batches, shared=shared, k=int(k), rating=rating is not None,
                                 exclude_seen=exclude_seen, exclude=exclude, restrict_to=restrict_to,
                                 user=user, item=item), schema))
