"""Issue 12 item 6: table loaders never reach an internal error; header-less files (issue 13 item 7)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from pippin.datasets import DatasetError, load_interactions, read_table
from pippin.pipelines.cli.main import main
from pippin.spec.errors import PippinError


def test_header_only_csv_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text("user_id,item_id,rating\n")
    with pytest.raises(DatasetError, match="header.csv: the table has no rows"):
        load_interactions(path, user="user_id", item="item_id", rating="rating")
    code = main(["train", "recommender", str(path), "-o", str(tmp_path / "m.mlmodel"), "--rating-col", "rating"])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err and "no rows" in err


@pytest.mark.parametrize("value", ["9223372036854775808", "18446744073709551615", "-9223372036854775809",
                                   "99999999999999999999999"])
def test_ids_outside_int64_name_the_row_and_column(tmp_path, capsys, value):
    path = tmp_path / "big.csv"
    path.write_text(f"user_id,item_id\n1,5\n2,{value}\n")
    with pytest.raises(DatasetError, match=r"big.csv: row 3, column 'item_id': id \d+|row 3, column 'item_id'"):
        load_interactions(path, user="user_id", item="item_id")
    code = main(["train", "recommender", str(path), "-o", str(tmp_path / "m.mlmodel")])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err and "64-bit" in err and value.lstrip("-") in err


def test_largest_int64_id_survives_exactly(tmp_path, capsys):
    path = tmp_path / "edge.csv"
    top = 2 ** 63 - 1
    path.write_text(f"user_id,item_id\n1,{top}\n1,{top - 1}\n2,{top}\n2,{top - 1}\n")
    model = tmp_path / "m.mlmodel"
    assert main(["train", "recommender", str(path), "-o", str(model), "--json"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(model), "--items", str(top), "--json"]) == 0
    import json

    payload = json.loads(capsys.readouterr().out)
    assert payload["items"] == [top - 1] and payload["unknown_ids"] == []


def test_float_ids_and_nan_messages_use_python_reprs():
    with pytest.raises(DatasetError, match=r"id 1e\+30 does not fit"):
        load_interactions(pd.DataFrame({"u": [1], "i": [1e30]}), user="u", item="i")
    with pytest.raises(DatasetError, match=r"value nan is not a finite number") as info:
        load_interactions(pd.DataFrame({"u": [1], "i": [2], "r": [np.nan]}), user="u", item="i", rating="r")
    assert "np." not in str(info.value)


def test_header_less_file_with_sep_and_columns(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t881250949\n2\t10\t3\t891717742\n")
    table = load_interactions(path, user="user_id", item="item_id", rating="rating", sep="\\t",
                              columns=["user_id", "item_id", "rating", "ts"])
    assert table["item_id"].tolist() == [10, 10] and table["rating"].tolist() == [5.0, 3.0]
    bad = tmp_path / "bad.data"
    bad.write_text("1\t10\t5\n2\tx\t\n")
    with pytest.raises(DatasetError, match=r"bad.data: row 2, column 'rating'"):  # no header: rows count from 1
        load_interactions(bad, user="u", item="i", rating="rating", sep="tab", columns=["u", "i", "rating"])
    with pytest.raises(DatasetError, match="names 4 columns"):
        read_table(bad, sep="\t", columns=["a", "b", "c", "d"])


def test_random_tables_give_only_pippin_errors(tmp_path):
    """A seeded sweep of malformed CSV files through the recommender's loader."""
    from pippin.recommend import ItemSimilarityRecommender

    cells = ["", "1", "-1", "0", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e400",
             "nan", "inf", "1.5", "a", '"', "é", " ", "TRUE", "99999999999999999999999", "2.0", "NULL"]
    rng = random.Random(0)
    for n in range(150):
        header = rng.choice([["user_id", "item_id", "rating"], ["user_id", "item_id"], ["a", "b"]])
        lines = [",".join(header)] + [",".join(rng.choice(cells) for _ in range(rng.randint(0, 4)))
                                      for _ in range(rng.randint(0, 4))]
        path = tmp_path / f"t{n}.csv"
        path.write_text("\n".join(lines) + "\n")
        for rating in (None, "rating"):
            try:
                ItemSimilarityRecommender().fit(path, user="user_id", item="item_id", rating=rating)
            except PippinError:
                pass


def test_random_sound_tables_give_only_pippin_errors(tmp_path):
    """The path,label reader too: binary files, NUL bytes, ragged rows."""
    from pippin.datasets import load_sound_dataset

    rng = random.Random(1)
    cells = ["", "a.wav", "x", '"', "\x00", "é", ",", ";", "\t", "path", "label", "\r", "\n"]
    for n in range(200):
        path = tmp_path / f"s{n}.csv"
        if n % 5 == 0:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(50)))
        else:
            path.write_text(("path,label\n" if n % 2 else "") + "".join(rng.choice(cells) for _ in range(30)))
        try:
            load_sound_dataset(path)
        except PippinError:
            pass
