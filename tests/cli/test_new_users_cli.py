"""Issue 13 item 4: new users get the most popular items; ``--items id:rating``; unknown ids are named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import pippin.pipelines as pp
from pippin.pipelines.cli.main import main
from pippin.recommend import ItemSimilarityRecommender
from pippin.spec import io as spec_io


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("newusers")
    rng = np.random.default_rng(3)
    n_users, n_items = 80, 30
    weights = 1.0 / (rng.permutation(n_items) + 2.0)  # a few hits, a long tail; ids not in popularity order
    rows = [(u, int(i), float(rng.integers(1, 6))) for u in range(n_users)
            for i in rng.choice(n_items, size=6, replace=False, p=weights / weights.sum())]
    table = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    table["item_id"] += 100
    table.to_csv(folder / "t.csv", index=False)
    model = folder / "m.mlmodel"
    assert main(["train", "recommender", str(folder / "t.csv"), "-o", str(model), "--rating-col", "rating",
                 "--similarity", "cosine", "--json"]) == 0
    ref = ItemSimilarityRecommender(similarity="cosine").fit(table, user="user_id", item="item_id", rating="rating")
    counts = table.groupby("item_id").size()
    popular = sorted(counts.index, key=lambda i: (-counts[i], i))  # most interactions first, ties by id
    return model, ref, popular


@pytest.mark.parametrize("items", ["999999", "", "999999,-5,abc"])
def test_unknown_or_empty_history_gets_the_most_popular_items(trained, capsys, items):
    model, _, popular = trained
    code, out, err = _run(capsys, "recommend", str(model), "--items", items, "--k", "5", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["fallback"] == "popularity"
    assert payload["items"] == popular[:5] and payload["scores"] == [0.0] * 5
    named = [v for v in items.split(",") if v]
    assert payload["unknown_ids"] == [int(v) if v.lstrip("-").isdigit() else v for v in named]
    code, out, err = _run(capsys, "recommend", str(model), "--items", items, "--k", "5")
    assert code == 0 and "most popular" in err
    for value in named:
        assert repr(int(value) if value.lstrip("-").isdigit() else value) in err


def test_items_take_ratings(trained, capsys):
    model, ref, _ = trained
    a, b = (int(v) for v in ref.item_ids_[:2])
    code, out, err = _run(capsys, "recommend", str(model), "--items", f"{a}:5,{b}:1.5", "--k", "4", "--json")
    payload = json.loads(out)
    want_ids, want_scores = ref.recommend_from_interactions({a: 5.0, b: 1.5}, k=4)
    assert code == 0 and payload["unknown_ids"] == [] and payload["fallback"] is None
    assert payload["items"] == [int(v) for v in want_ids]
    np.testing.assert_allclose(payload["scores"], want_scores, rtol=1e-9)
    _, plain_scores = ref.recommend_from_interactions([a, b], k=4)
    assert not np.allclose(payload["scores"], plain_scores)  # the ratings were used, not read as unknown ids
    code, _, err = _run(capsys, "recommend", str(model), "--items", f"{a}:five")
    assert code == 2 and "rating 'five'" in err


def test_popularity_travels_in_the_file_and_the_runtime_uses_it(trained):
    model, ref, popular = trained
    spec = spec_io.load(model)
    counts = [int(v) for v in spec.description.metadata.userDefined["item_popularity"].split(",")]
    assert counts == ref.popularity_.tolist() and len(counts) == ref.n_items_
    runtime = pp.load(model)
    out = runtime.predict_batch({"items": [{}, {999999: 1.0}, {popular[0]: 1.0}], "k": np.array([3, 3, 3])})
    assert out["recommendations"][0] == popular[:3] and out["recommendations"][1] == popular[:3]
    assert out["recommendations"][2] != popular[:3]  # a known item scores as Core ML does
    assert list(runtime.fallback_rows) == [0, 1]
    # the estimator answers a new user the same way
    ids, scores = ref.recommend_from_interactions(["nope"], k=3)
    assert list(ids) == popular[:3] and list(scores) == [0.0, 0.0, 0.0]
    ids, _ = ref.recommend_from_interactions([], k=3, exclude=[popular[0]])
    assert list(ids) == popular[1:4]


def test_histories_new_users_get_the_popular_items(trained, tmp_path, capsys):
    model, _, popular = trained
    path = tmp_path / "h.csv"
    path.write_text(f"user_id,item_id,rating\nnewbie,424242,3\nold,{popular[0]},4\n")
    code, out, err = _run(capsys, "recommend", str(model), "--histories", str(path), "--k", "3", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["new_users"] == 1 and payload["unknown_ids"] == [424242]
    recs = [r for r in payload["recommendations"] if r["user_id"] == "newbie"]
    assert [r["item_id"] for r in recs] == popular[:3]
