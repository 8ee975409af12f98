"""Checking and batching model inputs and outputs against their declared feature types.

A *batch* value has the examples on its first axis (or is a list, one entry per
example):

=============  ==================================================================
feature type   batch value
=============  ==================================================================
int64          ``np.ndarray[int64]`` [shape=(n_examples,)]
double         ``np.ndarray[float64]`` [shape=(n_examples,)]
string         ``np.ndarray[object]`` of ``str`` [shape=(n_examples,)]
multiArray     ``np.ndarray`` [shape=(n_examples, *declared_shape)], dtype of the
               declared dataType (float32 / float64 / int32 / float16)
dictionary     ``list[dict]`` of length n_examples
sequence       ``list[list]`` of length n_examples
image          ``np.ndarray[uint8]`` [shape=(n_examples, H, W)] or (n_examples, H, W, 3)
=============  ==================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PipelineError

MULTIARRAY_DTYPES = {65568: np.float32, 65600: np.float64, 131104: np.int32, 65552: np.float16}


def feature_kind(description) -> str:
    """The oneof member name of a ``FeatureDescription``'s type, e.g. ``"multiArrayType"``."""
    return description.type.WhichOneof("Type") or "unset"


def declared_shape(description) -> tuple[int, ...] | None:
    """A multiArray's default shape (``shape`` field, else the first enumerated or ranged lower bound)."""
    array = description.type.multiArrayType
    if array.shape:
        return tuple(int(d) for d in array.shape)
    which = array.WhichOneof("ShapeFlexibility")
    if which == "enumeratedShapes" and array.enumeratedShapes.shapes:
        return tuple(int(d) for d in array.enumeratedShapes.shapes[0].shape)
    if which == "shapeRange":
        return tuple(int(r.lowerBound) for r in array.shapeRange.sizeRanges)
    return None


def allowed_shape(description, shape: tuple[int, ...]) -> bool:
    """Whether ``shape`` (one example, no batch axis) fits the multiArray's declared shapes."""
    array = description.type.multiArrayType
    which = array.WhichOneof("ShapeFlexibility")
    if which == "enumeratedShapes":
        return any(tuple(s.shape) == shape for s in array.enumeratedShapes.shapes)
    if which == "shapeRange":
        ranges = array.shapeRange.sizeRanges
        return len(ranges) == len(shape) and all(
            r.lowerBound <= d and (r.upperBound < 0 or d <= r.upperBound) for r, d in zip(ranges, shape)
        )
    return not array.shape or tuple(array.shape) == shape


def expected_batch_shape(description) -> str:
    """The batch shapes a multiArray accepts, for messages: ``(n_examples, 2, 3)``, ``(n_examples, *shape)
    with shape [1, 3] or [2, 3]`` (enumerated), or ``(n_examples, 1..4, 3, 8..any)`` (ranges)."""
    array = description.type.multiArrayType
    which = array.WhichOneof("ShapeFlexibility")
    if which == "enumeratedShapes" and len(array.enumeratedShapes.shapes) > 1:
        shapes = [str(list(map(int, s.shape))) for s in array.enumeratedShapes.shapes]
        return "(n_examples, *shape) with shape " + ", ".join(shapes[:-1]) + " or " + shapes[-1]
    if which == "shapeRange" and array.shapeRange.sizeRanges:
        axes = [str(r.lowerBound) if r.upperBound == r.lowerBound else
                f"{r.lowerBound}..{r.upperBound if r.upperBound >= 0 else 'any'}" for r in array.shapeRange.sizeRanges]
        return "(n_examples, " + ", ".join(axes) + ")"
    return "(n_examples, " + ", ".join(map(str, declared_shape(description) or ())) + ")"


def to_batch(description, value: Any, *, where: str) -> Any:
    """Check one feature's batch value against its description and normalise it.

    Raises ``PipelineError`` naming the feature and what was expected.
    """
    kind = feature_kind(description)
    name = description.name
    if kind == "multiArrayType":
        dtype = MULTIARRAY_DTYPES.get(description.type.multiArrayType.dataType, np.float32)
        try:
            array = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"input {name!r} is not numeric ({exc})", where=where) from None
        if array.ndim == 0 or not allowed_shape(description, tuple(array.shape[1:])):
            raise PipelineError(f"input {name!r} has shape {tuple(array.shape)}, expected "
                                f"{expected_batch_shape(description)}", where=where)
        return array
    if kind in ("int64Type", "doubleType"):
        dtype = np.int64 if kind == "int64Type" else np.float64
        try:
            array = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError):
            raise PipelineError(f"input {name!r} must be {kind[:-4]} values, got {value!r:.80}", where=where) from None
        if array.ndim != 1:
            raise PipelineError(f"input {name!r} has shape {array.shape}, expected (n_examples,)", where=where)
        return array
    if kind == "stringType":
        array = np.asarray(value, dtype=object)
        if array.ndim != 1:
            raise PipelineError(f"input {name!r} has shape {array.shape}, expected (n_examples,)", where=where)
        return array
    if kind in ("dictionaryType", "sequenceType"):
        if isinstance(value, (dict, str, bytes)) or not hasattr(value, "__len__"):
            raise PipelineError(f"input {name!r} must be a list with one entry per example", where=where)
        return list(value)
    return value  # images and the rest: the model kind converts them


def single_to_batch(description, value: Any) -> Any:
    """Wrap one example's value into a batch of one."""
    kind = feature_kind(description)
    if kind in ("dictionaryType", "sequenceType"):
        return [value]
    if kind == "imageType":
        return value[np.newaxis] if isinstance(value, np.ndarray) else [value]
    return np.asarray(value)[np.newaxis] if not isinstance(value, list) else np.asarray([value])


def batch_to_single(value: Any) -> Any:
    """The first (only) example of a batch value."""
    if isinstance(value, list):
        return value[0]
    if isinstance(value, np.ndarray):
        item = value[0]
        return item.item() if isinstance(item, np.generic) else item
    return value
