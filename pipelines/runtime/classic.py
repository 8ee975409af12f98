"""What the classic (non-network) Core ML model kinds share: one feature vector in, typed outputs out.

The GLM, support vector and tree ensemble models read their inputs as one
feature vector per example: the declared inputs, in description order, each
``double``/``int64`` giving one column and each multiArray its flattened values,
concatenated into a float64 matrix [shape=(n_examples, n_features)]. They compute
in float64, as Core ML does for these kinds.

A classifier's ``predictedFeatureName`` output is the label array
[shape=(n_examples,)] (str objects or int64) and its ``predictedProbabilitiesName``
output the probabilities [shape=(n_examples, n_classes)] in class-label order;
``predict`` turns the latter into a ``{label: probability}`` dict.

Load-time checks raise ``SpecError`` naming the field (``<file>: glmClassifier.offset``);
bad inputs at predict raise ``PipelineError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...spec.errors import SpecError
from ..errors import PipelineError
from .features import MULTIARRAY_DTYPES, feature_kind
from .model import RunnableModel

__all__ = ["ClassicModel", "read_class_labels", "as_declared_output", "check_finite"]


def read_class_labels(message, *, where: str) -> np.ndarray:
    """A classic classifier's ``ClassLabels`` oneof as an array (object str or int64).

    Raises ``SpecError`` when the oneof is unset or empty.
    """
    which = message.WhichOneof("ClassLabels")
    if which == "stringClassLabels":
        labels = np.array(list(message.stringClassLabels.vector), dtype=object)
    elif which == "int64ClassLabels":
        labels = np.array(list(message.int64ClassLabels.vector), dtype=np.int64)
    else:
        raise SpecError("no class labels, expected stringClassLabels or int64ClassLabels", where=where)
    if labels.size == 0:
        raise SpecError(f"{which} is empty, expected at least one label", where=f"{where}.{which}")
    if len(set(labels.tolist())) != labels.size:
        raise SpecError(f"{which} repeats a label", where=f"{where}.{which}")
    return labels


def check_finite(values: np.ndarray, *, where: str) -> np.ndarray:
    """Return ``values``; raise ``SpecError`` at ``where`` when one is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad)), values.shape)
        raise SpecError(f"value {values[index]!r} at index {list(map(int, index))} is not finite", where=where)
    return values


def as_declared_output(description, values: np.ndarray) -> Any:
    """Shape a float64 result [shape=(n_examples, d)] as the declared output feature's batch value."""
    kind = feature_kind(description)
    if kind == "doubleType":
        return values.reshape(values.shape[0], -1)[:, 0].astype(np.float64)
    if kind == "int64Type":
        return values.reshape(values.shape[0], -1)[:, 0].astype(np.int64)
    if kind == "multiArrayType":
        dtype = MULTIARRAY_DTYPES.get(description.type.multiArrayType.dataType, np.float64)
        shape = tuple(int(d) for d in description.type.multiArrayType.shape)
        if shape and int(np.prod(shape)) == values[0].size:
            values = values.reshape((values.shape[0],) + shape)
        return values.astype(dtype)
    if kind == "dictionaryType":
        return [{i: float(v) for i, v in enumerate(row)} for row in values]
    raise PipelineError(f"output {description.name!r} is a {kind[:-4]}, which this model kind cannot produce")


class ClassicModel(RunnableModel):
    """Base of the classic kinds: builds the input matrix and the (classifier) outputs.

    Subclasses set ``self.n_features`` (or None to accept any width) and implement
    ``_compute(x) -> np.ndarray`` (regressors: [shape=(n_examples, n_targets)];
    classifiers: ``(class_index, probabilities)``).
    """

    n_features: int | None = None
    class_labels: np.ndarray | None = None

    @property
    def prefix(self) -> str:
        return f"{self.where}: {self.kind}"

    def input_matrix(self, inputs: dict[str, Any]) -> np.ndarray:
        """The declared inputs concatenated per example [shape=(n_examples, n_features)], float64."""
        columns = []
        for name, description in self.input_descriptions.items():
            if name not in inputs:
                raise PipelineError(f"missing input {name!r}", where=self.where)
            kind = feature_kind(description)
            value = inputs[name]
            if kind in ("doubleType", "int64Type", "multiArrayType"):
                array = np.asarray(value, dtype=np.float64)
                columns.append(array.reshape(array.shape[0], -1))
            elif kind == "dictionaryType":
                columns.append(_dicts_to_dense(value, self.n_features, where=f"{self.where}: input {name!r}"))
            else:
                raise PipelineError(f"input {name!r} is a {kind[:-4]}, expected numbers", where=self.where)
        x = columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise PipelineError(f"the inputs hold {x.shape[1]} values per example, expected {self.n_features}",
                                where=self.where)
        return x

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = self.input_matrix(inputs)
        if self.class_labels is None:
            values = self._compute(x)
            return {name: as_declared_output(d, values) for name, d in self.output_descriptions.items()}
        index, probabilities = self._compute(x)
        description = self.spec.description
        outputs: dict[str, Any] = {}
        for name, out in self.output_descriptions.items():
            if name == description.predictedProbabilitiesName:
                outputs[name] = probabilities
            elif name == description.predictedFeatureName or len(self.output_descriptions) == 1:
                outputs[name] = self.class_labels[index]
            else:
                raise PipelineError(f"output {name!r} is neither the predicted label nor the probabilities",
                                    where=self.where)
        return outputs

    def _compute(self, x: np.ndarray):
        raise NotImplementedError

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Predict one example; a classifier's probabilities come back as ``{label: probability}``."""
        result = super().predict(inputs)
        name = self.spec.description.predictedProbabilitiesName
        if self.class_labels is not None and name in result:
            result[name] = {label: float(p) for label, p in zip(self.class_labels.tolist(), result[name])}
        return result


def _dicts_to_dense(rows: list, width: int | None, *, where: str) -> np.ndarray:
    """``[{index: value}, ...]`` (int keys, 0-based) -> dense float64 [shape=(n_examples, width)]."""
    if width is None:
        width = 1 + max((int(k) for row in rows for k in row), default=-1)
    dense = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        for key, value in row.items():
            if not 0 <= int(key) < width:
                raise PipelineError(f"key {key!r} of example {i} is outside 0..{width - 1}", where=where)
            dense[i, int(key)] = value
    return dense
