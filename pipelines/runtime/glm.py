"""Running ``glmRegressor`` and ``glmClassifier`` models (linear and logistic models).

Definitions (Core ML's ``GLMRegressor.proto`` / ``GLMClassifier.proto``):

- scores: ``z = W x + offset`` with one ``weights`` row per target (regressor) or
  per scored class (classifier), [shape=(n_examples, n_rows)];
- regressor transforms: ``NoTransform`` (z), ``Logit`` (``1 / (1 + exp(-z))``),
  ``Probit`` (the standard normal CDF of z);
- classifier, one row and two labels: ``p(label1) = f(z)``, ``p(label0) = 1 - f(z)``
  (f the Logit or Probit transform), whatever the class encoding;
- ``OneVsRest`` with one row per label: ``p = f(z) / sum(f(z))`` (each class
  scored against the rest, then normalised);
- ``ReferenceClass`` with ``n_classes - 1`` rows: the first label is the
  reference with score 0 and ``p = softmax([0, z])`` (Logit only: Core ML's probit
  is binary only);
- the predicted label is the one with the largest probability (the first on ties).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr, softmax

from ...spec.errors import SpecError
from .classic import ClassicModel, check_finite, read_class_labels
from .model import register_kind

__all__ = ["GLMRegressorModel", "GLMClassifierModel", "read_glm"]

_TRANSFORMS = {0: lambda z: z, 1: expit, 2: ndtr}  # GLMRegressor.PostEvaluationTransform


def read_glm(message, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(weights [shape=(n_rows, n_features)], offset [shape=(n_rows,)])``, checked.

    Raises ``SpecError`` for no rows, rows of unequal length, an offset count that
    is neither 0 nor one per row, or a value that is not finite.
    """
    rows = [list(row.value) for row in message.weights]
    if not rows:
        raise SpecError("no weights, expected one row per output", where=f"{where}.weights")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width or not row:
            raise SpecError(f"row has {len(row)} values, expected {width} (the length of weights[0]) and at least 1",
                            where=f"{where}.weights[{i}]")
    weights = check_finite(np.array(rows, dtype=np.float64), where=f"{where}.weights")
    offset = np.array(list(message.offset), dtype=np.float64)
    if offset.size == 0:
        offset = np.zeros(len(rows))
    if offset.size != len(rows):
        raise SpecError(f"{offset.size} values, expected one per weights row ({len(rows)})", where=f"{where}.offset")
    return weights, check_finite(offset, where=f"{where}.offset")


@register_kind("glmRegressor")
class GLMRegressorModel(ClassicModel):
    """A loaded GLM regressor: ``weights`` [shape=(n_targets, n_features)], ``offset`` [shape=(n_targets,)]."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.glmRegressor
        self.weights, self.offset = read_glm(message, where=self.prefix)
        self.n_features = self.weights.shape[1]
        transform = int(message.postEvaluationTransform)  # NoTransform = 0, Logit = 1, Probit = 2
        if transform not in _TRANSFORMS:
            raise SpecError(f"unknown transform {transform}", where=f"{self.prefix}.postEvaluationTransform")
        self.transform = _TRANSFORMS[transform]

    def _compute(self, x: np.ndarray) -> np.ndarray:
        return self.transform(x @ self.weights.T + self.offset)


@register_kind("glmClassifier")
class GLMClassifierModel(ClassicModel):
    """A loaded GLM classifier (see the module docstring for the probability rules)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.glmClassifier
        self.weights, self.offset = read_glm(message, where=self.prefix)
        self.n_features = self.weights.shape[1]
        self.class_labels = read_class_labels(message, where=self.prefix)
        enums = type(message)
        self.probit = message.postEvaluationTransform == enums.Probit
        if message.postEvaluationTransform not in (enums.Logit, enums.Probit):
            raise SpecError(f"unknown transform {message.postEvaluationTransform}",
                            where=f"{self.prefix}.postEvaluationTransform")
        self.one_vs_rest = message.classEncoding == enums.OneVsRest
        if message.classEncoding not in (enums.ReferenceClass, enums.OneVsRest):
            raise SpecError(f"unknown class encoding {message.classEncoding}", where=f"{self.prefix}.classEncoding")
        n_rows, n_classes = self.weights.shape[0], self.class_labels.size
        if n_classes < 2:
            raise SpecError(f"{n_classes} class label, expected at least 2", where=f"{self.prefix}.ClassLabels")
        self.binary = n_rows == 1 and n_classes == 2
        expected = n_classes if self.one_vs_rest else n_classes - 1
        if not self.binary and n_rows != expected:
            encoding = "OneVsRest" if self.one_vs_rest else "ReferenceClass"
            raise SpecError(f"{n_rows} weights rows for {n_classes} class labels, expected {expected} "
                            f"under {encoding}", where=f"{self.prefix}.weights")
        if self.probit and not self.binary:
            raise SpecError("the Probit transform is for two classes (one weights row) only",
                            where=f"{self.prefix}.postEvaluationTransform")

    def _compute(self, x: np.ndarray):
        z = x @ self.weights.T + self.offset
        if self.binary:
            p1 = (ndtr if self.probit else expit)(z[:, 0])
            probabilities = np.stack([1.0 - p1, p1], axis=1)
        elif self.one_vs_rest:
            scores = expit(z)
            probabilities = scores / scores.sum(axis=1, keepdims=True)
        else:
            probabilities = softmax(np.concatenate([np.zeros((z.shape[0], 1)), z], axis=1), axis=1)
        return np.argmax(probabilities, axis=1), probabilities
