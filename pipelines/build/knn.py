"""Building ``KNearestNeighborsClassifier`` specs (updatable by default, spec version 4).

The interface follows Core ML's: one multiArray input of ``n_dimensions`` floats,
a label output (string or int64, set by the default label's type) and a
``{label: probability}`` output, ``numberOfNeighbors`` with its allowed range or
set, and, when updatable, training inputs ``(input, label)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from .base import SpecBuilder

__all__ = ["KNearestNeighborsClassifier"]

# fact: apple/coremltools:coremltools/_deps (_MINIMUM_NEAREST_NEIGHBORS_SPEC_VERSION = 4, Core ML 3)
KNN_SPEC_VERSION = 4
_FLOAT32, _DOUBLE = 65568, 65600


class KNearestNeighborsClassifier(SpecBuilder):
    """Build a k-nearest-neighbours classifier model.

    Parameters
    ----------
    n_dimensions : int > 0
        Length of the input vector.
    default_label : str or int
        Predicted when the index is empty; its type fixes the label type.
    k : int > 0
        ``numberOfNeighbors`` default value.
    k_range : (int, int), optional
        Allowed values of ``k`` as an inclusive range; default ``(1, 1000)``.
    k_set : sequence of int, optional
        Allowed values of ``k`` as a set (instead of ``k_range``).
    k_input : str, optional
        Also declare an optional int64 input of this name that overrides ``k`` per prediction.
    weighting : {"uniform", "inverse_distance"}
    index : {"linear", "kd_tree"}
    leaf_size : int > 0
        kd-tree leaf size.
    input_name, label_name, probabilities_name : str
        Feature names (``probabilities_name`` defaults to ``label_name + "Probs"``).
    updatable : bool
        Mark the model updatable (examples appended by ``update``).

    Examples
    --------
    >>> knn = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1)
    >>> knn.add_samples([[0, 0], [1, 1]], ["a", "b"]).model().predict({"features": [0.9, 1]})["label"]
    'b'
    """

    def __init__(self, *, n_dimensions: int, default_label: str | int, k: int = 5,
                 k_range: tuple[int, int] | None = None, k_set: Sequence[int] | None = None,
                 k_input: str | None = None, weighting: str = "uniform", index: str = "linear",
                 leaf_size: int = 30, input_name: str = "features", label_name: str = "label",
                 probabilities_name: str | None = None, updatable: bool = True, double_input: bool = False):
        self.n_dimensions = n_dimensions
        self.default_label = default_label
        self.k = k
        self.k_range = k_range
        self.k_set = k_set
        self.k_input = k_input
        self.weighting = weighting
        self.index = index
        self.leaf_size = leaf_size
        self.input_name = input_name
        self.label_name = label_name
        self.probabilities_name = probabilities_name
        self.updatable = updatable
        self.double_input = double_input
        self._samples: list[np.ndarray] = []
        self._labels: list[Any] = []

    @property
    def string_labels(self) -> bool:
        if isinstance(self.default_label, str):
            return True
        if isinstance(self.default_label, (int, np.integer)) and not isinstance(self.default_label, bool):
            return False
        raise PipelineError(f"default_label must be a str or an int, got {self.default_label!r}",
                            where="KNearestNeighborsClassifier.default_label")

    def add_samples(self, samples, labels) -> "KNearestNeighborsClassifier":
        """Add labelled examples to the index.

        Parameters
        ----------
        samples : array-like [shape=(n_samples, n_dimensions)]
        labels : array-like [shape=(n_samples,)]
            str or int, matching ``default_label``'s type.
        """
        x = np.asarray(samples, dtype=np.float32)
        labels = list(np.asarray(labels).reshape(-1).tolist())
        if x.ndim != 2 or x.shape[1] != self.n_dimensions:
            raise PipelineError(f"samples have shape {x.shape}, expected (n_samples, {self.n_dimensions})",
                                where="KNearestNeighborsClassifier.add_samples")
        if len(labels) != len(x):
            raise PipelineError(f"{len(labels)} labels for {len(x)} samples, expected one each",
                                where="KNearestNeighborsClassifier.add_samples")
        want = str if self.string_labels else int
        bad = [v for v in labels if not isinstance(v, want) or isinstance(v, bool)]
        if bad:
            raise PipelineError(f"label {bad[0]!r} is not a {want.__name__} like the default label",
                                where="KNearestNeighborsClassifier.add_samples")
        self._samples.append(x)
        self._labels.extend(labels)
        return self

    def _check(self) -> None:
        where = "KNearestNeighborsClassifier"
        if int(self.n_dimensions) <= 0:
            raise PipelineError(f"n_dimensions={self.n_dimensions!r}, expected > 0", where=where)
        if self.weighting not in ("uniform", "inverse_distance"):
            raise PipelineError(f"weighting={self.weighting!r}, expected 'uniform' or 'inverse_distance'",
                                where=where)
        if self.index not in ("linear", "kd_tree"):
            raise PipelineError(f"index={self.index!r}, expected 'linear' or 'kd_tree'", where=where)
        if self.index == "kd_tree" and int(self.leaf_size) <= 0:
            raise PipelineError(f"leaf_size={self.leaf_size!r}, expected > 0", where=where)
        if self.k_set is not None and self.k_range is not None:
            raise PipelineError("give k_range or k_set, not both", where=where)
        lo, hi = self.k_range or (1, 1000)
        ok = (self.k in set(self.k_set)) if self.k_set is not None else (1 <= lo <= self.k <= hi)
        if not ok or self.k < 1:
            allowed = sorted(self.k_set) if self.k_set is not None else (lo, hi)
            raise PipelineError(f"k={self.k!r} is not within its allowed values {allowed}", where=where)

    def _features(self, spec) -> None:
        d = spec.description
        dtype = _DOUBLE if self.double_input else _FLOAT32
        targets = [d.input] + ([d.trainingInput] if self.updatable else [])
        for target in targets:
            f = target.add()
            f.name = self.input_name
            f.type.multiArrayType.dataType = dtype
            f.type.multiArrayType.shape.append(int(self.n_dimensions))
        if self.k_input:
            f = d.input.add()
            f.name = self.k_input
            f.type.int64Type.SetInParent()
            f.type.isOptional = True
        label = d.output.add()
        label.name = self.label_name
        probs = d.output.add()
        probs.name = self.probabilities_name or self.label_name + "Probs"
        if self.string_labels:
            label.type.stringType.SetInParent()
            probs.type.dictionaryType.stringKeyType.SetInParent()
        else:
            label.type.int64Type.SetInParent()
            probs.type.dictionaryType.int64KeyType.SetInParent()
        if self.updatable:
            t = d.trainingInput.add()
            t.CopyFrom(label)
        d.predictedFeatureName = label.name
        d.predictedProbabilitiesName = probs.name

    def to_spec(self) -> Model:
        """The model spec (a new ``pippin.spec.Model`` each call)."""
        self._check()
        spec = Model()
        spec.specificationVersion = KNN_SPEC_VERSION
        spec.isUpdatable = bool(self.updatable)
        self._features(spec)
        knn = spec.kNearestNeighborsClassifier
        index = knn.nearestNeighborsIndex
        index.numberOfDimensions = int(self.n_dimensions)
        for block in self._samples:
            for row in block:
                index.floatSamples.add().vector.extend(row.tolist())
        if self.index == "kd_tree":
            index.singleKdTreeIndex.leafSize = int(self.leaf_size)
        else:
            index.linearIndex.SetInParent()
        index.squaredEuclideanDistance.SetInParent()
        knn.numberOfNeighbors.defaultValue = int(self.k)
        if self.k_set is not None:
            knn.numberOfNeighbors.set.values.extend(sorted(int(v) for v in self.k_set))
        else:
            lo, hi = self.k_range or (1, 1000)
            knn.numberOfNeighbors.range.minValue, knn.numberOfNeighbors.range.maxValue = int(lo), int(hi)
        if self.string_labels:
            knn.stringClassLabels.SetInParent()
            knn.stringClassLabels.vector.extend(self._labels)
            knn.defaultStringLabel = self.default_label
        else:
            knn.int64ClassLabels.SetInParent()
            knn.int64ClassLabels.vector.extend(int(v) for v in self._labels)
            knn.defaultInt64Label = int(self.default_label)
        if self.weighting == "inverse_distance":
            knn.inverseDistanceWeighting.SetInParent()
        else:
            knn.uniformWeighting.SetInParent()
        return spec
