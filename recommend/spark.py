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

Three plans run this, each in its own module. ``spark_tiles.single_tile``: on a local
master (every executor inside this machine's JVM) with an input Spark estimates small,
the whole table is one tile read in table order without a shuffle, one task with every
local core de-duplicates, computes the statistics and runs the kernel, and the id checks
ride along: one Spark job. ``spark_tiles.one_shuffle``: for the similarities whose
statistics need only an item's own column (``spark_tasks.ITEM_LOCAL``: cosine, jaccard,
lift, cooccurrence, pearson without ratings) and no cap, after one aggregation (id checks,
users, rows; ``spark_checks.validated``) each raw row goes to the ``n_blocks`` tiles of
its item's block, and each tile task de-duplicates, computes its items' statistics from
their complete columns (the same bits as anywhere else), weights and runs the kernel; the
driver merges the partial lists. Measured on the 3M set against the staged plan below, it
removes the de-duplication shuffle, the cached intermediate, two Python passes and the
merge window (``benchmarks/bench_spark.py``; README). ``spark_staged.staged``: bm25 and
tfidf (user activity), pearson with ratings (whether they vary is a whole-table fact) and
the cap: de-duplication and item statistics shuffled by item, statistics to the driver,
weighted tiles, merge.

The driver never holds the interactions: it collects the item statistics and the
similarity table (``n_items * top_k`` entries). A Spark-fitted model therefore has no
``interactions_`` or ``user_ids_``: recommend for users through ``recommend`` here, or
with histories as a sparse matrix.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..datasets.spark import check_columns, require_pyspark, session_conf, spark_job
from . import spark_tasks
from .errors import RecommendError
from .matrix import encode_items
from .model import ItemSimilarityRecommender
from .spark_checks import check_params, validated
from .spark_staged import staged
from .spark_tiles import one_shuffle, single_tile, single_tile_fits

__all__ = ["fit_item_similarity", "recommend"]

logger = logging.getLogger(__name__)

# rows per Arrow batch between the JVM and the Python tasks (Spark's default, 10,000, costs a
# pandas round of overhead per 10,000 rows)
_ARROW_BATCH = 1 << 20


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
        Item blocks (``n_blocks * (n_blocks + 1) / 2`` tiles); default: one tile on a local
        master when Spark estimates the input at most 64 MB (``spark_tiles.single_tile_fits``),
        else enough tiles for every task slot and at most about 20M interactions per tile.
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
    check_params(similarity, top_k, threshold, degree_approximation_threshold)
    spark = df.sparkSession
    clock, times = time.perf_counter(), {}

    def lap(name):
        nonlocal clock
        times[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()
        if progress:
            logger.info("spark fit: %s in %.1f s", name, times[name])

    one_shuffle_ok = (similarity in spark_tasks.ITEM_LOCAL and not (similarity == "pearson" and rating)
                      and degree_approximation_threshold is None)
    settings = {"spark.sql.execution.arrow.maxRecordsPerBatch": _ARROW_BATCH}
    with spark_job(f"fitting {similarity} similarities", error=RecommendError), session_conf(spark, settings):
        vec, capped = None, 0
        if one_shuffle_ok and single_tile_fits(df, n_blocks):
            table, item_ids, counts, n_users, phases = single_tile(df, user=user, item=item, rating=rating,
                                                                   similarity=similarity, top_k=top_k,
                                                                   threshold=threshold)
            blocks = 1
            lap("single tile")
            times.update({f"single tile: {name}": t for name, t in phases.items()})
        else:
            data, n_users, n_items, n_rows = validated(df, user, item, rating, count_items=not one_shuffle_ok)
            lap("validate")
            if one_shuffle_ok:
                table, item_ids, counts, blocks = one_shuffle(data, n_users=n_users, n_rows=n_rows,
                                                              similarity=similarity, top_k=top_k,
                                                              threshold=threshold, n_blocks=n_blocks)
                lap("pairs")
            else:
                table, item_ids, counts, vec, capped, blocks = staged(
                    data, n_users=n_users, n_items=n_items, similarity=similarity, top_k=top_k, threshold=threshold,
                    cap=degree_approximation_threshold, n_blocks=n_blocks, lap=lap)
    if vec is None:
        vec = {"shift": np.zeros(len(item_ids))}
    n_items, nnz = len(item_ids), int(counts.sum())
    if nnz == 0:
        raise RecommendError("no interactions to learn from", where="df")
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
