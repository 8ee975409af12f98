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


def test_train_and_recommend_with_spark_equal_local(spark, tmp_path, capsys):
    table = make_demo_interactions(n_users=120, n_items=50, seed=3)[["user_id", "item_id", "rating"]]
    table.to_csv(tmp_path / "t.csv", index=False)
    common = ["--rating-col", "rating", "--similarity", "bm25", "--top-k", "8", "--json"]
    code, out, _ = _run(capsys, "train", "recommender", str(tmp_path / "t.csv"), "-o", str(tmp_path / "l.mlmodel"),
                        *common)
    assert code == 0
    code, out, _ = _run(capsys, "train", "recommender", str(tmp_path / "t.csv"), "-o", str(tmp_path / "s.mlmodel"),
                        *common, "--engine", "spark")
    assert code == 0 and json.loads(out)["engine"] == "spark"
    assert (tmp_path / "s.mlmodel").read_bytes() == (tmp_path / "l.mlmodel").read_bytes()

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
    common = ["--rating-col", "rating", "--similarity", "cosine", "--top-k", "6", "--json"]
    code, _, _ = _run(capsys, "train", "recommender", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "l.mlmodel"),
                      *common)
    assert code == 0
    code, out, _ = _run(capsys, "train", "recommender", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "s.mlmodel"),
                        *common, "--engine", "spark")
    report = json.loads(out)
    assert code == 0 and report["spark_blocks"] == 1 and "single tile" in report["spark_seconds"]
    assert (tmp_path / "s.mlmodel").read_bytes() == (tmp_path / "l.mlmodel").read_bytes()


def test_wrong_column_is_one_line(spark, tmp_path, capsys):
    pd.DataFrame({"user": [1, 2], "item_id": [3, 4]}).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = _run(capsys, "train", "recommender", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.mlmodel"),
                        "--engine", "spark")
    assert code == 2
    assert err.strip().splitlines()[-1] == ("pippin: error: df: no user column 'user_id'; the table has "
                                            "['user', 'item_id']")
