"""Interaction tables <-> sparse user x item matrices, converted once at the boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..datasets.interactions import load_interactions
from .errors import RecommendError

__all__ = ["Interactions", "to_interactions", "encode_items"]


@dataclass
class Interactions:
    """A user x item matrix with the ids of its rows and columns.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
        Ratings (1 when the table has none); one entry per (user, item), the last
        row of a repeated pair wins.
    user_ids : np.ndarray [shape=(n_users,)]
    item_ids : np.ndarray [shape=(n_items,)]
        Sorted; int64 or str (object).
    has_ratings : bool
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    has_ratings: bool


def _ids(values: pd.Series) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.to_numpy(dtype=np.int64)
    return values.astype(str).to_numpy(dtype=object)


def to_interactions(source, *, user: str | None = None, item: str | None = None,
                    rating: str | None = None, item_ids: np.ndarray | None = None,
                    where: str | None = None) -> tuple[Interactions, int]:
    """Table, path or sparse matrix -> ``Interactions`` and the count of rows with unknown items.

    With ``item_ids`` (a fitted model's), columns follow it and rows naming other
    items are dropped and counted; otherwise the items are the table's own.

    Raises
    ------
    RecommendError
        ``user``/``item`` are not given for a table, or a sparse matrix is not 2-D.
    DatasetError
        The table is malformed (names the column or row).
    """
    if sp.issparse(source):
        X = sp.csr_matrix(source, dtype=np.float64)
        X.sum_duplicates()
        n_users, n_items = X.shape
        if item_ids is not None and len(item_ids) != n_items:
            raise RecommendError(f"matrix has {n_items} item columns, the model has {len(item_ids)} items",
                                 where="interactions")
        ids = np.arange(n_items, dtype=np.int64) if item_ids is None else item_ids
        has = bool(X.nnz) and not np.all(X.data == 1.0)
        return Interactions(X, np.arange(n_users, dtype=np.int64), ids, has), 0
    if user is None or item is None:
        raise RecommendError("a table needs user= and item= column names", where="interactions",
                             hint="e.g. fit(table, user='user_id', item='item_id')")
    table = load_interactions(source, user=user, item=item, rating=rating, where=where)
    users, user_codes = np.unique(_ids(table[user]), return_inverse=True)
    items_col = _ids(table[item])
    if item_ids is None:
        item_ids, cols = np.unique(items_col, return_inverse=True)
        unknown = 0
    else:
        cols, known = encode_items(item_ids, items_col)
        unknown = int((~known).sum())
        user_codes, cols = user_codes[known], cols[known]
        table = table[known]
    values = table[rating].to_numpy(np.float64) if rating else np.ones(len(cols))
    # last row of a repeated (user, item) pair wins: keep the last occurrence of each key
    key = user_codes.astype(np.int64) * len(item_ids) + cols
    _, last = np.unique(key[::-1], return_index=True)
    keep = len(key) - 1 - last
    X = sp.csr_matrix((values[keep], (user_codes[keep], cols[keep])), shape=(len(users), len(item_ids)))
    X.sort_indices()
    return Interactions(X, users, item_ids, rating is not None), unknown


def encode_items(item_ids: np.ndarray, items) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``items`` in the sorted ``item_ids`` and which of them are known.

    Returns
    -------
    codes : np.ndarray[int64] [shape=(n,)]
        Index into ``item_ids`` (0 where unknown).
    known : np.ndarray[bool] [shape=(n,)]
    """
    items = list(items) if not isinstance(items, np.ndarray) else items
    valid = np.ones(len(items), dtype=bool)
    if item_ids.dtype == object:
        items = np.asarray([str(v) for v in items], dtype=object)
    else:  # integer ids: anything that is not an integer is unknown
        numbers = pd.to_numeric(pd.Series(items, dtype=object), errors="coerce").to_numpy(np.float64)
        valid = np.isfinite(numbers) & (np.mod(numbers, 1) == 0)
        items = np.where(valid, numbers, 0).astype(np.int64)
    if len(item_ids) == 0 or len(items) == 0:
        return np.zeros(len(items), dtype=np.int64), np.zeros(len(items), dtype=bool)
    codes = np.searchsorted(item_ids, items)
    codes = np.minimum(codes, len(item_ids) - 1)
    known = (item_ids[codes] == items) & valid
    return np.where(known, codes, 0).astype(np.int64), np.asarray(known, dtype=bool)
