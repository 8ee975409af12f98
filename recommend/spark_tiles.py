"""The tile plans of ``pippin.recommend.spark``'s fit: raw rows shuffled into tiles, or one tile.

For the similarities whose statistics need only an item's own column
(``spark_tasks.ITEM_LOCAL``, no cap), every tile task de-duplicates its rows, computes its
items' statistics from their complete columns (the same bits as anywhere else), weights
and runs the kernel; the driver merges each item's partial lists (``merged``).

- ``one_shuffle``: after the validation aggregation (``spark_checks.validated``), each raw
  row goes to the ``n_blocks`` tiles of its item's block, one tile per task (the partition
  of each tile is chosen with Spark's own hash, two-block tiles first).
- ``single_tile``: a local master runs every executor inside this machine's one JVM, so
  more tiles only copy rows: there the whole table is one tile, read in table order
  without any shuffle (``coalesce(1)``), and its one task runs the kernel with every
  local core as a thread. The id checks and the user count ride along in that task
  (``spark_tasks.single_tile``), so the fit is one Spark job. Measured on the 3M set on
  ``local[2]`` in a warm session (load 4.2-4.8): 4.9-6.8 s against 20.4-29.5 s for 2 blocks
  (3 tiles); end to end: README "On Apache Spark".
"""

from __future__ import annotations

import contextlib
import math
import pickle
import time
from functools import partial

import numpy as np
import pandas as pd

from ..datasets.spark import partition_keys
from . import spark_tasks
from .matrix import encode_items
from .spark_checks import bad_bits, id_checks, jvm_checked, raise_bad

__all__ = ["TILE_ENTRIES", "SINGLE_TILE_BYTES", "n_blocks_for", "single_tile_fits", "start_workers", "one_shuffle",
           "single_tile", "merged"]

#: a tile holds about 2 * nnz / n_blocks interactions: at least this many blocks per that many
TILE_ENTRIES = 20_000_000
#: the single-tile plan is chosen when Spark's size estimate of the input is at most this
#: (the generated 3.0M-interaction set is 6 MB as Parquet)
SINGLE_TILE_BYTES = 64 << 20


def n_blocks_for(spark, nnz: int, n_blocks: int | None) -> int:
    """``n_blocks``, or enough tiles for every task slot and at most ``TILE_ENTRIES`` per tile."""
    if n_blocks:
        return int(n_blocks)
    slots = spark.sparkContext.defaultParallelism
    by_tasks = next(b for b in range(1, 1000) if b * (b + 1) // 2 >= slots)
    return max(by_tasks, math.ceil(2 * nnz / TILE_ENTRIES))


def _local_cores(spark) -> int | None:
    """The cores of a local master (``local``, ``local[N]``, ``local[N,F]``, ``local[*]``), else None."""
    master = spark.sparkContext.master
    if master != "local" and not master.startswith("local["):  # local-cluster[...] has executor JVMs
        return None
    return max(1, int(spark.sparkContext.defaultParallelism))


def single_tile_fits(df, n_blocks: int | None) -> bool:
    """Whether the fit runs as one tile: ``n_blocks=1``, or a local master, no ``n_blocks`` and an
    input Spark estimates at most ``SINGLE_TILE_BYTES`` (a row count, when Spark knows one, of at
    most ``TILE_ENTRIES / 2``)."""
    if n_blocks is not None:
        return int(n_blocks) == 1
    if _local_cores(df.sparkSession) is None:
        return False
    try:  # the optimizer's estimate: no Spark job (not available on Spark Connect)
        stats = df._jdf.queryExecution().optimizedPlan().stats()
        rows = stats.rowCount()
        if rows.isDefined():
            return int(str(rows.get())) <= TILE_ENTRIES // 2
        return int(str(stats.sizeInBytes())) <= SINGLE_TILE_BYTES
    except Exception:  # noqa: BLE001 -- no estimate: the counted plans
        return False


def _threads(spark) -> int:
    """Kernel threads of a tile task: a local master's cores for the single tile, else ``spark.task.cpus``."""
    return max(1, int(spark.sparkContext.getConf().get("spark.task.cpus", "1")))


def _run_tile(batches, *, threads: int, task, **kwargs):
    """One partition = one tile: set the task's share of the cores for numba, run ``task``
    (``"raw"``: ``raw_tile`` on all the partition's batches; ``"single"``: ``single_tile``,
    its arrays pickled into one binary row, which Arrow and the JVM pass on as they are)."""
    import pickle

    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if task == "single":
        yield pd.DataFrame({"fit": [pickle.dumps(spark_tasks.single_tile(batches, **kwargs), protocol=5)]})
        return
    frames = [frame for frame in batches if len(frame)]
    if frames:
        yield spark_tasks.raw_tile(pd.concat(frames, ignore_index=True), **kwargs)


def _warm(batches):
    """A Python worker's first task: import the tile code and run the kernel once on a tiny table."""
    for _ in batches:
        pass
    tiny = pd.DataFrame({"u": [1, 1, 2, 2, 3], "i": [1, 2, 1, 2, 1], "bad": np.zeros(5, np.int32)})
    spark_tasks.single_tile([tiny], similarity="cosine", top_k=1, threshold=0.0, rated=False)
    yield pd.DataFrame({"ok": [1]})


def start_workers(spark):
    """Start a local master's Python worker in the background (a thread running one tiny job)
    while the driver does other work, such as reading the table's schema; ``join()`` the
    returned thread before the fit, whose single tile task then reuses the warm worker
    (``spark.python.worker.reuse``, Spark's default). None on a cluster master."""
    import threading

    if _local_cores(spark) is None:
        return None

    def run():
        with contextlib.suppress(Exception):  # only a head start: the fit reports any failure itself
            spark.range(1, numPartitions=1).mapInPandas(_warm, "ok int").collect()

    thread = threading.Thread(target=run, name="pippin-spark-warm", daemon=True)
    thread.start()
    return thread


def single_tile(df, *, user: str, item: str, rating: str | None, similarity: str, top_k, threshold: float):
    """The whole fit as one Spark job of one task (``spark_tasks.single_tile``).

    Returns (neighbour table, item ids, item counts, n_users, seconds per phase: the task's
    start (Python worker and imports), reading the rows, computing, sending the results,
    assembling the table on the driver); raises ``RecommendError`` for a missing column or
    an invalid id or rating."""
    cols, bad = id_checks(df, user, item, rating)
    in_jvm = jvm_checked(df, user, item)
    spark = df.sparkSession
    threads = _local_cores(spark) or _threads(spark)
    select = [cols["user"].alias("u"), cols["item"].alias("i")]
    if rating:
        select.append(cols["rating"].alias("r"))
    if in_jvm:
        select.append(bad_bits({role: bad[role] for role in in_jvm}).alias("bad"))
    data = df.select(*select).coalesce(1)  # partitions in order: table order
    task = partial(_run_tile, threads=threads, task="single", similarity=similarity, top_k=top_k,
                   threshold=float(threshold), rated=rating is not None, in_jvm=in_jvm)
    submitted = time.time()
    blobs = data.mapInPandas(task, "fit binary").toPandas()["fit"]
    collected = time.time()
    # none when the table has no partition at all; pickled by this fit's own task
    fit = pickle.loads(blobs.iloc[0]) if len(blobs) else {"n_users": 0, "failures": [0, 0, 0]}
    raise_bad(dict(zip(("user", "item", "rating"), fit["failures"])), {"user": user, "item": item, "rating": rating})
    if "item_ids" in fit:
        item_ids, counts, per_item = fit["item_ids"], fit["counts"], fit["per_item"]
    else:
        item_ids = np.zeros(0, dtype=object if data.schema["i"].dataType.simpleString() == "string" else np.int64)
        counts = per_item = np.zeros(0, np.int64)
        fit.update(nbr=np.zeros(0, np.int32), val=np.zeros(0), t_start=submitted, t_read=submitted, t_done=submitted)
    starts = np.repeat(np.cumsum(per_item) - per_item, per_item)
    table = pd.DataFrame({"idx": np.repeat(np.arange(len(item_ids)), per_item),
                          "pos": np.arange(len(fit["nbr"])) - starts, "nbr": fit["nbr"], "val": fit["val"]})
    seconds = {"task start": fit["t_start"] - submitted, "read rows": fit["t_read"] - fit["t_start"],
               "compute": fit["t_done"] - fit["t_read"], "results": collected - fit["t_done"],
               "assemble": time.time() - collected}
    return table, item_ids, counts, fit["n_users"], {name: round(float(t), 3) for name, t in seconds.items()}


def one_shuffle(data, *, n_users: int, n_rows: int, similarity: str, top_k, threshold: float, n_blocks):
    """Tiles straight from the raw rows (``spark_tasks.raw_tile``): the only shuffle sends each row
    to the ``n_blocks`` tiles of its item's block; de-duplication, item statistics, weights and
    the pair kernel all run inside the tile tasks. Returns (merged neighbour table, item ids,
    item counts, blocks)."""
    from pyspark.sql import functions as F

    spark = data.sparkSession
    blocks = n_blocks_for(spark, n_rows, n_blocks)
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
    task = partial(_run_tile, threads=_threads(spark), task="raw", n_blocks=blocks, similarity=similarity,
                   n_users=n_users, top_k=top_k, threshold=float(threshold))
    out = (data.select(F.explode(F.array(*tile_ids)).alias("tile"), blk.alias("blk"), "u", "i", "r", "seq")
           .withColumn("key", key_expr).repartition(n_tiles, "key").drop("key")
           .mapInPandas(task, f"i {i_type}, count long, nbr array<{i_type}>, val array<double>").toPandas())
    table, item_ids, counts = merged(out, i_type, top_k)
    return table, item_ids, counts, blocks


def merged(out: pd.DataFrame, i_type: str, top_k):
    """Tile rows ``(i, count, nbr, val)`` -> (neighbour table ``(idx, pos, nbr, val)`` sorted by item
    then rank, item ids, item counts): each item's partial lists merged, best first, ties by
    lower item index, the best ``top_k`` kept."""
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
    return table, item_ids, counts
