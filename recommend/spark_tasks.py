"""What ``pippin.recommend.spark`` runs inside Spark tasks: pandas in, pandas out, no pyspark.

Every function reproduces, bit for bit, a step of the single-machine fit
(``similarity.SIMILARITIES`` then ``similarity.item_similarity``) on the part of the
data one task holds; ``tests/spark`` checks each against the single-machine code.

- ``item_statistics``: per-item sums over that item's complete column, users in
  ascending id order (the order ``np.bincount`` sums them in over a CSR matrix).
- ``entry_weights``: each interaction's weight from its rating, its item's statistics
  and its user's activity (implicit's ``bm25_weight``/``tfidf_weight``/``normalize``,
  written out per entry with the same operations in the same order).
- ``tile_topk``: the ``top_k`` rows of items of block ``b`` against the items of block
  ``c`` with ``kernels.topk_block``: a tile holds both items' complete columns, so every
  pair's co-occurrence is summed by one task, over the same users in the same order
  as on one machine, and the float32 sums are the same bits.
- ``raw_tile``: the one-shuffle fit of the similarities whose item statistics need
  nothing but the item's own column (``ITEM_LOCAL``): a tile gets the raw rows of its
  items and does the rest itself: de-duplication, the statistics of its items (from
  their complete columns, so the same bits), the weights and ``tile_topk``.
- ``single_tile``: ``raw_tile`` for one tile holding the whole table (the single-tile plan):
  the rows arrive in table order, and the id checks and user count come back with it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import kernels
from .matrix import encode_items

__all__ = ["BM25_K1", "BM25_B", "ITEM_LOCAL", "whole_groups", "last_rows", "item_statistics", "entry_weights",
           "tile_topk", "raw_tile", "single_tile"]

# must equal the values ``similarity.bm25`` passes to implicit's bm25_weight (tests check the result)
BM25_K1, BM25_B = 1.2, 0.75
#: similarities whose per-item statistics and entry weights need only the item's own column
#: (pearson only without ratings: with them, whether they vary is a property of the whole table)
ITEM_LOCAL = ("cosine", "jaccard", "lift", "cooccurrence", "pearson")


def whole_groups(batches, key: str):
    """Re-cut a stream of frames sorted by ``key`` so no group of equal keys spans two frames."""
    carry = None
    for frame in batches:
        if carry is not None and len(carry):
            frame = pd.concat([carry, frame], ignore_index=True)
        if not len(frame):
            continue
        keys = frame[key].to_numpy()
        first = int(np.flatnonzero(keys == keys[-1])[0])
        carry = frame.iloc[first:]
        if first:
            yield frame.iloc[:first].reset_index(drop=True)
    if carry is not None and len(carry):
        yield carry.reset_index(drop=True)


def last_rows(batches):
    """Frames ``(u, i, r, seq)`` sorted by (item, user, row order) -> ``(u, i, r)``, one row per
    (user, item): the last in table order (a repeated pair's last rating wins)."""
    for frame in whole_groups(batches, "i"):
        yield frame.drop_duplicates(["i", "u"], keep="last")[["u", "i", "r"]]


def _inverse(values: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values, dtype=np.float64)
    np.divide(1.0, values, out=out, where=values > 0)
    return out


def _idf(user_counts: np.ndarray, n_items: int) -> np.ndarray:
    """implicit's per-user idf over the item x user matrix: log(N) - log1p(user's item count)."""
    return np.log(float(n_items)) - np.log1p(np.asarray(user_counts, dtype=np.int64))


def item_statistics(batches, *, similarity: str, n_items: int):
    """Per-item ``count``, ``s1``, ``s2``, ``lo``, ``hi`` of frames ``(i, u, r[, uc])`` sorted by (item, user).

    ``s1``: sum of ratings (pearson, bm25). ``s2``: sum of squares of the similarity's
    pre-normalization weights (cosine: ratings; pearson: centred ratings; tfidf:
    ``sqrt(r) * idf``). Sums run over users in ascending order. ``lo``/``hi``: the
    item's lowest and highest rating (pearson falls back to 0/1 data when all are equal).
    """
    for frame in whole_groups(batches, "i"):
        ids = frame["i"].to_numpy(dtype=object if frame["i"].dtype.kind not in "iu" else np.int64)
        r = frame["r"].to_numpy(np.float64)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        codes = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(ids)]))
        count, s1, s2 = _sums(codes, r, similarity, frame["uc"].to_numpy() if "uc" in frame else None, n_items)
        yield pd.DataFrame({"i": ids[starts], "count": count, "s1": s1, "s2": s2,
                            "lo": np.minimum.reduceat(r, starts), "hi": np.maximum.reduceat(r, starts)})


def _sums(codes: np.ndarray, r: np.ndarray, similarity: str, user_counts, n_items: int):
    """``item_statistics``' ``count``, ``s1``, ``s2`` per item code (codes ``0..n-1`` all present,
    entries of an item in ascending user order) [shape=(n,)]."""
    count = np.bincount(codes)
    s1 = np.zeros(len(count))
    s2 = np.zeros(len(count))
    if similarity == "cosine":
        s2 = np.bincount(codes, weights=r ** 2)
    elif similarity == "pearson":
        s1 = np.bincount(codes, weights=r)
        centred = r - (s1 * _inverse(count.astype(np.float64)))[codes]
        s2 = np.bincount(codes, weights=centred ** 2)
    elif similarity == "bm25":
        s1 = np.bincount(codes, weights=r)
    elif similarity == "tfidf":
        w = np.sqrt(r) * _idf(user_counts, n_items)
        s2 = np.bincount(codes, weights=w ** 2)
    return count.astype(np.int64), s1, s2


def item_vectors(similarity: str, count, s1, s2, *, n_users: int, rated_pearson: bool) -> dict:
    """The kernel's ``mode``, ``sa``, ``sb``, the ``shift`` and the per-item factor of each entry's
    weight, from the statistics of ``item_statistics`` [shape=(n_items,)] (as ``similarity.py``)."""
    n = len(count)
    counts = np.asarray(count, dtype=np.float64)
    ones, zeros = np.ones(n), np.zeros(n)
    out = {"mode": kernels.MODE_DOT, "sa": ones, "sb": ones, "shift": zeros, "factor": zeros}
    if similarity == "jaccard":
        out.update(mode=kernels.MODE_JACCARD, sa=counts)
    elif similarity == "cosine":
        inv = _inverse(np.sqrt(s2))
        out.update(sa=inv, sb=inv)
    elif similarity == "pearson" and rated_pearson:
        means = s1 * _inverse(counts)
        inv = _inverse(np.sqrt(s2))
        out.update(sa=inv, sb=inv, shift=means, factor=means)
    elif similarity == "pearson":
        freq = counts / max(n_users, 1)
        std = np.sqrt(freq * (1.0 - freq))
        std[std == 0] = np.inf  # as similarity.pearson: an item everybody (or nobody) has correlates with nothing
        out.update(mode=kernels.MODE_PHI, sa=freq, sb=std)
    elif similarity == "bm25":
        out["factor"] = (1.0 - BM25_B) + BM25_B * s1 / s1.mean()  # implicit's length_norm per item
    elif similarity == "tfidf":
        out["factor"] = np.sqrt(s2)
    elif similarity == "lift":
        inv = _inverse(counts)
        out.update(sa=inv, sb=inv)
    return out


def entry_weights(similarity: str, r: np.ndarray, idx: np.ndarray, factor: np.ndarray, user_counts, *,
                  rated_pearson: bool, n_items: int) -> np.ndarray:
    """float32 weight of each interaction (rating ``r``, item index ``idx``) [shape=(n,)]."""
    if similarity == "cosine":
        w = r
    elif similarity == "pearson" and rated_pearson:
        w = r - factor[idx]
    elif similarity == "bm25":  # implicit's bm25_weight, operation for operation
        w = r * (BM25_K1 + 1.0) / (BM25_K1 * factor[idx] + r) * _idf(user_counts, n_items)
    elif similarity == "tfidf":  # tfidf_weight then normalize
        w = np.sqrt(r) * _idf(user_counts, n_items) / factor[idx]
    else:
        w = np.ones(len(r))
    return np.asarray(w, dtype=np.float64).astype(np.float32)


def weight_batches(batches, *, similarity: str, rated_pearson: bool, item_ids, factor, n_items: int,
                   n_blocks: int):
    """Frames ``(u, i, r[, uc])`` -> ``(tile, u, idx, w)``: each weighted entry once per tile of its block."""
    for frame in batches:
        if not len(frame):
            continue
        idx, _ = encode_items(item_ids, frame["i"].to_numpy())
        uc = frame["uc"].to_numpy() if "uc" in frame else None
        w = entry_weights(similarity, frame["r"].to_numpy(np.float64), idx, factor, uc,
                          rated_pearson=rated_pearson, n_items=n_items)
        block = idx % n_blocks
        others = np.arange(n_blocks)
        lo = np.minimum(block[:, None], others[None, :])
        hi = np.maximum(block[:, None], others[None, :])
        yield pd.DataFrame({"tile": (lo * n_blocks + hi).ravel(), "u": np.repeat(frame["u"].to_numpy(), n_blocks),
                            "idx": np.repeat(idx, n_blocks), "w": np.repeat(w, n_blocks)})


def _local(w: np.ndarray, mask: np.ndarray, users: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """CSR [shape=(n_users, n_cols)] of the masked entries in local user/column numbering."""
    X = sp.csr_matrix((w[mask], (users[mask], cols[mask])), shape=shape)
    X.sort_indices()
    return X


def tile_topk(frame: pd.DataFrame, *, n_blocks: int, sa, sb, mode: int, n_users: int, top_k: int,
              threshold: float, chunk_entries: int = 1 << 21, block_of=None) -> pd.DataFrame:
    """``(tile, u, idx, w)`` of one tile -> ``(idx, pos, nbr, val)``: each item's best ``top_k``
    neighbours among the tile's other block, best first (ties by item index). An item's block
    is ``idx % n_blocks``, or ``block_of[idx]``."""
    tile = int(frame["tile"].iloc[0])
    b, c = divmod(tile, n_blocks)
    idx = frame["idx"].to_numpy(np.int64)
    u = frame["u"].to_numpy(dtype=object if frame["u"].dtype.kind not in "iu" else np.int64)
    _, users = np.unique(u, return_inverse=True)  # ascending user ids: the single-machine row order
    labels, cols = np.unique(idx, return_inverse=True)
    block = idx % n_blocks if block_of is None else block_of[idx]
    return _tile_pairs(users, cols, labels, frame["w"].to_numpy(np.float32), block, b, c,
                       sa=np.ascontiguousarray(sa[labels], dtype=np.float64),
                       sb=np.ascontiguousarray(sb[labels], dtype=np.float64), mode=mode, n_users=n_users,
                       top_k=top_k, threshold=threshold, chunk_entries=chunk_entries)


def _tile_pairs(users, cols, labels, w, block, b: int, c: int, *, sa, sb, mode: int, n_users: int, top_k: int,
                threshold: float, chunk_entries: int = 1 << 21) -> pd.DataFrame:
    """The kernel over one tile in local numbering: ``users`` (ascending ids), ``cols`` (items,
    numbered in ``labels`` order), weights ``w`` and blocks per entry [shape=(n,)]; ``sa``/``sb``
    per local item. Returns ``(idx, pos, nbr, val)`` with items as ``labels``."""
    shape = (int(users.max()) + 1, len(labels))
    A = _local(w, block == b, users, cols, shape)
    C = A if b == c else _local(w, block == c, users, cols, shape)
    label = labels.astype(np.int32)
    unweighted = bool(np.all(A.data == 1.0)) and bool(np.all(C.data == 1.0))
    parts = []
    for left, right, blk in ((A, C, b), (C, A, c)) if b != c else ((A, C, b),):
        items = np.unique(cols[block == blk]).astype(np.int32)
        if not len(items):
            continue
        left_c = left.tocsc()
        step = max(1, chunk_entries // top_k)
        for start in range(0, len(items), step):
            rows = items[start:start + step]
            out_j = np.empty((len(rows), top_k), dtype=np.int32)
            out_v = np.empty((len(rows), top_k), dtype=np.float64)
            out_n = np.zeros(len(rows), dtype=np.int64)
            kernels.topk_block(rows, left_c.indptr, left_c.indices, left_c.data, right.indptr, right.indices,
                               right.data, unweighted, mode, sa, sb, label, float(n_users), top_k,
                               float(threshold), out_j, out_v, out_n)
            keep = np.arange(top_k)[None, :] < out_n[:, None]
            parts.append(pd.DataFrame({
                "idx": np.repeat(labels[rows], out_n), "pos": np.nonzero(keep)[1].astype(np.int32),
                "nbr": out_j[keep].astype(np.int64), "val": out_v[keep]}))
    if not parts:
        return pd.DataFrame({"idx": np.zeros(0, np.int64), "pos": np.zeros(0, np.int32),
                             "nbr": np.zeros(0, np.int64), "val": np.zeros(0)})
    return pd.concat(parts, ignore_index=True)


def _ranks(values: np.ndarray):
    """(sorted distinct values, each value's position among them): ``np.unique(..., return_inverse=True)``
    by hashing (``pd.factorize``), faster on millions of rows with few distinct values."""
    codes, uniques = pd.factorize(values, sort=False)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return np.asarray(uniques)[order], rank[codes]


def raw_tile(frame: pd.DataFrame, *, n_blocks: int, similarity: str, n_users: int, top_k: int,
             threshold: float) -> pd.DataFrame:
    """Raw rows ``(tile, blk, u, i, r, seq)`` of one tile -> ``(i, count, nbr, val)``.

    The tile holds every row of the items of blocks ``b`` and ``c`` (``tile = b * n_blocks + c``,
    ``b <= c``). Rows with ``count == -1``: an item's best ``top_k`` neighbours among the
    other block (arrays ``nbr``: item ids, ``val``: similarities; best first). Diagonal
    tiles add one row per item of their block with its interaction ``count`` (empty arrays),
    so the driver learns every item once.
    """
    b, c = divmod(int(frame["tile"].iloc[0]), n_blocks)
    return _tile_rows(frame["u"].to_numpy(), frame["i"].to_numpy(), frame["r"].to_numpy(np.float64),
                      frame["seq"].to_numpy(np.int64), frame["blk"].to_numpy(np.int64), b, c, similarity=similarity,
                      n_users=n_users, top_k=top_k, threshold=threshold)


def single_tile(batches, *, similarity: str, top_k, threshold: float, rated: bool, in_jvm=("user", "item")) -> dict:
    """The whole table in one task: frames ``(u, i[, r][, bad])`` in table order (row order is
    the tie-break of repeated pairs, so no ``seq``) -> the fit's arrays, as one tile of one
    block (every item against every item), whose local item numbers are the global ones.

    ``bad`` holds the failed checks of the roles ``in_jvm`` as bits 1 (user), 2 (item); an
    integer id of another role fails when null, a rating when not finite (null, NaN, inf:
    the checks of ``spark_checks.id_checks``). Returns ``n_users``, ``n_rows``, ``failures``
    (rows failing each check: user, item, rating), and
    unless a check failed or there are no rows, ``item_ids`` (sorted), ``counts``
    (interactions per item), ``per_item`` (neighbours kept per item) and ``nbr``/``val``
    [shape=(sum(per_item),)] (each item's neighbours best first, ties by lower index); plus
    ``t_start``/``t_read``/``t_done``: ``time.time()`` when the task started, had read every
    row and was done.
    """
    t_start = time.time()
    parts = {"u": [], "i": [], "r": [], "bad": []}
    failures = [0, 0, 0]
    for frame in batches:  # columns as numpy arrays, concatenated once
        for k, (name, role) in enumerate((("u", "user"), ("i", "item"))):
            if role not in in_jvm:  # an integer column with nulls arrives as floats (or nullable)
                failures[k] += int(frame[name].isna().sum())
        for name, chunks in parts.items():
            if name in frame:
                chunks.append(frame[name].to_numpy())
    cols = {name: np.concatenate(chunks) for name, chunks in parts.items() if chunks}
    n_rows = len(cols["u"]) if "u" in cols else 0
    bad = cols.get("bad", np.zeros(0, np.int32))
    if np.any(bad):
        failures = [n + int(np.count_nonzero(bad & bit)) for n, bit in zip(failures, (1, 2, 4))]
    if rated and n_rows:
        failures[2] = int(np.count_nonzero(~np.isfinite(cols["r"].astype(np.float64))))
    out = {"n_users": 0, "n_rows": n_rows, "failures": failures, "t_start": t_start, "t_read": time.time()}
    if n_rows and not any(failures):
        r = cols["r"].astype(np.float64) if rated else np.ones(n_rows)
        labels, counts, _, n_users, pairs = _tile_core(cols["u"], cols["i"], r, None, None, 0, 0,
                                                       similarity=similarity, n_users=None, top_k=top_k,
                                                       threshold=threshold)
        out.update(n_users=n_users, item_ids=labels, counts=counts,
                   per_item=np.bincount(pairs["idx"].to_numpy(), minlength=len(labels)),
                   nbr=pairs["nbr"].to_numpy(np.int32), val=pairs["val"].to_numpy(np.float64))
    out["t_done"] = time.time()
    return out


def _tile_rows(u, ids, r, seq, blk, b: int, c: int, *, similarity: str, n_users: int, top_k,
               threshold: float) -> pd.DataFrame:
    """``raw_tile`` on arrays [shape=(n,)]: users ``u``, item ids ``ids``, ratings ``r``, row order
    ``seq`` and item blocks ``blk``."""
    labels, counts, block_of, _, out = _tile_core(u, ids, r, seq, blk, b, c, similarity=similarity,
                                                  n_users=n_users, top_k=top_k, threshold=threshold)
    id_of = labels
    idx, nbr, val = out["idx"].to_numpy(), out["nbr"].to_numpy(), out["val"].to_numpy(np.float64)
    starts = np.r_[0, np.flatnonzero(idx[1:] != idx[:-1]) + 1] if len(idx) else np.zeros(0, np.int64)
    bounds = np.r_[starts, len(idx)]
    items, kinds = id_of[idx[starts]], np.full(len(starts), -1, np.int64)
    nbrs = [id_of[nbr[a:z]] for a, z in zip(bounds[:-1], bounds[1:])]
    vals = [val[a:z] for a, z in zip(bounds[:-1], bounds[1:])]
    if b == c:  # every item of the block once, with its interaction count
        mine = np.flatnonzero(block_of == b)
        items, kinds = np.concatenate([items, id_of[mine]]), np.concatenate([kinds, counts[mine]])
        nbrs += [id_of[:0]] * len(mine)
        vals += [np.zeros(0)] * len(mine)
    # one frame built once: a concatenated text column would be chunked, which Spark's Arrow path rejects
    return pd.DataFrame({"i": items, "count": kinds, "nbr": nbrs, "val": vals})


def _tile_core(u, ids, r, seq, blk, b: int, c: int, *, similarity: str, n_users: int | None, top_k,
               threshold: float):
    """De-duplication, item statistics, weights and the kernel of one tile, on arrays [shape=(n,)]:
    users ``u``, item ids ``ids``, ratings ``r``, row order ``seq`` (None: the arrays are in table
    order) and item blocks ``blk`` (None: all ``b``); ``n_users`` None: the tile's own users.

    Returns (item ids in local numbering order (int64, or object for text ids), interactions
    per item, block per item, n_users, ``(idx, pos, nbr, val)`` in local numbers sorted by
    (idx, pos))."""
    string_ids = ids.dtype.kind not in "iu"
    ids = ids.astype(object if string_ids else np.int64, copy=False)
    u = u.astype(object if u.dtype.kind not in "iu" else np.int64, copy=False)
    labels, items = _ranks(ids)  # local item numbers in id order: ties break as with global numbers
    user_ids, users = _ranks(u)  # ascending user ids: the single-machine row order
    n_users = len(user_ids) if n_users is None else n_users
    key = items * len(user_ids) + users
    order = np.argsort(key)
    key = key[order]
    if np.any(key[1:] == key[:-1]):  # a repeated (user, item): its last row in table order wins
        key = items * len(user_ids) + users
        order = np.argsort(key, kind="stable") if seq is None else np.lexsort((seq, key))
        key = key[order]
        order = order[np.r_[key[1:] != key[:-1], True]]
    items, users, r = items[order], users[order], r[order]
    block_of = np.full(len(labels), b, dtype=np.int64)
    if blk is not None:
        block_of[items] = blk[order]
    count, s1, s2 = _sums(items, r, similarity, None, 0)  # items sorted, every local number present
    vec = item_vectors(similarity, count, s1, s2, n_users=n_users, rated_pearson=False)
    w = entry_weights(similarity, r, items, vec["factor"], None, rated_pearson=False, n_items=len(labels))
    k = max(1, len(labels) - 1 if top_k is None else min(int(top_k), len(labels) - 1))
    local = np.arange(len(labels))
    out = _tile_pairs(users, items, local, w, block_of[items], b, c, sa=vec["sa"], sb=vec["sb"],
                      mode=int(vec["mode"]), n_users=n_users, top_k=k, threshold=threshold)
    return (labels.astype(object) if string_ids else labels), count, block_of, n_users, out
