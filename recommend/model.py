"""``ItemSimilarityRecommender``: learn an item-item similarity table, recommend, export.

Scoring is Core ML's ``ItemSimilarityRecommender`` formula, so the in-memory model
and its exported file rank alike: for a user whose items ``i`` carry ratings
``r_i`` (1 when fitted without ratings),

    score(k) = sum over the user's items i of  sim(i -> k) * (r_i - shift_i)

with ``sim(i -> k)`` the learned similarity (0 outside item ``i``'s ``top_k``
neighbours) and ``shift_i`` the item's score adjustment (its mean rating for a
rated ``pearson`` fit, else 0). Every non-excluded item is a candidate, including
items scoring 0; ties rank by item order (the sorted item ids). Rows shorter than
``k`` (fewer candidates than ``k``) are padded with id ``-1`` and score ``-inf``.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from ..pipelines.update.estimator import ParamsMixin
from ..pipelines.runtime.item_similarity import recommend_topk
from .errors import RecommendError
from .matrix import encode_items, to_interactions
from .similarity import SIMILARITIES, item_similarity

__all__ = ["ItemSimilarityRecommender"]


def _plain(value):
    """A NumPy scalar as the Python value, so messages show ``5``, not ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value


class ItemSimilarityRecommender(ParamsMixin):
    """Item-item nearest-neighbour recommender exported as Core ML ``ItemSimilarityRecommender``.

    Parameters
    ----------
    similarity : str
        One of ``SIMILARITIES``: ``jaccard``, ``cosine``, ``pearson``, ``bm25``,
        ``tfidf``, ``lift``, ``cooccurrence``; or ``ease``: learned item-item weights
        (Steck 2019, see ``pippin.recommend.ease``), negative ones included.
    top_k : int > 0 or None
        Neighbours kept per item (``None``: all above ``threshold``); for ``ease``, the
        largest weights by magnitude.
    threshold : float
        Similarities below it are dropped (for ``ease``: weights whose magnitude is below it).
    l2 : float > 0, "auto" or None
        ``ease`` only: the ridge penalty λ; ``"auto"`` picks it from ``ease.L2_GRID`` on a
        validation split of the training data (``ease.select_l2``); ``None`` (default) is
        ``ease.L2_SCALE`` times the mean diagonal of the (user-weighted) Gram matrix, for 0/1 data
        the mean number of users per item (``ease.default_l2``), so it grows with the data.
    neighbours : int > 0 or None
        ``ease`` only: ``None`` solves the exact dense problem; ``m`` solves each item's
        weights over its ``m`` top co-occurring items only (``ease_sparse``), for
        catalogues too large for the dense matrix.
    popularity_exponent : float >= 0
        ``ease`` only: column ``j`` of the weights is divided by ``pop_j ** popularity_exponent``
        (``pop_j``: training users of item ``j``), which discounts popular items' scores
        (``ease.popularity_scale``); 0 is plain EASE.
    history_popularity_exponent : float >= 0
        ``ease`` only: row ``i`` of the weights (what having item ``i`` in a history adds to
        every score) is divided by ``pop_i ** history_popularity_exponent``, so popular history
        items count less; 0 is plain EASE.
    user_weight_exponent : float >= 0
        ``ease`` only: the regressions are weighted by user, ``w_u ∝ n_u ** -user_weight_exponent``
        (``n_u``: the user's interactions; Gram matrix ``Xᵀ diag(w) X``, ``ease.user_weighted``), so very
        active users count less; 0 is plain EASE. The defaults of ``l2``, the two popularity
        exponents and ``user_weight_exponent`` were chosen on validation splits of MovieLens
        100K's training data (README, "MovieLens 100K quality").
    progress : bool
        Draw a progress bar while fitting.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix [shape=(n_items, n_items)]
        ``sim(i -> k)`` at ``[i, k]``.
    shift_ : np.ndarray [shape=(n_items,)]
        Per-item score adjustment (Core ML ``itemScoreAdjustment``).
    item_ids_, user_ids_ : np.ndarray [shape=(n_items,)], [shape=(n_users,)]
    n_items_, n_users_ : int
    interactions_ : scipy.sparse.csr_matrix [shape=(n_users, n_items)]
        The training interactions (what ``exclude_seen`` excludes).
    has_ratings_ : bool
    l2_ : float
        ``ease`` only: the penalty used; ``l2_scores_`` holds ``{l2: validation precision@10}``
        when it was chosen with ``l2="auto"``.
    popularity_ : np.ndarray[int64] [shape=(n_items,)]
        Training interactions per item: a new user (no known item) gets the most popular.
    """

    _param_error = RecommendError

    def __init__(self, *, similarity: str = "jaccard", top_k: int | None = 64, threshold: float = 0.001,
                 progress: bool = False, l2: float | str | None = None, neighbours: int | None = None,
                 popularity_exponent: float = 0.15, user_weight_exponent: float = 0.25,
                 history_popularity_exponent: float = 0.2):
        self.similarity = similarity
        self.top_k = top_k
        self.threshold = threshold
        self.progress = progress
        self.l2 = l2
        self.neighbours = neighbours
        self.popularity_exponent = popularity_exponent
        self.user_weight_exponent = user_weight_exponent
        self.history_popularity_exponent = history_popularity_exponent

    def _check_fitted(self) -> None:
        if not hasattr(self, "similarity_"):
            raise RecommendError(f"{type(self).__name__} is not fitted; call fit() first")

    # -- fitting -------------------------------------------------------------
    def fit(self, interactions, *, user: str | None = None, item: str | None = None,
            rating: str | None = None) -> "ItemSimilarityRecommender":
        """Learn the item-item similarity table.

        Parameters
        ----------
        interactions : pandas.DataFrame, str, os.PathLike or scipy.sparse matrix
            A table (or ``.csv``/``.tsv``/``.parquet`` file) with one row per
            interaction, or a user x item matrix [shape=(n_users, n_items)] whose
            columns are items ``0..n_items-1``.
        user, item : str
            Id columns of a table (ids are integers or strings).
        rating : str, optional
            Rating column; without it every interaction counts 1.

        Returns
        -------
        self
        """
        if self.similarity not in SIMILARITIES and self.similarity != "ease":
            raise RecommendError(f"similarity={self.similarity!r}; expected one of "
                                 f"{sorted([*SIMILARITIES, 'ease'])}", where="similarity")
        if self.top_k is not None and (not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1):
            raise RecommendError(f"top_k={self.top_k!r}; expected a positive integer or None", where="top_k")
        if not np.isfinite(float(self.threshold)):
            raise RecommendError(f"threshold={self.threshold!r}; expected a finite number", where="threshold")
        where = str(interactions) if isinstance(interactions, (str, os.PathLike)) else None
        data, _ = to_interactions(interactions, user=user, item=item, rating=rating, where=where)
        if data.matrix.shape[1] == 0 or data.matrix.nnz == 0:
            raise RecommendError("no interactions to learn from", where=where or "interactions")
        self.__dict__.pop("l2_", None)  # fit forgets earlier fits
        self.__dict__.pop("l2_scores_", None)
        if self.similarity == "ease":
            S, shift = self._fit_ease(data.matrix)
        else:
            S, shift = item_similarity(data.matrix, similarity=self.similarity, top_k=self.top_k,
                                       threshold=float(self.threshold), progress=self.progress)
        self.similarity_, self.shift_ = S, shift
        self.item_ids_, self.user_ids_ = data.item_ids, data.user_ids
        self.n_items_, self.n_users_ = len(data.item_ids), len(data.user_ids)
        self.interactions_, self.has_ratings_ = data.matrix, data.has_ratings
        self.popularity_ = np.diff(data.matrix.tocsc().indptr)  # training interactions per item
        self.columns_ = {"user": user, "item": item, "rating": rating}
        return self

    def _fit_ease(self, X: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
        from .ease import fit_ease
        from .ease_sparse import fit_ease_sparse

        l2 = self.l2
        if not (l2 is None or l2 == "auto" or (isinstance(l2, (int, float, np.number)) and not isinstance(l2, bool)
                                 and np.isfinite(l2) and l2 > 0)):
            raise RecommendError(f"l2={l2!r}; expected a positive number, 'auto' or None", where="l2")
        m = self.neighbours
        if m is not None and (not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1):
            raise RecommendError(f"neighbours={m!r}; expected a positive integer or None", where="neighbours")
        beta = self.popularity_exponent
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.number)) or not 0 <= beta < np.inf:
            raise RecommendError(f"popularity_exponent={beta!r}; expected a number >= 0",
                                 where="popularity_exponent")
        alpha, delta = self.user_weight_exponent, self.history_popularity_exponent
        for name, value in (("user_weight_exponent", alpha), ("history_popularity_exponent", delta)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < np.inf:
                raise RecommendError(f"{name}={value!r}; expected a number >= 0", where=name)
        threshold = max(float(self.threshold), 0.0)
        if m is None:
            S, self.l2_, self.l2_scores_ = fit_ease(X, l2=l2, top_k=self.top_k, threshold=threshold,
                                                    beta=float(beta), alpha=float(alpha), delta=float(delta))
        else:
            S, self.l2_, self.l2_scores_ = fit_ease_sparse(X, l2=l2, neighbours=int(m), top_k=self.top_k,
                                                           threshold=threshold, beta=float(beta), alpha=float(alpha),
                                                           delta=float(delta))
        return S, np.zeros(X.shape[1])

    # -- recommending --------------------------------------------------------
    def _item_mask(self, items, *, name: str, n_rows: int) -> sp.csr_matrix | None:
        if items is None:
            return None
        codes, known = encode_items(self.item_ids_, list(items))
        cols = np.unique(codes[known])
        indptr = np.arange(n_rows + 1, dtype=np.int64) * len(cols)
        return sp.csr_matrix((np.ones(n_rows * len(cols)), np.tile(cols, n_rows), indptr),
                             shape=(n_rows, self.n_items_))

    def _ids(self, codes: np.ndarray) -> np.ndarray:
        out = np.empty(codes.shape, dtype=self.item_ids_.dtype)
        valid = codes >= 0
        out[valid] = self.item_ids_[codes[valid]]
        out[~valid] = -1
        return out

    def _rank(self, histories: sp.csr_matrix, *, k: int, exclude_seen: bool, exclude, restrict_to):
        n = histories.shape[0]
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise RecommendError(f"k={k!r}; expected an integer >= 0", where="k")
        excl = self._item_mask(exclude, name="exclude", n_rows=n)
        if exclude_seen:  # only the pattern of an exclusion matrix is read: no copy of the histories
            excl = histories if excl is None else ((abs(histories) + excl) > 0).astype(np.float64).tocsr()
        restrict = self._item_mask(restrict_to, name="restrict_to", n_rows=n)
        return recommend_topk(histories, self.similarity_, self.shift_, k=int(k),
                              exclude=excl, restrict=restrict)

    def recommend(self, users_or_histories, *, k: int = 10, exclude_seen: bool = True, exclude=None,
                  restrict_to=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for many users at once.

        Parameters
        ----------
        users_or_histories : user id, array-like of user ids, or scipy.sparse matrix
            Known users (their training interactions are the history), or
            histories [shape=(n_users, n_items)] over the model's items (ratings or 1).
        k : int >= 0
        exclude_seen : bool
            Never recommend an item of the user's history.
        exclude, restrict_to : sequence of item ids, optional
            Items never recommended / the only items that may be, for every user.

        Returns
        -------
        ids : np.ndarray [shape=(n_users, k)]
            Item ids, best first (1-D for a single user id); ``-1`` pads.
        scores : np.ndarray[float64] [shape=(n_users, k)]
            Core ML scores; ``-inf`` pads.
        """
        self._check_fitted()
        single = np.isscalar(users_or_histories)
        if sp.issparse(users_or_histories):
            histories = sp.csr_matrix(users_or_histories, dtype=np.float64)
            if histories.shape[1] != self.n_items_:
                raise RecommendError(f"histories have {histories.shape[1]} item columns, the model has "
                                     f"{self.n_items_} items", where="users_or_histories")
        else:
            try:
                users = np.atleast_1d(np.asarray(users_or_histories, dtype=self.user_ids_.dtype))
                if self.user_ids_.dtype == object:  # text ids: compare as text, as the table loader stored them
                    users = np.asarray([str(u) for u in users], dtype=object)
            except (TypeError, ValueError, OverflowError):
                raise RecommendError(f"unknown user {_plain(users_or_histories)!r}: the model's user ids are "
                                     f"integers", where="users_or_histories") from None
            rows = np.searchsorted(self.user_ids_, users)
            rows = np.minimum(rows, max(self.n_users_ - 1, 0))
            bad = self.user_ids_[rows] != users
            if bad.any():
                raise RecommendError(f"unknown user {_plain(users[np.flatnonzero(bad)[0]])!r}", where="users_or_histories",
                                     hint="pass new users' histories as a sparse matrix, or use recommend_from_interactions")
            histories = self.interactions_[rows]
        codes, scores = self._rank(histories, k=k, exclude_seen=exclude_seen, exclude=exclude,
                                   restrict_to=restrict_to)
        ids = self._ids(codes)
        return (ids[0], scores[0]) if single else (ids, scores)

    def recommend_from_interactions(self, items_or_ratings, *, k: int = 10, exclude=None,
                                    restrict_to=None) -> tuple[np.ndarray, np.ndarray]:
        """What the exported model answers for a new user.

        Parameters
        ----------
        items_or_ratings : sequence of item ids, or dict of item id -> rating
            Unknown items are ignored (``n_unknown_`` of the last call counts them). With no
            known item, the answer is the ``k`` most popular items (``popularity_``), score 0.
        k : int >= 0
        exclude : sequence of item ids, optional
            Excluded in addition to the user's own items.
        restrict_to : sequence of item ids, optional

        Returns
        -------
        ids : np.ndarray [shape=(k,)]
        scores : np.ndarray[float64] [shape=(k,)]
        """
        self._check_fitted()
        if isinstance(items_or_ratings, dict):
            items, ratings = list(items_or_ratings), np.asarray(list(items_or_ratings.values()), dtype=np.float64)
        else:
            items = list(items_or_ratings)
            ratings = np.ones(len(items))
        codes, known = encode_items(self.item_ids_, items)
        self.n_unknown_ = int((~known).sum())
        row = {int(c): float(r) for c, r in zip(codes[known], ratings[known])}
        histories = sp.csr_matrix((list(row.values()), (np.zeros(len(row), dtype=np.int64), list(row))),
                                  shape=(1, self.n_items_))
        if not row and k:  # a new user: the most popular items, as Pippin's runtime answers for the file
            return self._popular(k=k, exclude=exclude, restrict_to=restrict_to)
        codes, scores = self._rank(histories, k=k, exclude_seen=True, exclude=exclude, restrict_to=restrict_to)
        return self._ids(codes)[0], scores[0]

    def _popular(self, *, k, exclude, restrict_to):
        from ..pipelines.runtime.item_similarity import popular_topk

        if not isinstance(k, (int, np.integer)) or k < 0:
            raise RecommendError(f"k={k!r}; expected an integer >= 0", where="k")
        codes, scores = popular_topk(self.popularity_, k=int(k), exclude=self._item_mask(exclude, name="exclude", n_rows=1),
                                     restrict=self._item_mask(restrict_to, name="restrict_to", n_rows=1))
        return self._ids(codes)[0], scores[0]

    def similar_items(self, items, *, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items of each given item (its learned neighbours).

        Returns
        -------
        ids : np.ndarray [shape=(n, k)]
            1-D for a single item; ``-1`` pads items with fewer than ``k`` neighbours.
        scores : np.ndarray[float64] [shape=(n, k)]
        """
        self._check_fitted()
        single = np.isscalar(items)
        codes, known = encode_items(self.item_ids_, list(np.atleast_1d(np.asarray(items, dtype=object))))
        if not known.all():
            unknown = np.atleast_1d(np.asarray(items, dtype=object))[np.flatnonzero(~known)[0]]
            raise RecommendError(f"unknown item {_plain(unknown)!r}", where="items")
        n = len(codes)
        out_c = np.full((n, k), -1, dtype=np.int64)
        out_v = np.full((n, k), -np.inf)
        rows = self.similarity_[codes]  # each row is stored best first: take its first k
        mask = np.arange(k)[np.newaxis, :] < np.minimum(np.diff(rows.indptr), k)[:, np.newaxis]
        pos = (rows.indptr[:-1, np.newaxis] + np.arange(k)[np.newaxis, :])[mask]
        out_c[mask] = rows.indices[pos]
        out_v[mask] = rows.data[pos]
        ids = self._ids(out_c)
        return (ids[0], out_v[0]) if single else (ids, out_v)

    def export(self, path: str | os.PathLike, **options) -> "os.PathLike":
        """Write the model as a Core ML ``ItemSimilarityRecommender`` (spec v4); see ``export.build_spec``."""
        from .export import export

        self._check_fitted()
        return export(self, path, **options)
