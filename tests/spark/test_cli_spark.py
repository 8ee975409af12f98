"""``--engine spark`` on ``pippin train recommender`` and ``pippin recommend --histories``: same outputs as local."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pippin.datasets import make_demo_interactions
from pippin.pipelines.cli.main import main

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _train_both(capsys, tmp_path, table: str, similarity: str, top_k: int) -> dict:
    """``pippin train recommender`` on ``tmp_path / table`` with the local and the Spark engine
    (l.mlmodel, s.mlmodel); asserts both succeed with the same bytes; returns Spark's ``--json`` report."""
    common = ["--rating-col", "rating", "--similarity", similarity, "--top-k", str(top_k), "--json"]
    code, _, _ = _run(capsys, "train", "recommender", str(tmp_path / table), "-o", str(tmp_path / "l.mlmodel"), *common)
    assert code == 0
    code, out, _ = _run(capsys, "train", "recommender", str(tmp_path / table), "-o", str(tmp_path / "s.mlmodel"),
                        *common, "--engine", "spark")
    assert code == 0
    assert (tmp_path / "s.mlmodel").read_bytes() == (tmp_path / "l.mlmodel").read_bytes()
    return json.loads(out)


def test_train_and_recommend_with_spark_equal_local(spark, tmp_path, capsys):
    table = make_demo_interactions(n_users=120, n_items=50, seed=3)[["user_id", "item_id", "rating"]]
    table.to_csv(tmp_path / "t.csv", index=False)
    assert _train_both(capsys, tmp_path, "t.csv", "bm25", 8)["engine"] == "spark"

    table[table.user_id.isin(sorted(set(table.user_id))[::3])].to_csv(tmp_path / "h.csv", index=False)
    outs = {}
    for engine in ("local", "spark"):
        target = tmp_path / f"{engine}.parquet"
        code, _, _ = _run(capsys, "recommend", str(tmp_path / "l.mlmodel"), "--histories", str(tmp_path / "h.csv"),
                          "--rating-col", "rating", "--k", "5", "-o", str(target), "--engine", engine)
        assert code == 0
        outs[engine] = pd.read_parquet(target).sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(outs["spark"], outs["local"], check_dtype=False, rtol=1e-9)


def test_train_cosine_as_one_tile_equals_local(spark, tmp_path, capsys):
    table = make_demo_interactions(n_users=80, n_items=40, seed=5)[["user_id", "item_id", "rating"]]
    table.to_parquet(tmp_path / "t.parquet", index=False)
    report = _train_both(capsys, tmp_path, "t.parquet", "cosine", 6)
    assert report["spark_blocks"] == 1 and "single tile" in report["spark_seconds"]


def test_wrong_column_is_one_line(spark, tmp_path, capsys):
    pd.DataFrame({"user": [1, 2], "item_id": [3, 4]}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = _run(capsys, "train", "recommender", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.mlmodel"),
                        "--engine", "spark")
    assert code == 2
    assert err.strip().splitlines()[-1] == ("pippin: error: df: no user column 'user_id'; the table has "
                                            "['user', 'item_id']")
