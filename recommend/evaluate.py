"""Ranking metrics at several cutoffs, and train/test split helpers.

Metrics take ranked item codes [shape=(n_users, k)] (``-1`` pads) and each user's
held-out items, and average over users with at least one held-out item:

* ``precision@k`` = hits in the top k / k (true precision, not hits / min(k, |test|))
* ``recall@k`` = hits in the top k / |test|
* ``map@k`` = sum over hit ranks r of precision@r, / min(k, |test|)
* ``ndcg@k`` = sum over hit ranks r of 1/log2(r + 1), / the same for a perfect ranking
* ``coverage@k`` = distinct items recommended in anyone's top k / n_items
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import RecommendError
from .matrix import to_interactions

__all__ = ["precision_at_k", "recall_at_k", "map_at_k", "ndcg_at_k", "coverage", "evaluate",
           "random_holdout", "leave_last_out"]


def _hits(ranked: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """[shape=(n_users, k)] bool: whether each ranked item is held out for its user."""
    ranked = np.asarray(ranked)[:, :k]
    n_items = relevant.shape[1]
    rel_keys = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr)) * n_items \
        + relevant.indices
    keys = np.arange(ranked.shape[0], dtype=np.int64)[:, np.newaxis] * n_items + ranked
    return np.isin(keys, rel_keys) & (ranked >= 0)


def _sizes(relevant: sp.csr_matrix) -> np.ndarray:
    return np.diff(relevant.indptr).astype(np.float64)


def precision_at_k(ranked, relevant: sp.csr_matrix, k: int) -> float:
    """Mean of hits@k / k. ``relevant`` [shape=(n_users, n_items)] marks held-out items."""
    return float(np.mean(_hits(ranked, relevant, k).sum(axis=1) / k))


def recall_at_k(ranked, relevant: sp.csr_matrix, k: int) -> float:
    """Mean of hits@k / |held out|."""
    return float(np.mean(_hits(ranked, relevant, k).sum(axis=1) / np.maximum(_sizes(relevant), 1)))


def map_at_k(ranked, relevant: sp.csr_matrix, k: int) -> float:
    """Mean average precision at k."""
    hits = _hits(ranked, relevant, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denom = np.maximum(np.minimum(_sizes(relevant), k), 1)
    return float(np.mean((precision * hits).sum(axis=1) / denom))


def ndcg_at_k(ranked, relevant: sp.csr_matrix, k: int) -> float:
    """Mean normalized discounted cumulative gain at k (binary relevance)."""
    hits = _hits(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(_sizes(relevant), k).astype(int)]
    return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))


def coverage(ranked, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    top = np.asarray(ranked)[:, :k]
    return float(np.unique(top[top >= 0]).size / max(n_items, 1))


def evaluate(model, history, holdout, *, user: str, item: str, rating: str | None = None,
             ks=(5, 10, 20), exclude_seen: bool = True) -> dict:
    """Recommend from ``history`` and score against ``holdout`` at every cutoff in ``ks``.

    Parameters
    ----------
    model : ItemSimilarityRecommender
        Fitted.
    history, holdout : pandas.DataFrame or path
        Interaction tables (holdout needs only the user and item columns).
    ks : sequence of int
        Cutoffs.

    Returns
    -------
    dict
        ``precision@k``, ``recall@k``, ``map@k``, ``ndcg@k``, ``coverage@k`` for each k,
        ``users`` (evaluated: those with held-out items the model knows) and
        ``unknown_holdout_items`` (held-out rows naming items the model never saw).
    """
    model._check_fitted()
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise RecommendError(f"cutoffs {ks} must be positive integers", where="k")
    hist, _ = to_interactions(history, user=user, item=item, rating=rating, item_ids=model.item_ids_)
    test, unknown = to_interactions(holdout, user=user, item=item, item_ids=model.item_ids_)
    test = _drop_empty(test)
    rows = np.searchsorted(hist.user_ids, test.user_ids)
    rows = np.minimum(rows, max(len(hist.user_ids) - 1, 0))
    found = (hist.user_ids[rows] == test.user_ids) if len(hist.user_ids) else np.zeros(len(rows), bool)
    histories = sp.csr_matrix((len(test.user_ids), model.n_items_))
    if found.any():
        pick = sp.csr_matrix((np.ones(found.sum()), (np.flatnonzero(found), rows[found])),
                             shape=(len(test.user_ids), hist.matrix.shape[0]))
        histories = sp.csr_matrix(pick @ hist.matrix)
    if not hist.has_ratings:
        histories.data = np.ones_like(histories.data)
    ranked, _ = model._rank(histories, k=max(ks), exclude_seen=exclude_seen, exclude=None, restrict_to=None)
    out = {}
    for k in ks:
        out[f"precision@{k}"] = precision_at_k(ranked, test.matrix, k)
        out[f"recall@{k}"] = recall_at_k(ranked, test.matrix, k)
        out[f"map@{k}"] = map_at_k(ranked, test.matrix, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranked, test.matrix, k)
        out[f"coverage@{k}"] = coverage(ranked, model.n_items_, k)
    out["users"] = int(len(test.user_ids))
    out["unknown_holdout_items"] = int(unknown)
    return out


def _drop_empty(data):
    keep = np.diff(data.matrix.indptr) > 0
    data.matrix, data.user_ids = data.matrix[keep], data.user_ids[keep]
    return data


def random_holdout(table: pd.DataFrame, *, user: str, fraction: float = 0.2,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a random ``round(fraction * n_u)`` of each user's ``n_u`` interactions.

    Returns
    -------
    train, test : pandas.DataFrame
        Disjoint row subsets of ``table`` (original index kept).
    """
    if not 0 <= fraction < 1:
        raise RecommendError(f"fraction={fraction!r}; expected a number in [0, 1)", where="fraction")
    rng = np.random.default_rng(seed)
    keys = pd.Series(rng.random(len(table)), index=table.index)
    rank = keys.groupby(table[user].to_numpy()).rank(method="first") - 1
    n_u = table.groupby(user)[user].transform("size")
    test = rank.to_numpy() < np.round(fraction * n_u.to_numpy())
    return table[~test], table[test]


def leave_last_out(table: pd.DataFrame, *, user: str, timestamp: str,
                   n: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's last ``n`` interactions by ``timestamp`` (ties: later row last),
    always keeping at least one in training."""
    order = np.lexsort((np.arange(len(table)), table[timestamp].to_numpy()))
    ranked = table.iloc[order]
    from_end = ranked.groupby(user).cumcount(ascending=False).to_numpy()
    n_u = ranked.groupby(user)[user].transform("size").to_numpy()
    test = from_end < np.minimum(n, n_u - 1)
    return ranked[~test].sort_index(), ranked[test].sort_index()
