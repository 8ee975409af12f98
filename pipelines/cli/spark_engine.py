"""``--engine spark`` for ``pippin train recommender`` and ``pippin recommend --histories``.

The table is read through Spark (Parquet, or CSV/TSV with a header row), the work runs
on ``--spark-master`` (default ``local[*]``) with ``pippin.recommend.spark``, and the
results equal ``--engine local``'s: the same model bytes, the same recommendations.
"""

from __future__ import annotations

import time
from pathlib import Path

from .output import Result, info

__all__ = ["add_engine_options", "train_recommender", "recommend_histories"]


def add_engine_options(parser) -> None:
    parser.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="local (default): this process; spark: Apache Spark (pip install \"pippin[spark]\")")
    parser.add_argument("--spark-master", default=None, metavar="URL",
                        help="--engine spark: the master URL (default: local[*])")


def _session(args):
    from ...datasets.spark import spark_session

    return spark_session(args.spark_master, progress=getattr(args, "show_progress", False))


def _table(args, spark, path):
    from ...datasets.spark import read_spark_table
    from ...spec.errors import PippinError

    if getattr(args, "columns", None):
        raise PippinError("--columns is not supported with --engine spark; give the file a header row",
                          where="--engine spark")
    return read_spark_table(spark, path, sep=getattr(args, "sep", None))


def train_recommender(args, top_k) -> Result:
    """``pippin train recommender TABLE --engine spark``."""
    from ...recommend.spark import fit_item_similarity
    from ...recommend.spark_tiles import start_workers
    from ...spec.errors import PippinError

    if args.demo or args.table is None:
        raise PippinError("--engine spark reads an interaction TABLE (not --demo)", where="--engine spark")
    if getattr(args, "holdout_fraction", None) is not None:
        raise PippinError("--holdout-fraction is not supported with --engine spark", where="--engine spark")
    start = time.perf_counter()
    spark = _session(args)
    started = time.perf_counter() - start
    warming = start_workers(spark)  # a local master's Python worker starts while the table is read
    df = _table(args, spark, args.table)
    if warming is not None:
        warming.join()
    read = time.perf_counter() - start - started
    if getattr(args, "show_lines", True):
        info(f"learning {args.similarity} similarities on Spark ({spark.sparkContext.master})")
    model = fit_item_similarity(df, user=args.user_col, item=args.item_col, rating=args.rating_col,
                                similarity=args.similarity, top_k=top_k, threshold=args.threshold,
                                progress=args.show_progress)
    exporting = time.perf_counter()
    path = model.export(args.output)
    seconds = time.perf_counter() - start
    payload = {
        "model": str(path), "similarity": args.similarity, "top_k": model.top_k, "threshold": model.threshold,
        "users": model.n_users_, "items": model.n_items_, "interactions": model.n_interactions_,
        "neighbour_pairs": int(model.similarity_.nnz), "seconds": round(seconds, 3), "held_out": None,
        "engine": "spark", "spark_master": spark.sparkContext.master, "spark_blocks": model.spark_blocks_,
        "spark_seconds": {"session": round(started, 3), "read table, start workers": round(read, 3),
                          **model.spark_seconds_, "export": round(time.perf_counter() - exporting, 3)},
    }
    text = (f"wrote {path}: {args.similarity} similarity over {model.n_items_} items from "
            f"{model.n_interactions_} interactions of {model.n_users_} users "
            f"({model.similarity_.nnz} neighbour pairs, {seconds:.1f} s on Spark)")
    return Result(payload, text)


def recommend_histories(args) -> Result:
    """``pippin recommend MODEL --histories TABLE --engine spark -o OUT``."""
    from ...recommend.spark import recommend
    from ...spec.errors import PippinError

    if not args.output:
        raise PippinError("--engine spark writes its recommendations with -o OUT (.parquet or .csv)",
                          where="--engine spark")
    spark = _session(args)
    df = _table(args, spark, args.histories)
    from .recommend_cmd import _load, _parse_items

    runtime = _load(args.model)
    exclude = _parse_items(runtime, args.exclude) if args.exclude is not None else None
    restrict = _parse_items(runtime, args.restrict) if args.restrict is not None else None
    out = recommend(args.model, df, k=args.k, user=args.user_col, item=args.item_col, rating=args.rating_col,
                    exclude=exclude, restrict_to=restrict)
    target = str(args.output)
    if target.lower().endswith((".parquet", ".pq")):  # a folder of part files, written by the executors
        folder = target if "://" in target else str(Path(target).resolve())  # not the JVM's start folder
        out.write.mode("overwrite").parquet(folder)
        n_rows = spark.read.parquet(folder).count()
    else:  # CSV: one file, through the driver
        rows = out.toPandas()
        rows.to_csv(target, index=False)
        n_rows = len(rows)
    users = df.select(args.user_col).distinct().count()
    payload = {"users": users, "k": args.k, "output": target, "rows": n_rows, "engine": "spark"}
    return Result(payload, f"wrote {n_rows} recommendations for {users} users to {target}")
