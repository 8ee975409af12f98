"""Ranking metrics against hand-computed values, and the split helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pippin.recommend import (coverage, leave_last_out, map_at_k, ndcg_at_k, precision_at_k, random_holdout,
                              recall_at_k)

# two users, five items; user 0 holds out {1, 3}, user 1 holds out {4}
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=float))
RANKED = np.array([[1, 0, 3], [2, 0, -1]])


def test_metrics_by_hand():
    assert precision_at_k(RANKED, RELEVANT, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert precision_at_k(RANKED, RELEVANT, 1) == pytest.approx((1 + 0) / 2)
    assert recall_at_k(RANKED, RELEVANT, 3) == pytest.approx((2 / 2 + 0) / 2)
    # user 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(3, 2)
    assert map_at_k(RANKED, RELEVANT, 3) == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx((dcg / idcg + 0) / 2)
    assert coverage(RANKED, 5, 3) == pytest.approx(4 / 5)  # items {0, 1, 2, 3}; -1 is padding
    assert coverage(RANKED, 5, 1) == pytest.approx(2 / 5)


def test_coverage_ignores_padding():
    assert coverage(np.array([[-1, -1]]), 4, 2) == 0.0
    assert coverage(np.array([[0, 1], [1, 2]]), 4, 2) == pytest.approx(3 / 4)


def test_random_holdout_is_per_user_seeded_and_disjoint():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"u": np.repeat(np.arange(30), 10), "i": rng.integers(0, 1000, 300)})
    train, test = random_holdout(table, user="u", fraction=0.2, seed=0)
    assert len(train) + len(test) == 300 and not set(train.index) & set(test.index)
    assert (test.groupby("u").size() == 2).all()
    again, _ = random_holdout(table, user="u", fraction=0.2, seed=0)
    other, _ = random_holdout(table, user="u", fraction=0.2, seed=1)
    assert again.index.equals(train.index) and not other.index.equals(train.index)


def test_leave_last_out_by_time():
    table = pd.DataFrame({"u": [1, 1, 1, 2, 2, 3], "i": [1, 2, 3, 4, 5, 6], "t": [30, 10, 20, 5, 6, 1]})
    train, test = leave_last_out(table, user="u", timestamp="t", n=1)
    assert sorted(test["i"]) == [1, 5]  # latest of each user; user 3 keeps its only row
    assert sorted(train["i"]) == [2, 3, 4, 6]
