"""Running the numeric feature transforms: ``scaler``, ``normalizer``, ``imputer``,
``arrayFeatureExtractor`` and ``featureVectorizer``.

Definitions (Core ML's protos of the same names):

- scaler: ``y = (x + shiftValue) * scaleValue``, each list of length 0 (no shift /
  scale 1), 1 (broadcast) or the input's width;
- normalizer: ``y = x / norm(x)`` per example with ``LMax`` (largest absolute
  value), ``L1`` or ``L2``; an all-zero example stays zero;
- imputer: values equal to the replace value (NaN when none is set, for doubles)
  become the imputed value: a scalar, or per column for ``imputedDoubleArray`` /
  ``imputedInt64Array``; a dictionary input gets the imputed dictionary's entries
  for keys it lacks;
- arrayFeatureExtractor: the input's values at ``extractIndex`` (flat indices), as a
  number when the output is declared ``double``/``int64``, else as a multiArray;
- featureVectorizer: the ``inputList`` columns concatenated in order; a number is
  one value, a multiArray its flattened ``inputDimensions`` values, a dictionary
  ``{index: value}`` a dense run of ``inputDimensions`` values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...spec.errors import SpecError
from ..errors import PipelineError
from .classic import as_declared_output, check_finite
from .features import feature_kind
from .model import RunnableModel, register_kind

__all__ = ["ScalerModel", "NormalizerModel", "ImputerModel", "ArrayFeatureExtractorModel", "FeatureVectorizerModel"]


class _OneInOneOut(RunnableModel):
    """A transform of one input feature into one output feature."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        self.prefix = f"{self.where}: {self.kind}"
        if len(self.input_descriptions) != 1 or len(self.output_descriptions) != 1:
            raise SpecError(f"{len(self.input_descriptions)} inputs and {len(self.output_descriptions)} outputs, "
                            "expected one of each", where=f"{self.where}: description")
        self.input_name, self.input_description = next(iter(self.input_descriptions.items()))
        self.output_name, self.output_description = next(iter(self.output_descriptions.items()))

    def _matrix(self, inputs) -> np.ndarray:
        value = np.asarray(inputs[self.input_name], dtype=np.float64)
        return value.reshape(value.shape[0], -1)

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {self.output_name: as_declared_output(self.output_description, self._apply(self._matrix(inputs)))}


@register_kind("scaler")
class ScalerModel(_OneInOneOut):
    """``(x + shift) * scale`` (``shift``, ``scale``: float64 arrays of length 1 or the input width)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        self.shift = check_finite(np.array(list(spec.scaler.shiftValue) or [0.0]), where=f"{self.prefix}.shiftValue")
        self.scale = check_finite(np.array(list(spec.scaler.scaleValue) or [1.0]), where=f"{self.prefix}.scaleValue")

    def _apply(self, x: np.ndarray) -> np.ndarray:
        for name, values in (("shiftValue", self.shift), ("scaleValue", self.scale)):
            if values.size not in (1, x.shape[1]):
                raise SpecError(f"{values.size} values for an input of width {x.shape[1]}, expected 1 or "
                                f"{x.shape[1]}", where=f"{self.prefix}.{name}")
        return (x + self.shift) * self.scale


@register_kind("normalizer")
class NormalizerModel(_OneInOneOut):
    """Scale each example to unit ``LMax``, ``L1`` or ``L2`` norm."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        self.norm = int(spec.normalizer.normType)
        if self.norm not in (0, 1, 2):
            raise SpecError(f"unknown normType {self.norm}", where=f"{self.prefix}.normType")

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if self.norm == 0:
            norms = np.abs(x).max(axis=1, initial=0.0)
        elif self.norm == 1:
            norms = np.abs(x).sum(axis=1)
        else:
            norms = np.sqrt((x * x).sum(axis=1))
        return x / np.where(norms > 0, norms, 1.0)[:, None]


@register_kind("arrayFeatureExtractor")
class ArrayFeatureExtractorModel(_OneInOneOut):
    """Pick ``indices`` (int64 [shape=(n_picked,)]) of each example's flattened input."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        self.indices = np.array(list(spec.arrayFeatureExtractor.extractIndex), dtype=np.int64)
        if self.indices.size == 0:
            raise SpecError("no indices, expected at least one", where=f"{self.prefix}.extractIndex")
        shape = list(self.input_description.type.multiArrayType.shape)
        if shape and self.indices.max() >= int(np.prod(shape)):
            raise SpecError(f"index {int(self.indices.max())} is outside the input of shape {shape}",
                            where=f"{self.prefix}.extractIndex")

    def _apply(self, x: np.ndarray) -> np.ndarray:
        if self.indices.max() >= x.shape[1]:
            raise PipelineError(f"index {int(self.indices.max())} is outside the input's {x.shape[1]} values",
                                where=self.where)
        return x[:, self.indices]


@register_kind("imputer")
class ImputerModel(_OneInOneOut):
    """Replace missing values (see the module docstring)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.imputer
        which = message.WhichOneof("ImputedValue")
        if which is None:
            raise SpecError("no imputed value set", where=f"{self.prefix}.ImputedValue")
        self.kind_in = feature_kind(self.input_description)
        self.imputed = getattr(message, which)
        if which in ("imputedDoubleArray", "imputedInt64Array"):
            self.imputed = np.array(list(self.imputed.vector), dtype=np.float64)
        elif which in ("imputedStringDictionary", "imputedInt64Dictionary"):
            self.imputed = dict(self.imputed.map)
        replace = message.WhichOneof("ReplaceValue")
        self.replace = getattr(message, replace) if replace else None
        if isinstance(self.replace, float) and np.isnan(self.replace):
            self.replace = None  # NaN: the default
        expected = {"doubleType": ("imputedDoubleValue",), "int64Type": ("imputedInt64Value",),
                    "stringType": ("imputedStringValue",),
                    "multiArrayType": ("imputedDoubleValue", "imputedDoubleArray", "imputedInt64Value",
                                       "imputedInt64Array"),
                    "dictionaryType": ("imputedStringDictionary", "imputedInt64Dictionary")}.get(self.kind_in, ())
        if which not in expected:
            raise SpecError(f"{which} cannot fill a {self.kind_in[:-4]} input, expected one of {list(expected)}",
                            where=f"{self.prefix}.ImputedValue")
        if self.kind_in in ("int64Type", "stringType") and self.replace is None:
            raise SpecError(f"no replace value for a {self.kind_in[:-4]} input", where=f"{self.prefix}.ReplaceValue")

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        value = inputs[self.input_name]
        if self.kind_in == "dictionaryType":
            out = [{**self.imputed, **row} for row in value]
        elif self.kind_in == "stringType":
            out = np.array([self.imputed if v == self.replace else v for v in value], dtype=object)
        elif self.kind_in == "int64Type":
            out = np.where(np.asarray(value) == self.replace, self.imputed, value).astype(np.int64)
        else:
            x = np.asarray(value, dtype=np.float64)
            flat = x.reshape(x.shape[0], -1)
            missing = np.isnan(flat) if self.replace is None else flat == self.replace
            fill = np.broadcast_to(np.asarray(self.imputed, dtype=np.float64), flat.shape[1:]) \
                if np.ndim(self.imputed) == 0 or np.size(self.imputed) == flat.shape[1] else None
            if fill is None:
                raise SpecError(f"{np.size(self.imputed)} imputed values for an input of width {flat.shape[1]}",
                                where=f"{self.prefix}.ImputedValue")
            flat = np.where(missing, fill[None, :], flat)
            if self.kind_in == "doubleType":
                return {self.output_name: flat[:, 0]}
            return {self.output_name: as_declared_output(self.output_description, flat)}
        return {self.output_name: out}


@register_kind("featureVectorizer")
class FeatureVectorizerModel(RunnableModel):
    """Concatenate the ``inputList`` columns into one multiArray [shape=(n_examples, sum of inputDimensions)]."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        prefix = f"{self.where}: featureVectorizer"
        self.columns = []
        for i, column in enumerate(spec.featureVectorizer.inputList):
            if column.inputColumn not in self.input_descriptions:
                raise SpecError(f"column {column.inputColumn!r} is not an input of the model "
                                f"({sorted(self.input_descriptions)})", where=f"{prefix}.inputList[{i}]")
            if column.inputDimensions < 1:
                raise SpecError("inputDimensions is 0, expected at least 1", where=f"{prefix}.inputList[{i}]")
            self.columns.append((column.inputColumn, int(column.inputDimensions)))
        if not self.columns:
            raise SpecError("inputList is empty", where=f"{prefix}.inputList")
        if len(self.output_descriptions) != 1:
            raise SpecError(f"{len(self.output_descriptions)} outputs, expected 1", where=f"{self.where}: description")
        self.output_name, self.output_description = next(iter(self.output_descriptions.items()))

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        parts = []
        for name, width in self.columns:
            value = inputs[name]
            if feature_kind(self.input_descriptions[name]) == "dictionaryType":
                part = np.zeros((len(value), width))
                for row, entries in enumerate(value):
                    for key, v in entries.items():
                        if not 0 <= int(key) < width:
                            raise PipelineError(f"input {name!r}: key {key!r} of example {row} is outside "
                                                f"0..{width - 1}", where=self.where)
                        part[row, int(key)] = v
            else:
                array = np.asarray(value, dtype=np.float64)
                part = array.reshape(array.shape[0], -1)
                if part.shape[1] != width:
                    raise PipelineError(f"input {name!r} holds {part.shape[1]} values per example, expected "
                                        f"inputDimensions={width}", where=self.where)
            parts.append(part)
        return {self.output_name: as_declared_output(self.output_description, np.concatenate(parts, axis=1))}
