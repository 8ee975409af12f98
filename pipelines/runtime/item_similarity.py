"""Running Core ML ``ItemSimilarityRecommender`` models, many users at once.

The score of item ``k`` for a user whose items ``i`` carry ratings ``r_i`` (1 when
the input is a plain item list) is Core ML's formula::

    score(k) = sum over the user's items i of  sim(i -> k) * (r_i - shift_i)

where ``sim(i -> k)`` is the ``similarityScore`` of ``k`` in the ``similarItemList``
of item ``i`` (0 when absent) and ``shift_i`` that entry's ``itemScoreAdjustment``.
Every item not excluded (by default: the user's own items; an ``exclude`` input
replaces that default, as the format says) and inside ``restrict`` (when given) is a
candidate, including items whose score is 0. Candidates rank by score, then by item
index (their order in ``itemStringIds``/``itemInt64Ids``); ``k`` defaults to all
items. ``recommend_topk`` is the pure kernel; the trainer imports it so the
in-memory model and the file score the same way.

New users: a history with no item the model knows (empty, or only unknown ids) scores 0
everywhere, so Core ML itself answers the first ``k`` candidates in item order, all with
score 0. Pippin's runtime answers the most popular candidates instead (still score 0),
when the file's metadata holds ``item_popularity`` (training interactions per item, in
item order, written by ``pippin.recommend.export``); ``popular_topk`` is that ranking.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from ...spec.errors import SpecError
from ..errors import PipelineError
from .model import RunnableModel, register_kind
from .item_similarity_dense import accumulations, compact_table, score_topk_dense, use_dense
from .topk_heap import heap_push, heap_sort_desc

__all__ = ["ItemSimilarityModel", "recommend_topk", "similarity_from_spec", "popular_topk", "POPULARITY_KEY"]

POPULARITY_KEY = "item_popularity"


@njit(parallel=True, nogil=True, cache=True)
def _score_topk(h_ptr, h_items, h_vals, s_ptr, s_items, s_vals, shift, rank, label,
                x_ptr, x_items, r_ptr, r_items, has_restrict, k, out_j, out_v):
    # Scores accumulate in a relabelled item space (``rank``: item -> slot, ``label``:
    # slot -> item, popular items first, so hot accumulator entries share cache
    # lines); ties and outputs use the item index itself.
    n_users = h_ptr.shape[0] - 1
    n_items = shift.shape[0]
    n_chunks = min(n_users, 256)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float64)
        state = np.zeros(n_items, dtype=np.uint8)  # 1 touched, 2 excluded, 4 allowed
        touched = np.empty(n_items + 1, dtype=np.int32)  # + 1: the branch-free write below
        hv = np.empty(k, dtype=np.float64)
        hj = np.empty(k, dtype=np.int64)
        for u in range(chunk, n_users, n_chunks):
            n_touched = 0
            # unsigned positions (no wraparound code) and a branch-free touched list
            for p in range(np.uintp(h_ptr[u]), np.uintp(h_ptr[u + 1])):
                i = np.uintp(h_items[p])
                w = h_vals[p] - shift[i]
                for q in range(np.uintp(s_ptr[i]), np.uintp(s_ptr[i + 1])):
                    j = np.uintp(s_items[q])
                    touched[n_touched] = j
                    n_touched += 1 - (state[j] & 1)
                    state[j] |= 1
                    acc[j] += s_vals[q] * w
            for p in range(x_ptr[u], x_ptr[u + 1]):
                state[rank[x_items[p]]] |= 2
            restricted = has_restrict[u]
            for p in range(r_ptr[u], r_ptr[u + 1]):
                state[rank[r_items[p]]] |= 4
            size = 0
            for t in range(n_touched):
                j = touched[t]
                if state[j] & 2 == 0 and (not restricted or state[j] & 4):
                    size = heap_push(hv, hj, size, k, acc[j], label[j])
            # untouched candidates score 0; walk them in item order only while they can enter
            if size < k or hv[0] <= 0.0:
                n_walk = r_ptr[u + 1] - r_ptr[u] if restricted else n_items
                for t in range(n_walk):
                    item = r_items[r_ptr[u] + t] if restricted else t
                    if size == k and (hv[0] > 0.0 or (hv[0] == 0.0 and hj[0] < item)):
                        break
                    j = rank[item]
                    if state[j] & 3 == 0 and (not restricted or state[j] & 4):
                        size = heap_push(hv, hj, size, k, 0.0, item)
                        state[j] |= 1  # a repeated restrict entry must not enter twice
                        touched[n_touched] = j
                        n_touched += 1
            heap_sort_desc(hv, hj, size)
            for t in range(size):
                out_j[u, t] = hj[t]
                out_v[u, t] = hv[t]
            for t in range(n_touched):
                acc[touched[t]] = 0.0
                state[touched[t]] = 0
            for p in range(x_ptr[u], x_ptr[u + 1]):
                state[rank[x_items[p]]] = 0
            for p in range(r_ptr[u], r_ptr[u + 1]):
                state[rank[r_items[p]]] = 0


def _index(a: np.ndarray) -> np.ndarray:
    """Index arrays pass through without a copy when they are int32 (scipy's usual choice)."""
    return a if a.dtype == np.int32 else a.astype(np.int64, copy=False)


def _csr_parts(m: sp.csr_matrix | None, n_rows: int):
    if m is None:
        return np.zeros(n_rows + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    return _index(m.indptr), _index(m.indices)


def recommend_topk(histories: sp.csr_matrix, similarity: sp.csr_matrix, shift: np.ndarray, *, k: int,
                   exclude: sp.csr_matrix | None = None, restrict: sp.csr_matrix | None = None,
                   has_restrict: np.ndarray | None = None, dense: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Core ML's item-similarity scores and the ``k`` best candidates of many users.

    Parameters
    ----------
    histories : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
        Each user's ratings ``r_i`` (1 for a plain item).
    similarity : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        ``sim(i -> k)`` at ``[i, k]``.
    shift : np.ndarray [shape=(n_items,)]
        ``itemScoreAdjustment`` of each item ``i``.
    k : int >= 0
        Recommendations per user.
    exclude, restrict : scipy.sparse.csr_matrix [shape=(n_users, n_items)], optional
        Items never recommended / the only items that may be (pattern only; rows in
        ``restrict`` apply where ``has_restrict`` [shape=(n_users,)] is true, default all).
    dense : bool, optional
        Score with ``item_similarity_dense`` (same results): by default when the histories'
        accumulations reach most of the catalogue (``use_dense``).

    Returns
    -------
    ids : np.ndarray[int64] [shape=(n_users, k)]
        Item indices, best first; ``-1`` pads rows with fewer than ``k`` candidates.
    scores : np.ndarray[float64] [shape=(n_users, k)]
        Their scores; ``-inf`` pads.
    """
    n_users = histories.shape[0]
    out_j = np.full((n_users, k), -1, dtype=np.int64)
    out_v = np.full((n_users, k), -np.inf, dtype=np.float64)
    if n_users == 0 or k == 0:
        return out_j, out_v
    if has_restrict is None:
        has_restrict = np.full(n_users, restrict is not None)
    x_ptr, x_items = _csr_parts(exclude, n_users)
    r_ptr, r_items = _csr_parts(restrict, n_users)
    n_items = similarity.shape[0]
    h_ptr, h_items = _index(histories.indptr), _index(histories.indices)
    h_vals, shift = histories.data.astype(np.float64, copy=False), np.asarray(shift, dtype=np.float64)
    has_restrict = np.asarray(has_restrict, dtype=np.bool_)
    if dense is None:
        dense = use_dense(h_ptr, h_items, similarity.indptr, n_items)
    if dense:  # a typical history reaches most of the catalogue: one score array per user, scanned
        s_items = compact_table(_index(similarity.indices), n_items, accumulations(h_items, similarity.indptr),
                                similarity.nnz)
        score_topk_dense(h_ptr, h_items, h_vals, _index(similarity.indptr), s_items,
                         similarity.data.astype(np.float64, copy=False), shift, x_ptr, x_items, r_ptr, r_items,
                         has_restrict, int(k), out_j, out_v)
        return out_j, out_v
    label = np.argsort(-np.bincount(similarity.indices, minlength=n_items), kind="stable")
    rank = np.empty(n_items, dtype=np.int64)
    rank[label] = np.arange(n_items)
    _score_topk(h_ptr, h_items, h_vals, _index(similarity.indptr),
                rank[similarity.indices].astype(np.int32), similarity.data.astype(np.float64, copy=False),
                shift, rank, label.astype(np.int64), x_ptr, x_items, r_ptr, r_items,
                has_restrict, int(k), out_j, out_v)
    return out_j, out_v


def popular_topk(popularity: np.ndarray, *, k: int, exclude: sp.csr_matrix | None = None,
                 restrict: sp.csr_matrix | None = None, has_restrict: np.ndarray | None = None,
                 n_users: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most popular candidates of each user (ties: item order), the new-user fallback.

    Parameters
    ----------
    popularity : np.ndarray [shape=(n_items,)]
        Training interactions per item.
    k : int >= 0
    exclude, restrict, has_restrict
        As in ``recommend_topk`` (patterns [shape=(n_users, n_items)]).

    Returns
    -------
    ids : np.ndarray[int64] [shape=(n_users, k)]
        Item indices, most popular first; ``-1`` pads.
    scores : np.ndarray[float64] [shape=(n_users, k)]
        0 (Core ML's score of every item for an empty history); ``-inf`` pads.
    """
    n_items = len(popularity)
    order = np.argsort(-np.asarray(popularity, dtype=np.float64), kind="stable")
    ids = np.full((n_users, k), -1, dtype=np.int64)
    scores = np.full((n_users, k), -np.inf)
    for u in range(n_users):
        allowed = np.ones(n_items, dtype=bool)
        if exclude is not None:
            allowed[exclude.indices[exclude.indptr[u]:exclude.indptr[u + 1]]] = False
        if restrict is not None and (has_restrict is None or has_restrict[u]):
            inside = np.zeros(n_items, dtype=bool)
            inside[restrict.indices[restrict.indptr[u]:restrict.indptr[u + 1]]] = True
            allowed &= inside
        picks = order[allowed[order]][:k]
        ids[u, : len(picks)] = picks
        scores[u, : len(picks)] = 0.0
    return ids, scores


def popularity_from_metadata(spec, n_items: int, *, where: str) -> np.ndarray | None:
    """``item_popularity`` of the model's metadata [shape=(n_items,)], or None when absent."""
    text = spec.description.metadata.userDefined.get(POPULARITY_KEY)
    if not text:
        return None
    field = f"{where}: description.metadata.userDefined[{POPULARITY_KEY!r}]"
    try:
        values = np.array([int(v) for v in text.split(",")], dtype=np.int64)
    except ValueError:
        raise SpecError("expected comma-separated integers (interactions per item)", where=field) from None
    if len(values) != n_items or (values < 0).any():
        raise SpecError(f"{len(values)} counts for {n_items} items, expected one count >= 0 per item",
                        where=field)
    return values


def similarity_from_spec(isr, *, where: str) -> tuple[list, sp.csr_matrix, np.ndarray]:
    """Item ids, the ``sim(i -> k)`` matrix and the shifts of an ``ItemSimilarityRecommender``."""
    rows, cols, vals, shift_at = [], [], [], {}
    for n, entry in enumerate(isr.itemItemSimilarities):
        for other in entry.similarItemList:
            rows.append(entry.itemId)
            cols.append(other.itemId)
            vals.append(other.similarityScore)
        if entry.itemScoreAdjustment:
            shift_at[entry.itemId] = entry.itemScoreAdjustment
    max_id = max([-1, *rows, *cols, *shift_at])
    if isr.itemStringIds.vector and isr.itemInt64Ids.vector:
        raise SpecError("both itemStringIds and itemInt64Ids are set; expected one", where=where)
    ids = list(isr.itemStringIds.vector) or [int(v) for v in isr.itemInt64Ids.vector]
    if not ids:
        ids = list(range(max_id + 1))
    if max_id >= len(ids):
        raise SpecError(f"item index {max_id} is out of range for {len(ids)} item ids",
                        where=f"{where}: itemSimilarityRecommender.itemItemSimilarities")
    if len(set(ids)) != len(ids):
        raise SpecError("item ids contain duplicates", where=f"{where}: itemSimilarityRecommender")
    n = len(ids)
    S = sp.coo_matrix((np.asarray(vals, dtype=np.float64), (np.asarray(rows, dtype=np.int64),
                                                               np.asarray(cols, dtype=np.int64))),
                      shape=(n, n)).tocsr()  # duplicates (not expected) are summed
    shift = np.zeros(n, dtype=np.float64)
    for i, s in shift_at.items():
        shift[i] = s
    return ids, S, shift


@register_kind("itemSimilarityRecommender")
class ItemSimilarityModel(RunnableModel):
    """A loaded ``ItemSimilarityRecommender``: the item input takes, per example, a
    ``{item: rating}`` dict or a list of items; outputs are the ranked item list and
    a ``{item: score}`` dict of those items."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        isr = spec.itemSimilarityRecommender
        self.item_ids, self.similarity, self.shift = similarity_from_spec(isr, where=self.where)
        self.index = {item: n for n, item in enumerate(self.item_ids)}
        self.string_ids = bool(isr.itemStringIds.vector)
        self.popularity = popularity_from_metadata(spec, len(self.item_ids), where=self.where)
        self.fallback_rows = np.zeros(0, dtype=np.int64)
        names = list(self.input_descriptions)
        self.item_input = isr.itemInputFeatureName or (names[0] if len(names) == 1 else "")
        if self.item_input not in self.input_descriptions:
            raise SpecError(f"item input {self.item_input!r} is not among the inputs {names}",
                            where=f"{self.where}: itemSimilarityRecommender.itemInputFeatureName")
        self.k_input = isr.numRecommendationsInputFeatureName
        self.restrict_input = isr.itemRestrictionInputFeatureName
        self.exclude_input = isr.itemExclusionInputFeatureName
        self.list_output = isr.recommendedItemListOutputFeatureName
        self.score_output = isr.recommendedItemScoreOutputFeatureName
        if not (self.list_output or self.score_output):
            raise SpecError("no output feature name is set",
                            where=f"{self.where}: itemSimilarityRecommender.recommendedItemListOutputFeatureName")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def _key(self, item):
        if isinstance(item, np.generic):
            item = item.item()
        if not self.string_ids and isinstance(item, float) and item.is_integer():
            item = int(item)
        try:
            return self.index.get(item)
        except TypeError:  # an unhashable value is no item of the model
            return None

    def index_of(self, item) -> int | None:
        """The model's index of ``item`` (its position in the item ids), or None when unknown."""
        return self._key(item)

    def encode(self, values, *, name: str, ratings: bool = True) -> tuple[sp.csr_matrix, int]:
        """Per-example dicts or item lists -> CSR [shape=(n_examples, n_items)] and the count of unknown items."""
        indptr, cols, data, unknown = [0], [], [], 0
        for n, value in enumerate(values):
            if value is None:
                value = ()
            pairs = value.items() if isinstance(value, dict) else ((item, 1.0) for item in value)
            row = {}
            for item, rating in pairs:
                j = self._key(item)
                if j is None:
                    unknown += 1
                    continue
                try:
                    row[j] = float(rating) if ratings else 1.0
                except (TypeError, ValueError):
                    raise PipelineError(f"input {name!r}[{n}]: rating of item {item!r} is {rating!r}, expected a number",
                                        where=self.where) from None
            cols.extend(row)
            data.extend(row.values())
            indptr.append(len(cols))
        m = sp.csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(cols, dtype=np.int64),
                           np.asarray(indptr, dtype=np.int64)), shape=(len(indptr) - 1, self.n_items))
        return m, unknown

    def _predict_batch(self, inputs):
        histories, self.unknown_items = self.encode(inputs[self.item_input], name=self.item_input)
        n = histories.shape[0]
        ks = np.full(n, self.n_items, dtype=np.int64)
        if self.k_input and inputs.get(self.k_input) is not None:
            ks = np.broadcast_to(np.asarray(inputs[self.k_input], dtype=np.int64), (n,))
            if (ks < 0).any():
                raise PipelineError(f"input {self.k_input!r} must be >= 0, got {int(ks.min())}", where=self.where)
        exclude = histories
        if self.exclude_input and inputs.get(self.exclude_input) is not None:
            exclude, _ = self.encode(inputs[self.exclude_input], name=self.exclude_input, ratings=False)
        restrict, has_restrict = None, None
        if self.restrict_input and inputs.get(self.restrict_input) is not None:
            values = inputs[self.restrict_input]
            has_restrict = np.array([v is not None for v in values], dtype=bool)
            restrict, _ = self.encode(values, name=self.restrict_input, ratings=False)
            restrict.sort_indices()
        k = int(min(ks.max(initial=0), self.n_items))
        ids, scores = recommend_topk(histories, self.similarity, self.shift, k=k, exclude=exclude,
                                     restrict=restrict, has_restrict=has_restrict)
        # new users (no known item): the most popular candidates, when the file records popularity
        self.fallback_rows = np.flatnonzero(np.diff(histories.indptr) == 0) if self.popularity is not None \
            else np.zeros(0, dtype=np.int64)
        if len(self.fallback_rows) and k:
            rows = self.fallback_rows
            ids[rows], scores[rows] = popular_topk(
                self.popularity, k=k, exclude=exclude[rows], n_users=len(rows),
                restrict=None if restrict is None else restrict[rows],
                has_restrict=None if has_restrict is None else has_restrict[rows])
        lists, dicts = [], []
        for row_ids, row_scores, k_row in zip(ids, scores, ks):
            valid = row_ids[: min(k_row, k)]
            valid = valid[valid >= 0]
            items = [self.item_ids[j] for j in valid]
            lists.append(items)
            dicts.append(dict(zip(items, row_scores[: len(items)].tolist())))
        out = {}
        if self.list_output:
            out[self.list_output] = lists
        if self.score_output:
            out[self.score_output] = dicts
        return out
