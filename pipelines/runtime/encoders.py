"""Running the categorical encoders: ``oneHotEncoder``, ``categoricalMapping`` and ``dictVectorizer``.

Definitions (Core ML's protos of the same names):

- oneHotEncoder: a string or int64 value (or a multiArray of one value) becomes a
  row of ``n_categories`` values with 1 at the category's position; an unknown
  value is an error under ``ErrorOnUnknown`` and an all-zero row under
  ``IgnoreUnknown``; a dictionary output (``outputSparse``) holds only the 1;
- categoricalMapping: ``stringToInt64Map`` or ``int64ToStringMap``; an unknown
  value maps to ``ValueOnUnknown`` (an error when unset); a sequence input maps
  element by element;
- dictVectorizer: a ``{key: number}`` dictionary becomes a vector with the
  value of key ``stringToIndex[i]`` (or ``int64ToIndex[i]``) at position ``i``;
  keys not in the list are dropped; a dictionary output holds the non-zero
  ``{position: value}`` entries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...spec.errors import SpecError
from ..errors import PipelineError
from .classic import as_declared_output
from .features import feature_kind
from .transforms import _OneInOneOut
from .model import register_kind

__all__ = ["OneHotEncoderModel", "CategoricalMappingModel", "DictVectorizerModel"]


def _key(value):
    """A hashable category key: int for integral numbers, str otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def _sparse_or_dense(description, dense: np.ndarray) -> Any:
    if feature_kind(description) == "dictionaryType":
        return [{int(i): float(row[i]) for i in np.flatnonzero(row)} for row in dense]
    return as_declared_output(description, dense)


@register_kind("oneHotEncoder")
class OneHotEncoderModel(_OneInOneOut):
    """``categories``: the category list; ``positions``: category -> column."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.oneHotEncoder
        which = message.WhichOneof("CategoryType")
        if which is None:
            raise SpecError("no categories, expected stringCategories or int64Categories",
                            where=f"{self.prefix}.CategoryType")
        self.categories = list(getattr(message, which).vector)
        if not self.categories:
            raise SpecError(f"{which} is empty", where=f"{self.prefix}.{which}")
        self.positions = {}
        for i, category in enumerate(self.categories):
            self.positions.setdefault(_key(category), i)
        self.ignore_unknown = message.handleUnknown == 1

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        value = inputs[self.input_name]
        values = np.asarray(value, dtype=object).reshape(len(value), -1)
        if values.shape[1] != 1:
            raise PipelineError(f"input {self.input_name!r} holds {values.shape[1]} values per example, expected 1",
                                where=self.where)
        columns = np.array([self.positions.get(_key(v), -1) for v in values[:, 0]], dtype=np.int64)
        unknown = columns < 0
        if unknown.any() and not self.ignore_unknown:
            raise PipelineError(f"input {self.input_name!r}: value {values[np.argmax(unknown), 0]!r} is not one of "
                                f"the {len(self.categories)} categories (handleUnknown is ErrorOnUnknown)",
                                where=self.where)
        dense = np.zeros((len(columns), len(self.categories)))
        known = np.flatnonzero(~unknown)
        dense[known, columns[known]] = 1.0
        return {self.output_name: _sparse_or_dense(self.output_description, dense)}


@register_kind("categoricalMapping")
class CategoricalMappingModel(_OneInOneOut):
    """``mapping``: input value -> output value; ``default``: the value for unknown inputs (or None)."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.categoricalMapping
        which = message.WhichOneof("MappingType")
        if which is None:
            raise SpecError("no mapping, expected stringToInt64Map or int64ToStringMap",
                            where=f"{self.prefix}.MappingType")
        self.to_int = which == "stringToInt64Map"
        self.mapping = {_key(k): v for k, v in getattr(message, which).map.items()}
        unknown = message.WhichOneof("ValueOnUnknown")
        self.default = getattr(message, unknown) if unknown else None
        if unknown and (unknown == "int64Value") != self.to_int:
            raise SpecError(f"{unknown} does not match the mapping's output type ({which})",
                            where=f"{self.prefix}.ValueOnUnknown")

    def _map(self, value):
        out = self.mapping.get(_key(value), self.default)
        if out is None:
            raise PipelineError(f"input {self.input_name!r}: value {value!r} is not in the mapping and no "
                                "ValueOnUnknown is set", where=self.where)
        return out

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        value = inputs[self.input_name]
        if feature_kind(self.input_description) == "sequenceType":
            return {self.output_name: [[self._map(v) for v in row] for row in value]}
        flat = np.asarray(value, dtype=object).reshape(len(value))
        mapped = [self._map(v) for v in flat]
        return {self.output_name: np.array(mapped, dtype=np.int64 if self.to_int else object)}


@register_kind("dictVectorizer")
class DictVectorizerModel(_OneInOneOut):
    """``positions``: dictionary key -> output position."""

    def __init__(self, spec, *, path=None):
        super().__init__(spec, path=path)
        message = spec.dictVectorizer
        which = message.WhichOneof("Map")
        if which is None:
            raise SpecError("no key list, expected stringToIndex or int64ToIndex", where=f"{self.prefix}.Map")
        keys = list(getattr(message, which).vector)
        if not keys:
            raise SpecError(f"{which} is empty", where=f"{self.prefix}.{which}")
        self.positions = {}
        for i, key in enumerate(keys):
            if _key(key) in self.positions:
                raise SpecError(f"key {key!r} appears twice", where=f"{self.prefix}.{which}")
            self.positions[_key(key)] = i
        self.width = len(keys)

    def _predict_batch(self, inputs: dict[str, Any]) -> dict[str, Any]:
        rows = inputs[self.input_name]
        dense = np.zeros((len(rows), self.width))
        for r, entries in enumerate(rows):
            for key, value in entries.items():
                column = self.positions.get(_key(key))
                if column is not None:
                    dense[r, column] = value
        return {self.output_name: _sparse_or_dense(self.output_description, dense)}
