"""ItemSimilarityRecommender files: export round trip (runtime, in-memory model, and the formula
evaluated independently on the coremltools-parsed spec), hand-built files, errors."""

from __future__ import annotations

import numpy as np
import pytest

from pippin import pipelines
from pippin.datasets import make_demo_interactions
from pippin.pipelines import PipelineError
from pippin.recommend import ItemSimilarityRecommender
from pippin.spec import Model, SpecError
from pippin.spec.validate import validate

coremltools = pytest.importorskip("coremltools")


@pytest.fixture(scope="module")
def fitted():
    table = make_demo_interactions(n_users=150, n_items=70, seed=5)
    return ItemSimilarityRecommender(similarity="pearson", top_k=12, threshold=0.0).fit(
        table, user="user_id", item="item_id", rating="rating")


def _oracle(spec, history: dict, k: int | None, exclude=None):
    """Core ML's formula read straight from the parsed message, with NumPy."""
    isr = spec.itemSimilarityRecommender
    ids = list(isr.itemStringIds.vector) or list(isr.itemInt64Ids.vector)
    n = len(ids)
    S, shift = np.zeros((n, n)), np.zeros(n)
    for entry in isr.itemItemSimilarities:
        shift[entry.itemId] = entry.itemScoreAdjustment
        for other in entry.similarItemList:
            S[entry.itemId, other.itemId] = other.similarityScore
    h = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    for item, rating in history.items():
        h[ids.index(item)] = rating - shift[ids.index(item)]
        seen[ids.index(item)] = True
    scores = h @ S
    excluded = seen if exclude is None else np.isin(np.arange(n), [ids.index(v) for v in exclude])
    cand = np.flatnonzero(~excluded)
    order = cand[np.lexsort((cand, -scores[cand]))][: (n if k is None else k)]
    return [ids[j] for j in order], scores[order]


def test_round_trip_file_model_and_oracle_agree(fitted, tmp_path):
    path = fitted.export(tmp_path / "rec.mlmodel")
    spec = coremltools.utils.load_spec(str(path))
    assert spec.specificationVersion == 4 and spec.WhichOneof("Type") == "itemSimilarityRecommender"
    assert validate(pipelines.load(path).spec) == []
    runtime = pipelines.load(path)
    rng = np.random.default_rng(0)
    histories = []
    for _ in range(25):
        items = rng.choice(fitted.item_ids_, size=rng.integers(1, 8), replace=False)
        histories.append({str(v): float(rng.integers(1, 6)) for v in items})
    batch = runtime.predict_batch({"items": histories, "k": np.full(25, 10)})
    for n, history in enumerate(histories):
        want_ids, want_scores = _oracle(spec, history, 10)
        assert batch["recommendations"][n] == want_ids
        got = np.array([batch["scores"][n][item] for item in want_ids])
        np.testing.assert_allclose(got, want_scores, rtol=1e-9, atol=1e-300)
        ids, scores = fitted.recommend_from_interactions(history, k=10)
        assert list(ids) == want_ids
        np.testing.assert_allclose(scores, want_scores, rtol=1e-9, atol=1e-300)
    one = runtime.predict({"items": histories[0]})  # no k: every candidate, as Core ML does
    assert len(one["recommendations"]) == fitted.n_items_ - len(histories[0])


def test_item_list_input_restrict_and_exclude(fitted, tmp_path):
    runtime = pipelines.load(fitted.export(tmp_path / "rec.mlmodel"))
    items = list(fitted.item_ids_[:3])
    as_list = runtime.predict({"items": items, "k": 5})
    as_dict = runtime.predict({"items": {v: 1.0 for v in items}, "k": 5})
    assert as_list == as_dict
    restrict = list(fitted.item_ids_[10:20])
    out = runtime.predict({"items": items, "k": 50, "restrict": restrict, "exclude": [restrict[0]]})
    assert set(out["recommendations"]) == set(restrict[1:])
    assert len(out["scores"]) == 9


def _hand_built(string_ids: bool | None):
    spec = Model()
    spec.specificationVersion = 4
    inp = spec.description.input.add()
    inp.name = "likes"
    inp.type.sequenceType.int64Type.SetInParent() if not string_ids else inp.type.sequenceType.stringType.SetInParent()
    out = spec.description.output.add()
    out.name = "recs"
    out.type.sequenceType.int64Type.SetInParent() if not string_ids else out.type.sequenceType.stringType.SetInParent()
    isr = spec.itemSimilarityRecommender
    for i, neighbours in enumerate([{1: 0.5, 2: 0.25}, {0: 0.5}, {0: 2.0, 3: 1.0}, {}]):
        entry = isr.itemItemSimilarities.add()
        entry.itemId = i
        for j, s in neighbours.items():
            c = entry.similarItemList.add()
            c.itemId, c.similarityScore = j, s
    isr.itemItemSimilarities[2].itemScoreAdjustment = 0.5
    if string_ids:
        isr.itemStringIds.vector.extend(["a", "b", "c", "d"])
    isr.recommendedItemListOutputFeatureName = "recs"
    return spec


def test_hand_built_file_without_ids_or_input_name(tmp_path):
    spec = _hand_built(string_ids=None)
    model = pipelines.load(spec)  # ids 0..3; the only input is the item input
    # user has items 0 and 2 (rating 1): score(k) = sim(0->k)*(1-0) + sim(2->k)*(1-0.5)
    # item 1: 0.5, item 3: 0.5 -> tie broken by index; item 0/2 excluded
    assert model.predict({"likes": [0, 2]})["recs"] == [1, 3]
    assert model.predict({"likes": [2]})["recs"] == [0, 3, 1]


def test_hand_built_string_ids_batch(tmp_path):
    model = pipelines.load(_hand_built(string_ids=True))
    out = model.predict_batch({"likes": [["a"], ["c"], ["zzz"]]})
    assert out["recs"] == [["b", "c", "d"], ["a", "d", "b"], ["a", "b", "c", "d"]]
    assert model.unknown_items == 1


def test_broken_files_raise(tmp_path):
    spec = _hand_built(string_ids=True)
    del spec.itemSimilarityRecommender.itemStringIds.vector[3:]
    spec.itemSimilarityRecommender.itemItemSimilarities[2].similarItemList[1].itemId = 3
    with pytest.raises(SpecError, match="out of range|item index 3 is used"):  # the validator's words
        pipelines.load(spec)
    spec = _hand_built(string_ids=True)
    spec.itemSimilarityRecommender.recommendedItemListOutputFeatureName = ""
    with pytest.raises(SpecError, match="no output|recommendedItemListOutputFeatureName"):
        pipelines.load(spec)
    model = pipelines.load(_hand_built(string_ids=True))
    with pytest.raises(PipelineError, match="missing input 'likes'"):
        model.predict({})
