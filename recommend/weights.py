"""implicit's BM25 and TF-IDF item weights, bit for bit, without implicit's copies.

``similarity.bm25``/``tfidf`` used ``bm25_weight(X.T).T`` and ``normalize(tfidf_weight(X.T)).T``:
a COO copy of ``X`` (16 bytes per interaction), float64 temporaries of every entry, then a
CSR copy, which set the fit's peak memory (20M interactions, 5k items: 7 MB above
``BM25Recommender``'s). Here each entry's weight is computed in one compiled pass, operation
for operation as implicit does (per-item sums over users in ascending order, as its COO
walk adds them), and stored as float32 (the walks' dtype) in a CSR sharing ``X``'s index
arrays: 4 bytes per interaction. Only for canonical float64 ``X``; otherwise implicit's
functions run as before.

``item_counts``/``item_sums`` are ``np.bincount`` over ``X.indices`` (unweighted, or weighted by
the values or their squares), adding in the same order, without the int64 copy of the indices
that ``np.bincount`` makes of int32 input (8 bytes per interaction: 136 MB at 20M log-normal
interactions x 5k items, where it set the jaccard fit's peak).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

__all__ = ["bm25_weights", "item_counts", "item_sums", "tfidf_weights"]


@njit(nogil=True, cache=True)
def _count_into(indices, out):
    for e in range(indices.shape[0]):
        out[indices[e]] += 1


@njit(nogil=True, cache=True, error_model="numpy")
def _sum_into(indices, data, squared, out):
    for e in range(indices.shape[0]):  # entries in order: np.bincount's order of additions
        v = np.float64(data[e])
        out[indices[e]] += v * v if squared else v


def item_counts(X: sp.csr_matrix) -> np.ndarray:
    """Stored entries per column of ``X`` [shape=(n_items,)], int64: ``np.bincount(X.indices)``."""
    out = np.zeros(X.shape[1], dtype=np.int64)
    _count_into(X.indices, out)
    return out


def item_sums(X: sp.csr_matrix, *, squared: bool = False) -> np.ndarray:
    """Per-column sums of ``X``'s values (or their squares) as float64 [shape=(n_items,)], bit for
    bit ``np.bincount(X.indices, weights=X.data.astype(np.float64) (** 2))``."""
    out = np.zeros(X.shape[1], dtype=np.float64)
    _sum_into(X.indices, X.data, bool(squared), out)
    return out


def _applies(X: sp.csr_matrix) -> bool:
    return X.dtype == np.float64 and X.has_canonical_format


def _idf(X: sp.csr_matrix) -> np.ndarray:
    """implicit's per-user idf over the item x user matrix [shape=(n_users,)]."""
    return np.log(float(X.shape[1])) - np.log1p(np.diff(X.indptr).astype(np.int64))


@njit(nogil=True, cache=True, error_model="numpy")
def _bm25_entries(indptr, indices, data, length_norm, idf, k1, out):
    for u in range(indptr.shape[0] - 1):
        for e in range(indptr[u], indptr[u + 1]):
            r = data[e]
            out[e] = r * (k1 + 1.0) / (k1 * length_norm[indices[e]] + r) * idf[u]


@njit(nogil=True, cache=True, error_model="numpy")
def _tfidf_sums(indptr, indices, data, idf, s2):
    for u in range(indptr.shape[0] - 1):  # users ascending: bincount's order over implicit's COO
        for e in range(indptr[u], indptr[u + 1]):
            w = np.sqrt(data[e]) * idf[u]
            s2[indices[e]] += w * w


@njit(nogil=True, cache=True, error_model="numpy")
def _tfidf_entries(indptr, indices, data, idf, norm, out):
    for u in range(indptr.shape[0] - 1):
        for e in range(indptr[u], indptr[u + 1]):
            out[e] = np.sqrt(data[e]) * idf[u] / norm[indices[e]]


def _shared(X: sp.csr_matrix, values: np.ndarray) -> sp.csr_matrix:
    W = sp.csr_matrix((values, X.indices, X.indptr), shape=X.shape, copy=False)
    W.has_canonical_format = True
    return W


def bm25_weights(X: sp.csr_matrix, *, K1: float, B: float, fallback) -> sp.csr_matrix:
    """``bm25_weight(X.T, K1, B).T`` as a CSR [shape=X.shape] of float32 values."""
    if not _applies(X):
        return sp.csr_matrix(fallback(X.T, K1=K1, B=B).T)
    row_sums = item_sums(X)  # per item, users ascending
    length_norm = (1.0 - B) + B * row_sums / row_sums.mean()
    out = np.empty(X.nnz, dtype=np.float32)
    _bm25_entries(X.indptr, X.indices, X.data, length_norm, _idf(X), float(K1), out)
    return _shared(X, out)


def tfidf_weights(X: sp.csr_matrix, *, fallback) -> sp.csr_matrix:
    """``normalize(tfidf_weight(X.T)).T`` as a CSR [shape=X.shape] of float32 values;
    ``fallback`` is that composition."""
    if not _applies(X):
        return sp.csr_matrix(fallback(X))
    idf = _idf(X)
    s2 = np.zeros(X.shape[1])
    _tfidf_sums(X.indptr, X.indices, X.data, idf, s2)
    out = np.empty(X.nnz, dtype=np.float32)
    _tfidf_entries(X.indptr, X.indices, X.data, idf, np.sqrt(s2), out)
    return _shared(X, out)
