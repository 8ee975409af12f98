"""MovieLens 100K, per-user random 20% holdout (seed 0): pippin against implicit on the same split.

Both are scored with true precision@10 computed here (implicit's own
``ranking_metrics_at_k`` divides by min(k, |test|)). implicit's ``K`` counts the item
itself, pippin's ``top_k`` does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from pippin.datasets import load_movielens
from pippin.recommend import ItemSimilarityRecommender, evaluate, precision_at_k, random_holdout
from pippin.recommend.matrix import to_interactions

implicit_nn = pytest.importorskip("implicit.nearest_neighbours")


@pytest.fixture(scope="module")
def split(movielens_dir):
    ratings = load_movielens(movielens_dir)
    return random_holdout(ratings, user="user_id", fraction=0.2, seed=0)


def _implicit_precision(cls, train, test, *, K, rating):
    tr, _ = to_interactions(train, user="user_id", item="item_id", rating=rating)
    te, _ = to_interactions(test, user="user_id", item="item_id", item_ids=tr.item_ids)
    assert (te.user_ids == tr.user_ids).all()
    model = cls(K=K, num_threads=0)
    model.fit(tr.matrix, show_progress=False)
    ids, _ = model.recommend(np.arange(tr.matrix.shape[0]), tr.matrix, N=10, filter_already_liked_items=True)
    keep = np.diff(te.matrix.indptr) > 0
    return precision_at_k(ids[keep], te.matrix[keep], 10)


def _pippin_precision(train, test, *, rating, **params):
    model = ItemSimilarityRecommender(**params).fit(train, user="user_id", item="item_id", rating=rating)
    return evaluate(model, train, test, user="user_id", item="item_id", rating=rating, ks=(10,))["precision@10"]


def test_cosine_at_least_implicit_cosine(split):
    train, test = split
    ours = _pippin_precision(train, test, rating="rating", similarity="cosine", top_k=64)
    theirs = _implicit_precision(implicit_nn.CosineRecommender, train, test, K=64, rating="rating")
    assert ours >= theirs - 1e-12, (ours, theirs)
    assert ours > 0.28


def test_best_similarity_reaches_the_bar(split):
    train, test = split
    ours = _pippin_precision(train, test, rating=None, similarity="bm25", top_k=None, threshold=0.0)
    assert ours >= 0.335, ours
