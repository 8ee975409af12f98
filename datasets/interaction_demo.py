"""A small generated interaction dataset with the structure of real ones, for a first run.

Items belong to taste clusters and have Zipf-like popularity (a few hits, a long
niche tail); each user likes one or two clusters, has a log-normal activity, and
mostly picks items from their clusters, sometimes a hit from anywhere. Ratings are
higher inside a user's clusters. Seeded: the same arguments give the same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["make_demo_interactions"]


def make_demo_interactions(*, n_users: int = 500, n_items: int = 200, n_clusters: int = 5,
                           seed: int = 0) -> pd.DataFrame:
    """Generate the demo table.

    Parameters
    ----------
    n_users, n_items, n_clusters : int > 0
        Sizes; items are named ``"item-000"``..., users ``"user-000"``....
    seed : int
        Random seed.

    Returns
    -------
    pandas.DataFrame [shape=(n_interactions, 4)]
        Columns ``user_id`` (str), ``item_id`` (str), ``rating`` (float64, 1..5),
        ``cluster`` (the item's taste cluster, for inspection).
    """
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, n_clusters, n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 5.0)  # hits and a niche tail
    user_likes = np.zeros((n_users, n_clusters), dtype=bool)
    user_likes[np.arange(n_users), rng.integers(0, n_clusters, n_users)] = True
    second = rng.random(n_users) < 0.4
    user_likes[np.flatnonzero(second), rng.integers(0, n_clusters, int(second.sum()))] = True
    activity = np.clip(np.round(rng.lognormal(np.log(12), 0.6, n_users)), 3, n_items // 2).astype(int)
    users, items, ratings = [], [], []
    for u in range(n_users):
        liked = user_likes[u, item_cluster]
        weights = popularity * np.where(liked, 1.0, 0.08)
        chosen = rng.choice(n_items, size=activity[u], replace=False, p=weights / weights.sum())
        base = np.where(liked[chosen], 4.2, 2.6)
        users.extend([u] * len(chosen))
        items.extend(chosen.tolist())
        ratings.extend(np.clip(np.round(base + rng.normal(0, 0.8, len(chosen))), 1, 5).tolist())
    items = np.asarray(items)
    return pd.DataFrame({
        "user_id": [f"user-{u:03d}" for u in users],
        "item_id": [f"item-{i:03d}" for i in items],
        "rating": np.asarray(ratings, dtype=np.float64),
        "cluster": item_cluster[items],
    })
