"""pippin train recommender / recommend / evaluate (recommenders), end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pippin.datasets import make_demo_interactions
from pippin.pipelines.cli.main import main
from pippin.recommend import ItemSimilarityRecommender, evaluate, random_holdout


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rec")
    table = make_demo_interactions(n_users=150, n_items=60, seed=2)[["user_id", "item_id", "rating"]]
    train, test = random_holdout(table, user="user_id", seed=0)
    train.to_csv(folder / "train.csv", index=False)
    test.to_parquet(folder / "test.parquet")
    return folder, train, test


def test_train_recommend_evaluate(tables, capsys):
    folder, train, test = tables
    model = str(folder / "m.mlmodel")
    code, out, _ = _run(capsys, "train", "recommender", str(folder / "train.csv"), "-o", model,
                        "--rating-col", "rating", "--similarity", "cosine", "--top-k", "10", "--json")
    assert code == 0 and json.loads(out)["items"] == 60
    ref = ItemSimilarityRecommender(similarity="cosine", top_k=10).fit(train, user="user_id", item="item_id",
                                                                       rating="rating")
    items = list(ref.item_ids_[:3])
    code, out, _ = _run(capsys, "recommend", model, "--items", ",".join(items + ["nope"]), "--k", "4", "--json")
    payload = json.loads(out)
    want_ids, want_scores = ref.recommend_from_interactions(items, k=4)
    assert payload["items"] == list(want_ids) and payload["unknown_items"] == 1
    np.testing.assert_allclose(payload["scores"], want_scores, rtol=1e-9)

    code, out, _ = _run(capsys, "recommend", model, "--items", ",".join(items), "--k", "4",
                        "--exclude", want_ids[0], "--json")
    assert json.loads(out)["items"][:3] == list(want_ids[1:])

    out_csv = folder / "recs.csv"
    code, out, _ = _run(capsys, "recommend", model, "--histories", str(folder / "train.csv"),
                        "--rating-col", "rating", "--k", "5", "-o", str(out_csv))
    recs = pd.read_csv(out_csv)
    assert code == 0 and len(recs) == 5 * train["user_id"].nunique()
    first = recs[recs["user_id"] == ref.user_ids_[0]]
    ids, scores = ref.recommend([ref.user_ids_[0]], k=5)
    assert first["item_id"].tolist() == list(ids[0])
    np.testing.assert_allclose(first["score"], scores[0], rtol=1e-9)

    for k in ("10", "5"):
        code, out, _ = _run(capsys, "evaluate", model, "--history", str(folder / "train.csv"),
                            "--holdout", str(folder / "test.parquet"), "--rating-col", "rating", "--k", k, "--json")
        payload = json.loads(out)
        assert code == 0
        expected = evaluate(ref, train, test, user="user_id", item="item_id", rating="rating", ks=(int(k), 10))
        for key in ("precision@10", "recall@10", "map@10", "ndcg@10", f"precision@{k}", f"ndcg@{k}"):
            assert payload[key] == pytest.approx(expected[key])
        assert payload["coverage"] == pytest.approx(expected[f"coverage@{k}"])
        assert payload["users"] == expected["users"]


def test_errors_are_one_line(tables, capsys):
    folder, _, _ = tables
    code, _, err = _run(capsys, "train", "recommender", str(folder / "train.csv"), "-o", str(folder / "x.mlmodel"),
                        "--item-col", "song")
    assert code == 2 and "no item column 'song'" in err and err.count("\n") == 1
    code, out, _ = _run(capsys, "recommend", str(folder / "nothing.mlmodel"), "--items", "a", "--json")
    assert code == 2 and json.loads(out)["error"]["type"] == "SpecError"
    code, _, err = _run(capsys, "train", "recommender", str(folder / "train.csv"), "-o", str(folder / "x.mlmodel"),
                        "--top-k", "many")
    assert code == 2 and "--top-k" in err


def test_demo_first_run(tmp_path, capsys):
    model = str(tmp_path / "demo.mlmodel")
    code, out, _ = _run(capsys, "train", "recommender", "--demo", "-o", model, "--rating-col", "rating", "--json")
    assert code == 0 and json.loads(out)["users"] == 500
    code, out, _ = _run(capsys, "recommend", model, "--items", "item-001,item-002", "--k", "3", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 3
    code, _, err = _run(capsys, "train", "recommender", "-o", model)
    assert code == 2 and "TABLE or --demo" in err
