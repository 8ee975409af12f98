"""Interaction table, MovieLens and demo loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pippin.datasets import (DatasetError, load_interactions, load_movielens, load_movielens_titles,
                             make_demo_interactions, read_table)


def test_load_interactions_keeps_named_columns(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("who\twhat\tstars\textra\nu1\t7\t4.5\tx\nu2\t8\t3\ty\n")
    table = load_interactions(path, user="who", item="what", rating="stars")
    assert list(table.columns) == ["who", "what", "stars"]
    assert table["what"].dtype == np.int64 and table["stars"].tolist() == [4.5, 3.0]


@pytest.mark.parametrize("body, match", [
    ("user,item\n1,2\n", r"no rating column 'rating'; the table has \['user', 'item'\]"),
    ("user,item,rating\n1,2,3\n,4,5\n", r"row 3, column 'user'"),
    ("user,item,rating\n1,2,3\n2,4,five\n", r"row 3, column 'rating'.*'five'"),
    ("user,item,rating\n1,2.5,3\n", r"row 2, column 'item'"),
])
def test_errors_name_the_row_and_column(tmp_path, body, match):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DatasetError, match=match) as info:
        load_interactions(path, user="user", item="item", rating="rating")
    assert "bad.csv" in str(info.value)


def test_read_table_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DatasetError, match="cannot read the table"):
        read_table(bad)


def test_dataframe_source():
    frame = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"]})
    assert load_interactions(frame, user="u", item="i")["i"].tolist() == ["x", "y"]
    with pytest.raises(DatasetError, match="<table>: no user column 'user'"):
        load_interactions(frame, user="user", item="i")


def test_movielens_format(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n2\t10\t3\t200\n")
    (tmp_path / "u.item").write_bytes("10|Caf\xe9 (1995)|01-Jan-1995||url|0|1\n".encode("latin-1"))
    table = load_movielens(tmp_path)
    assert table.to_dict("list") == {"user_id": [1, 2], "item_id": [10, 10], "rating": [5.0, 3.0],
                                     "timestamp": [100, 200]}
    assert load_movielens_titles(tmp_path) == {10: "Caf\xe9 (1995)"}
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n2\tten\t3\t200\n")
    with pytest.raises(DatasetError, match=r"u.data: line 2, column 2 \(item_id\)"):
        load_movielens(tmp_path)


def test_movielens_100k(movielens_dir):
    table = load_movielens(movielens_dir)
    assert len(table) == 100_000 and table["user_id"].nunique() == 943 and table["item_id"].nunique() == 1682
    assert load_movielens_titles(movielens_dir)[1].startswith("Toy Story")


def test_demo_interactions_have_structure():
    table = make_demo_interactions(seed=0)
    assert table.equals(make_demo_interactions(seed=0)) and not table.equals(make_demo_interactions(seed=1))
    counts = table["item_id"].value_counts()
    assert counts.iloc[0] > 10 * counts.iloc[-1]  # hits and a niche tail
    # users concentrate on a few taste clusters
    share = table.groupby("user_id")["cluster"].agg(lambda c: c.value_counts(normalize=True).iloc[0])
    assert share.mean() > 0.5
    assert table["rating"].between(1, 5).all() and table.duplicated(["user_id", "item_id"]).sum() == 0
