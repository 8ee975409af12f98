"""Running ``kNearestNeighborsClassifier`` models, and updating them by appending examples.

Definitions (Core ML's ``NearestNeighbors.proto``, and Pippin's where Core ML
leaves a choice open):

- distance: squared Euclidean, ``d(x, s) = sum((x - s) ** 2)``;
- the ``k`` nearest samples vote (``k`` = ``numberOfNeighbors.defaultValue``, or
  an ``int64`` input when the spec declares one, checked against the allowed
  range or set; ``k`` larger than the number of samples means all samples);
- weights: uniform weighting gives each neighbour 1; inverse-distance weighting
  gives ``1 / d`` with ``d`` the squared distance; if some neighbours are at
  distance 0, only those vote, with weight 1 each;
- the **probabilities** output is each label's share of the total vote weight of
  the ``k`` neighbours: ``p(label) = sum of weights of neighbours with that label /
  sum of all k weights``; labels with no neighbour among the ``k`` get 0, and the
  dictionary has one key per distinct label in the index;
- the predicted label is the one with the largest vote weight; ties go to the
  label whose nearest neighbour is closest;
- with no samples at all, the prediction is the default label and the
  probabilities dictionary is empty.

Batches are computed at once: for a linear index, one float32 matrix product and an
``argpartition`` per block of rows (blocks spread over the CPU cores), with the
few candidates' distances then recomputed exactly; for a kd-tree index, one
``scipy.spatial.cKDTree.query`` over the batch (all cores).
"""

from __future__ import annotations

from typing import Any

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import PipelineError
from .features import feature_kind
from .model import RunnableModel, register_kind

__all__ = ["KNearestNeighborsModel", "vote"]

_BLOCK_ELEMENTS = 1 << 21  # rows x samples per distance block (8 MB of float32)


def allowed_k(parameter) -> tuple[str, Any]:
    """``("range", (lo, hi))``, ``("set", values)`` or ``("any", None)`` for an Int64Parameter."""
    which = parameter.WhichOneof("AllowedValues")
    if which == "range":
        return "range", (int(parameter.range.minValue), int(parameter.range.maxValue))
    if which == "set":
        return "set", tuple(int(v) for v in parameter.set.values)
    return "any", None


def vote(distances: np.ndarray, neighbour_classes: np.ndarray, *, n_classes: int, inverse: bool):
    """Weighted vote of each row's neighbours.

    Parameters
    ----------
    distances : np.ndarray [shape=(n_examples, k)]
        Squared distances, ascending along each row.
    neighbour_classes : np.ndarray [shape=(n_examples, k)]
        The class index of each neighbour.
    n_classes : int
    inverse : bool
        Inverse-distance weighting instead of uniform.

    Returns
    -------
    winners : np.ndarray [shape=(n_examples,)]
        Winning class index per row.
    shares : np.ndarray [shape=(n_examples, n_classes)]
        Each class's share of the vote weight (rows sum to 1).
    """
    n, k = distances.shape
    if inverse:
        exact = distances <= 0.0
        with np.errstate(divide="ignore"):
            weights = np.where(exact.any(axis=1, keepdims=True), exact.astype(np.float64),
                               1.0 / np.maximum(distances, np.finfo(np.float64).tiny))
    else:
        weights = np.ones((n, k))
    flat = (np.arange(n)[:, None] * n_classes + neighbour_classes).ravel()
    scores = np.bincount(flat, weights=weights.ravel(), minlength=n * n_classes).reshape(n, n_classes)
    # rank of each class's nearest neighbour, to break ties toward the closest
    first = np.full((n, n_classes), k, dtype=np.int64)
    ranks = np.broadcast_to(np.arange(k), (n, k))
    np.minimum.at(first, (np.repeat(np.arange(n), k), neighbour_classes.ravel()), ranks.ravel())
    best = scores.max(axis=1, keepdims=True)
    tied = scores >= best * (1 - 1e-12)
    winners = np.where(tied, first, k + 1).argmin(axis=1)
    shares = scores / scores.sum(axis=1, keepdims=True)
    return winners, shares


def _read_samples(index, *, where: str) -> np.ndarray:
    """The index's samples as a float32 matrix [shape=(n_samples, n_dimensions)], checked at load:
    a positive ``numberOfDimensions``, every sample that long, every value finite."""
    dim = int(index.numberOfDimensions)
    if dim <= 0:
        raise PipelineError(f"numberOfDimensions is {dim}, expected a positive value",
                            where=f"{where}.numberOfDimensions")
    for i, sample in enumerate(index.floatSamples):
        if len(sample.vector) != dim:
            raise PipelineError(f"sample has {len(sample.vector)} values, expected numberOfDimensions {dim}",
                                where=f"{where}.floatSamples[{i}]")
    samples = np.array([list(v.vector) for v in index.floatSamples], dtype=np.float32).reshape(-1, dim)
    if not np.isfinite(samples).all():
        i = int(np.flatnonzero(~np.isfinite(samples).all(axis=1))[0])
        raise PipelineError("sample holds a value that is not finite, expected finite values",
                            where=f"{where}.floatSamples[{i}]")
    return samples


@register_kind("kNearestNeighborsClassifier")
class KNearestNeighborsModel(RunnableModel):
    """A loaded k-NN classifier.

    Attributes
    ----------
    samples : np.ndarray [shape=(n_samples, n_dimensions)]
    labels : np.ndarray [shape=(n_samples,)]
        str (object) or int64 labels, one per sample.
    class_labels : list
        The distinct labels, sorted; the probability columns follow this order.
    """

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        knn = spec.kNearestNeighborsClassifier
        index = knn.nearestNeighborsIndex
        self.n_dimensions = int(index.numberOfDimensions)
        self.samples = _read_samples(index, where=f"{self.where}: kNearestNeighborsClassifier.nearestNeighborsIndex")
        self.string_labels = knn.WhichOneof("ClassLabels") != "int64ClassLabels" and (
            knn.WhichOneof("DefaultClassLabel") != "defaultInt64Label")
        raw = knn.stringClassLabels.vector if self.string_labels else knn.int64ClassLabels.vector
        self.labels = np.array(list(raw), dtype=object if self.string_labels else np.int64)
        if len(self.labels) != len(self.samples):
            raise PipelineError(f"{len(self.labels)} class labels for {len(self.samples)} samples, expected one each",
                                where=f"{self.where}: kNearestNeighborsClassifier.ClassLabels")
        which_default = knn.WhichOneof("DefaultClassLabel")
        self.default_label = getattr(knn, which_default) if which_default else None
        self.k_default = int(knn.numberOfNeighbors.defaultValue) or 1
        self.k_allowed = allowed_k(knn.numberOfNeighbors)
        self.inverse = knn.WhichOneof("WeightingScheme") == "inverseDistanceWeighting"
        self.index_kind = index.WhichOneof("IndexType") or "linearIndex"
        self.leaf_size = int(index.singleKdTreeIndex.leafSize) or 30
        self._classify()
        self._find_features()

    def _classify(self) -> None:
        if len(self.labels):
            classes, self.sample_classes = np.unique(self.labels, return_inverse=True)
            self.class_labels = list(classes)
        else:
            self.class_labels, self.sample_classes = [], np.zeros(0, dtype=np.int64)
        self.tree = None
        if self.index_kind == "singleKdTreeIndex" and len(self.samples):
            from scipy.spatial import cKDTree  # here: ~0.1 s to import, for k-d tree models only

            self.tree = cKDTree(self.samples.astype(np.float64), leafsize=self.leaf_size)
        self.sample_norms = np.einsum("ij,ij->i", self.samples, self.samples)
        self.samples_t = np.ascontiguousarray(self.samples.T)  # C-contiguous: BLAS runs it twice as fast

    def _find_features(self) -> None:
        arrays = [n for n, d in self.input_descriptions.items() if feature_kind(d) == "multiArrayType"]
        if len(arrays) != 1:
            raise PipelineError(f"k-NN classifier needs exactly one multiArray input, found {arrays}",
                                where=self.where)
        self.input_name = arrays[0]
        if self.input_descriptions[self.input_name].type.isOptional:
            raise PipelineError(f"input {self.input_name!r} is optional, but every prediction needs it",
                                where=f"{self.where}: description.input")
        ints = [n for n, d in self.input_descriptions.items() if feature_kind(d) == "int64Type"]
        self.k_input = ints[0] if ints else None
        self.label_name = self.spec.description.predictedFeatureName or next(iter(self.output_descriptions))
        probs = self.spec.description.predictedProbabilitiesName
        self.probabilities_name = probs if probs in self.output_descriptions else None

    # -- prediction -------------------------------------------------------
    def check_k(self, k: int) -> int:
        """Check a requested ``k`` against the spec's allowed values; raise naming them."""
        how, allowed = self.k_allowed
        ok = k >= 1 and (how == "any" or (how == "range" and allowed[0] <= k <= allowed[1])
                         or (how == "set" and k in allowed))
        if not ok:
            raise PipelineError(f"numberOfNeighbors {k} is outside its allowed values {how} {allowed}",
                                where=f"{self.where}: kNearestNeighborsClassifier.numberOfNeighbors")
        return int(k)

    def _linear_block(self, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest samples of a block of rows, by brute force.

        Candidates come from one float32 matrix product (``|s|^2 - 2 x.s``, ranking only;
        ``|x|^2`` is the same for a whole row) and an ``argpartition`` keeping ``k + 4``
        per row; their distances are then recomputed exactly in float64 as
        ``sum((x - s) ** 2)`` (the expanded form cancels in float32) and sorted.
        """
        n = len(self.samples)
        kk = min(n, k + 4)
        scores = block @ self.samples_t
        scores *= -2.0
        scores += self.sample_norms[None, :]
        cand = np.argpartition(scores, kk - 1, axis=1)[:, :kk] if kk < n else np.broadcast_to(
            np.arange(n), (len(block), n))
        diff = self.samples[cand].astype(np.float64) - block[:, None, :].astype(np.float64)
        exact = np.einsum("ijk,ijk->ij", diff, diff)
        order = np.lexsort((cand, exact), axis=1)[:, :k]  # ties: lower sample index first
        return np.take_along_axis(exact, order, axis=1), np.take_along_axis(cand, order, axis=1)

    def neighbours(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest samples of each row of ``x``: (squared distances, sample indices), ascending.

        Parameters
        ----------
        x : np.ndarray [shape=(n_examples, n_dimensions)]
        k : int  (at most n_samples)

        Returns
        -------
        distances, indices : np.ndarray [shape=(n_examples, k)]
        """
        if self.tree is not None:
            dist, idx = self.tree.query(x.astype(np.float64), k=k, workers=-1)
            dist, idx = dist.reshape(len(x), k), idx.reshape(len(x), k)
            return dist ** 2, idx
        blocks = range(0, len(x), max(1, _BLOCK_ELEMENTS // max(1, len(self.samples))))
        step = blocks.step
        with ThreadPoolExecutor(max_workers=max(1, min(len(blocks), os.cpu_count() or 1))) as pool:
            parts = list(pool.map(lambda start: self._linear_block(x[start:start + step], k), blocks))
        out_d = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, k))
        out_i = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, k), dtype=np.int64)
        return out_d, out_i

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs[self.input_name], dtype=np.float32).reshape(len(inputs[self.input_name]), -1)
        if x.shape[1] != self.n_dimensions:
            raise PipelineError(f"input {self.input_name!r} has {x.shape[1]} values per example, "
                                f"expected {self.n_dimensions}", where=self.where)
        k = self.k_default
        if self.k_input is not None and self.k_input in inputs:
            ks = np.unique(np.asarray(inputs[self.k_input], dtype=np.int64))
            if len(ks) > 1:
                return self._predict_mixed_k(x, np.asarray(inputs[self.k_input], dtype=np.int64))
            k = int(ks[0])
        k = self.check_k(k)
        return self._vote(x, k)

    def _predict_mixed_k(self, x, ks):
        parts = [self._vote(x[ks == k], self.check_k(int(k))) for k in np.unique(ks)]
        out = {}
        for name in parts[0]:
            out[name] = np.empty((len(x),) + parts[0][name].shape[1:], dtype=parts[0][name].dtype)
            for k, part in zip(np.unique(ks), parts):
                out[name][ks == k] = part[name]
        return out

    def _vote(self, x: np.ndarray, k: int) -> dict[str, Any]:
        n_classes = len(self.class_labels)
        if n_classes == 0:
            labels = np.array([self.default_label] * len(x), dtype=object if self.string_labels else np.int64)
            probs = np.zeros((len(x), 0))
        else:
            distances, idx = self.neighbours(x, min(k, len(self.samples)))
            winners, probs = vote(distances, self.sample_classes[idx], n_classes=n_classes, inverse=self.inverse)
            labels = np.asarray(self.class_labels, dtype=object if self.string_labels else np.int64)[winners]
        out = {self.label_name: labels}
        if self.probabilities_name:
            out[self.probabilities_name] = probs
        return out

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict one example; the probabilities output is a ``{label: share}`` dict."""
        self._check_names(inputs)
        batch = {n: np.asarray([v]) for n, v in inputs.items() if n in self.input_descriptions}
        out = self.predict_batch(batch)
        label = out[self.label_name][0]
        result = {self.label_name: label.item() if isinstance(label, np.generic) else label}
        if self.probabilities_name:
            result[self.probabilities_name] = {
                (c.item() if isinstance(c, np.generic) else c): float(p)
                for c, p in zip(self.class_labels, out[self.probabilities_name][0])
            }
        return result

    # -- update -------------------------------------------------------------
    def update(self, training_data: dict[str, Any], *, epochs=None, progress=None, **overrides):
        """Append labelled examples to the index; returns a new model (this one is unchanged).

        Parameters
        ----------
        training_data : dict
            ``{input_name: [shape=(n_examples, n_dimensions)], label_name: [shape=(n_examples,)]}``
            (the spec's training inputs).
        epochs, progress, **overrides
            Accepted for a uniform ``update`` signature; k-NN has no epochs. ``progress``, if
            given, is called once with ``{"event": "epoch_end", "epoch": 0, "n_examples": n}``.
        """
        if not self.spec.isUpdatable:
            raise PipelineError("k-NN model is not updatable (isUpdatable is false)", where=self.where)
        if overrides:
            raise PipelineError(f"k-NN update takes no parameters, got {sorted(overrides)}", where=self.where)
        for name in (self.input_name, self.label_name):
            if name not in training_data:
                raise PipelineError(f"training data lacks {name!r}; it has {sorted(training_data)}",
                                    where=self.where)
        x = np.asarray(training_data[self.input_name], dtype=np.float32)
        x = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(1, -1)
        labels = np.asarray(training_data[self.label_name]).reshape(-1)
        if x.shape[1] != self.n_dimensions or len(labels) != len(x):
            raise PipelineError(f"training data has {x.shape} samples and {len(labels)} labels, expected "
                                f"(n, {self.n_dimensions}) and n labels", where=self.where)
        spec = type(self.spec)()
        spec.CopyFrom(self.spec)
        knn = spec.kNearestNeighborsClassifier
        for row in x:
            knn.nearestNeighborsIndex.floatSamples.add().vector.extend(row.tolist())
        if self.string_labels:
            knn.stringClassLabels.vector.extend(str(v) for v in labels)
        else:
            try:
                knn.int64ClassLabels.vector.extend(int(v) for v in labels)
            except ValueError:
                raise PipelineError(f"labels must be integers for this model, got {labels[:3]!r}",
                                    where=self.where) from None
        if progress is not None:
            progress({"event": "epoch_end", "epoch": 0, "n_examples": len(x)})
        return type(self)(spec, path=self.path)
