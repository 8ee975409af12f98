"""ItemSimilarityRecommender: estimator conventions, inputs, and the Core ML scoring formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pippin.datasets import DatasetError, make_demo_interactions
from pippin.recommend import SIMILARITIES, ItemSimilarityRecommender, RecommendError


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_demo_interactions(n_users=120, n_items=60, seed=3)


def _fit(table, **params):
    return ItemSimilarityRecommender(**params).fit(table, user="user_id", item="item_id", rating="rating")


def _reference_rank(S: np.ndarray, shift: np.ndarray, H: np.ndarray, k: int, excluded: np.ndarray,
                    allowed: np.ndarray | None = None):
    """Dense Core ML formula: score = (H - shift on the user's items) @ S; rank by score, then index."""
    scores = np.where(H != 0, H - shift[None, :], 0.0) @ S
    ids, vals = [], []
    for u in range(H.shape[0]):
        cand = np.flatnonzero(~excluded[u] & (allowed[u] if allowed is not None else True))
        order = cand[np.lexsort((cand, -scores[u, cand]))][:k]
        ids.append(np.pad(order, (0, k - len(order)), constant_values=-1))
        vals.append(np.pad(scores[u, order], (0, k - len(order)), constant_values=-np.inf))
    return np.array(ids), np.array(vals)


def test_init_only_stores_and_fit_returns_self(table):
    model = ItemSimilarityRecommender(similarity="cosine", top_k=5, threshold=0.1)
    assert model.get_params() == {"similarity": "cosine", "top_k": 5, "threshold": 0.1, "progress": False,
                                  "l2": None, "neighbours": None, "popularity_exponent": 0.15,
                                  "user_weight_exponent": 0.25, "history_popularity_exponent": 0.2}
    assert not [name for name in vars(model) if name.endswith("_")]
    assert "similarity='cosine'" in repr(model)
    assert model.fit(table, user="user_id", item="item_id") is model
    assert model.n_items_ == 60 and model.n_users_ == 120
    assert model.similarity_.shape == (60, 60)
    assert model.set_params(top_k=7).top_k == 7


def test_not_fitted_errors():
    model = ItemSimilarityRecommender()
    for call in (lambda: model.recommend([0]), lambda: model.similar_items(["a"]),
                 lambda: model.export("x.mlmodel"), lambda: model.recommend_from_interactions(["a"])):
        with pytest.raises(RecommendError, match="not fitted"):
            call()


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_recommend_many_users_matches_dense_formula(table, name):
    model = _fit(table, similarity=name, top_k=8, threshold=0.0)
    S = model.similarity_.toarray()
    H = model.interactions_.toarray()
    users = model.user_ids_[:40]
    ids, scores = model.recommend(users, k=12)
    ref_codes, ref_scores = _reference_rank(S, model.shift_, H[:40], 12, H[:40] != 0)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-9, atol=1e-12)
    assert (ids == model.item_ids_[ref_codes]).all()


def test_exclude_restrict_and_padding(table):
    model = _fit(table, similarity="cosine", top_k=5)
    S, H = model.similarity_.toarray(), model.interactions_.toarray()[:10]
    exclude, restrict = model.item_ids_[:3], model.item_ids_[::4]
    ids, scores = model.recommend(model.user_ids_[:10], k=20, exclude=exclude, restrict_to=restrict)
    excluded = (H != 0) | np.isin(np.arange(60), np.arange(3))[None, :]
    allowed = np.broadcast_to(np.isin(np.arange(60), np.arange(0, 60, 4)), H.shape)
    ref_codes, ref_scores = _reference_rank(S, model.shift_, H, 20, excluded, allowed)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-9)
    padded = ref_codes < 0
    assert padded.any()  # fewer than 20 candidates: padded with -1 / -inf
    assert (ids[padded] == -1).all() and np.isneginf(scores[padded]).all()
    assert (ids[~padded] == model.item_ids_[ref_codes[~padded]]).all()


def test_always_k_items_when_k_candidates_exist(table):
    model = _fit(table, similarity="jaccard", top_k=2, threshold=0.5)  # a sparse table: many zero scores
    ids, scores = model.recommend(model.user_ids_, k=30)
    assert (ids != -1).all() and np.isfinite(scores).all()


def test_recommend_from_interactions_is_one_new_user(table):
    model = _fit(table, similarity="pearson", top_k=10)
    history = {model.item_ids_[1]: 5.0, model.item_ids_[7]: 2.0, "no-such-item": 4.0}
    ids, scores = model.recommend_from_interactions(history, k=6)
    assert model.n_unknown_ == 1
    H = np.zeros((1, 60))
    H[0, [1, 7]] = [5.0, 2.0]
    ref_codes, ref_scores = _reference_rank(model.similarity_.toarray(), model.shift_, H, 6, H != 0)
    np.testing.assert_allclose(scores, ref_scores[0], rtol=1e-9)
    assert list(ids) == list(model.item_ids_[ref_codes[0]])
    one_ids, _ = model.recommend(sp.csr_matrix(H), k=6)
    assert list(one_ids[0]) == list(ids)


def test_similar_items(table):
    model = _fit(table, similarity="cosine", top_k=4)
    ids, scores = model.similar_items(list(model.item_ids_[:3]), k=6)
    assert ids.shape == (3, 6)
    for r in range(3):
        row = model.similarity_.toarray()[r]
        best = np.lexsort((np.arange(60), -row))[:4]
        best = best[row[best] > 0]
        assert list(ids[r, : len(best)]) == list(model.item_ids_[best])
        assert (ids[r, len(best):] == -1).all()
    single, _ = model.similar_items(model.item_ids_[0], k=2)
    assert single.shape == (2,)
    with pytest.raises(RecommendError, match="unknown item"):
        model.similar_items(["nope"])


def test_inputs_dataframe_paths_and_sparse_agree(table, tmp_path):
    table = table[["user_id", "item_id", "rating"]]
    ref = _fit(table, similarity="cosine", top_k=5)
    for path in (tmp_path / "t.csv", tmp_path / "t.tsv", tmp_path / "t.parquet"):
        if path.suffix == ".parquet":
            table.to_parquet(path)
        else:
            table.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
        other = ItemSimilarityRecommender(similarity="cosine", top_k=5).fit(path, user="user_id", item="item_id",
                                                                            rating="rating")
        assert (other.similarity_ != ref.similarity_).nnz == 0
    matrix = ItemSimilarityRecommender(similarity="cosine", top_k=5).fit(ref.interactions_)
    np.testing.assert_allclose(matrix.similarity_.toarray(), ref.similarity_.toarray())
    assert matrix.item_ids_.dtype == np.int64 and ref.item_ids_.dtype == object


def test_integer_ids_and_duplicates_last_wins():
    table = pd.DataFrame({"u": [1, 1, 2, 2, 3, 1], "i": [10, 20, 10, 30, 20, 10], "r": [1, 2, 3, 4, 5, 9.0]})
    model = ItemSimilarityRecommender(similarity="cosine").fit(table, user="u", item="i", rating="r")
    assert model.item_ids_.tolist() == [10, 20, 30]
    assert model.interactions_.toarray()[0].tolist() == [9.0, 2.0, 0.0]
    ids, _ = model.recommend(1, k=3)
    assert ids.tolist() == [30, -1, -1]


def test_bad_input_errors(table, tmp_path):
    with pytest.raises(DatasetError, match="no item column 'nope'"):
        ItemSimilarityRecommender().fit(table, user="user_id", item="nope")
    with pytest.raises(RecommendError, match="similarity='euclid'"):
        ItemSimilarityRecommender(similarity="euclid").fit(table, user="user_id", item="item_id")
    with pytest.raises(RecommendError, match="top_k=0"):
        ItemSimilarityRecommender(top_k=0).fit(table, user="user_id", item="item_id")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\na,x,1\nb,y,lots\n")
    with pytest.raises(DatasetError, match=r"bad.csv: row 3, column 'rating'"):
        ItemSimilarityRecommender().fit(bad, user="user_id", item="item_id", rating="rating")
    model = _fit(table, top_k=3)
    with pytest.raises(RecommendError, match="unknown user"):
        model.recommend(["nobody"])
    with pytest.raises(RecommendError, match="k=-1"):
        model.recommend(model.user_ids_[:1], k=-1)
