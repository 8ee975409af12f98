"""Rules for ``soundAnalysisPreprocessing`` (``linkedModel``: ``linked.py``).

fact: apple/coremltools:mlmodel/src/Validation/SoundAnalysisPreprocessingValidator.cpp
(vggish: one FLOAT32 input of shape [15600], one FLOAT32 output of shape [1, 96, 64]).
"""

from __future__ import annotations

from ._report import Report, feature_type_name
from .interface import DATA_TYPE_NAMES

__all__ = ["check_sound", "VGGISH_INPUT_SHAPE", "VGGISH_OUTPUT_SHAPE"]

# fact: SoundAnalysisPreprocessingValidator.cpp (FRONTEND_PROCESSING_* constants)
VGGISH_INPUT_SHAPE = [15600]
VGGISH_OUTPUT_SHAPE = [1, 96, 64]
_FLOAT32 = 65568


def _check_array(features, field, shape, report):
    if len(features) != 1:
        report.add(f"description.{field}", f"{len(features)} {field}s, expected exactly one "
                   f"FLOAT32 multi-array of shape {shape}", "sound-io")
        return
    feature = features[0]
    path = f"description.{field}[0]"
    got = feature_type_name(feature.type)
    if got != "multiArrayType":
        report.add(path, f"{field} {feature.name!r} is {got}, expected a FLOAT32 multi-array of "
                   f"shape {shape}", "sound-io")
        return
    arr = feature.type.multiArrayType
    if list(arr.shape) != shape:
        report.add(path, f"{field} {feature.name!r} has shape {list(arr.shape)}, expected {shape}",
                   "sound-io")
    if arr.dataType != _FLOAT32:
        got = DATA_TYPE_NAMES.get(arr.dataType, arr.dataType)
        report.add(path, f"{field} {feature.name!r} has dataType {got}, expected FLOAT32", "sound-io")


def check_sound(model, report: Report) -> None:
    """VGGish preprocessing: the exact input and output arrays."""
    sap = model.soundAnalysisPreprocessing
    if sap.WhichOneof("SoundAnalysisPreprocessingType") is None:
        report.add("soundAnalysisPreprocessing", "no preprocessing type set, expected vggish",
                   "sound-params")
        return
    _check_array(model.description.input, "input", VGGISH_INPUT_SHAPE, report)
    _check_array(model.description.output, "output", VGGISH_OUTPUT_SHAPE, report)

