"""Rules on a model's interface: feature descriptions, optional features, classifier outputs.

fact: apple/coremltools:mlmodel/src/Validation/InterfaceValidators.cpp and Validators.hpp
(validateFeatureDescription, validateOptional, validateClassifierInterface).
"""

from __future__ import annotations

from collections import Counter

from ._report import Report, article, feature_type_name

__all__ = [
    "check_description", "check_optional", "check_classifier_outputs",
    "check_class_labels", "features_equivalent", "type_text", "types_equivalent", "DATA_TYPE_NAMES",
]

DATA_TYPE_NAMES = _DATA_TYPES = {65568: "FLOAT32", 65600: "DOUBLE", 131104: "INT32", 65552: "FLOAT16", 131080: "INT8"}
_FLOAT16, _INT8, _FLOAT32, _DOUBLE, _INT32 = 65552, 131080, 65568, 65600, 131104
_COLOR_SPACES = {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}
# kinds that may have no inputs (from specification version 9 on)
# fact: apple/coremltools:mlmodel/src/Model.cpp (modelTypeAllowsEmptyInput)
_EMPTY_INPUT_KINDS = frozenset({"neuralNetwork", "neuralNetworkRegressor", "neuralNetworkClassifier",
                                "pipeline", "pipelineRegressor", "pipelineClassifier", "mlProgram"})
# kinds whose inputs may be optional (the others take none)
# fact: InterfaceValidators.cpp (validateOptional)
_OPTIONAL_OK = frozenset({"imputer", "treeEnsembleRegressor", "treeEnsembleClassifier", "pipeline",
                          "pipelineRegressor", "pipelineClassifier", "itemSimilarityRecommender",
                          "identity"})
_NN_LIKE = frozenset({"neuralNetwork", "neuralNetworkRegressor", "neuralNetworkClassifier",
                      "serializedModel", "mlProgram"})


def type_text(feature_type) -> str:
    """A short human spelling of a ``FeatureType``: ``MultiArray<FLOAT32>[1, 96, 64]``."""
    which = feature_type.WhichOneof("Type")
    opt = "?" if feature_type.isOptional else ""
    if which == "multiArrayType":
        arr = feature_type.multiArrayType
        dt = _DATA_TYPES.get(arr.dataType, f"INVALID({arr.dataType})")
        return f"MultiArray<{dt}>{list(arr.shape)}{opt}"
    if which == "imageType":
        img = feature_type.imageType
        return f"Image<{_COLOR_SPACES.get(img.colorSpace, 'INVALID')}>[{img.width}x{img.height}]{opt}"
    if which == "dictionaryType":
        key = feature_type.dictionaryType.WhichOneof("KeyType") or "unset"
        return f"Dictionary<{key.replace('KeyType', '')}, double>{opt}"
    if which == "sequenceType":
        elem = feature_type.sequenceType.WhichOneof("Type") or "unset"
        return f"Sequence<{elem.replace('Type', '')}>{opt}"
    if which is None:
        return "unset"
    return which.replace("Type", "").capitalize() + opt


def _rank(arr) -> int:
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "enumeratedShapes":
        return len(arr.enumeratedShapes.shapes[0].shape) if len(arr.enumeratedShapes.shapes) else 0
    if flex == "shapeRange":
        return len(arr.shapeRange.sizeRanges)
    return len(arr.shape)


def types_equivalent(a, b) -> bool:
    """Core ML's feature-type equality (optional-ness ignored, as Core ML does).

    fact: apple/coremltools:mlmodel/src/Comparison.cpp (operator== on FeatureType)
    """
    which = a.WhichOneof("Type")
    if which != b.WhichOneof("Type"):
        return False
    if which == "multiArrayType":
        x, y = a.multiArrayType, b.multiArrayType
        if x.dataType != y.dataType or _rank(x) != _rank(y):
            return False
        if not x.WhichOneof("ShapeFlexibility") and not y.WhichOneof("ShapeFlexibility"):
            return list(x.shape) == list(y.shape)
        return True
    if which == "dictionaryType":
        return a.dictionaryType.WhichOneof("KeyType") == b.dictionaryType.WhichOneof("KeyType")
    if which == "imageType":
        x, y = a.imageType, b.imageType
        return (x.width, x.height, x.colorSpace) == (y.width, y.height, y.colorSpace)
    if which == "sequenceType":
        return a.sequenceType.WhichOneof("Type") == b.sequenceType.WhichOneof("Type")
    if which == "stateType":
        x, y = a.stateType.arrayType, b.stateType.arrayType
        return x.dataType == y.dataType and list(x.shape) == list(y.shape)
    return True


def features_equivalent(a, b) -> bool:
    """Same name and an equivalent type."""
    return a.name == b.name and types_equivalent(a.type, b.type)


def _check_array(arr, name, path, version, is_input, report):
    flex = arr.WhichOneof("ShapeFlexibility") if version >= 3 else None
    if flex == "enumeratedShapes":
        shapes = [list(s.shape) for s in arr.enumeratedShapes.shapes]
        if not shapes:
            report.add(path, f"multi-array {name!r} enumerates no shapes", "feature-type")
        elif any(len(s) == 0 for s in shapes):
            report.add(path, f"multi-array {name!r} enumerates a shape with no dimensions", "feature-type")
        elif len(arr.shape) and list(arr.shape) not in shapes:
            report.add(path, f"multi-array {name!r} has default shape {list(arr.shape)}, "
                       f"which is not one of its enumerated shapes {shapes}", "feature-type")
    elif flex == "shapeRange":
        ranges = arr.shapeRange.sizeRanges
        for i, r in enumerate(ranges):
            if r.upperBound > 0 and r.lowerBound > r.upperBound:
                report.add(path, f"multi-array {name!r} dimension {i} has range "
                           f"[{r.lowerBound}, {r.upperBound}] with lower > upper", "feature-type")
        if len(arr.shape) and len(arr.shape) != len(ranges):
            report.add(path, f"multi-array {name!r} has a {len(arr.shape)}-d default shape "
                       f"but a {len(ranges)}-d shape range", "feature-type")
    if is_input and not len(arr.shape) and flex is None:
        report.add(path, f"multi-array input {name!r} has no shape, expected a shape or a "
                   "flexible shape", "feature-type")
    for i, dim in enumerate(arr.shape):
        if dim < 0:
            report.add(path, f"multi-array {name!r} has negative dimension {dim} at index {i}", "feature-type")
    dt = arr.dataType
    if dt not in _DATA_TYPES:
        report.add(path, f"multi-array {name!r} has dataType {dt}, expected FLOAT32, DOUBLE, "
                   "INT32, FLOAT16 or INT8", "feature-type")
    elif dt == _FLOAT16 and version < 7:
        report.add(path, f"multi-array {name!r} is FLOAT16, which needs specificationVersion >= 7, "
                   f"the model has {version}", "feature-type")
    elif dt == _INT8 and version < 10:
        report.add(path, f"multi-array {name!r} is INT8, which needs specificationVersion >= 10, "
                   f"the model has {version}", "feature-type")
    default = arr.WhichOneof("defaultOptionalValue")
    allowed = {"doubleDefaultValue": (_DOUBLE,), "floatDefaultValue": (_FLOAT32, _FLOAT16),
               "intDefaultValue": (_INT32, _INT8)}
    if default and dt not in allowed[default]:
        report.add(path, f"multi-array {name!r} has a {default} but dataType "
                   f"{_DATA_TYPES.get(dt, dt)}", "feature-type")


def _check_image(img, name, path, report):
    if img.colorSpace not in _COLOR_SPACES:
        report.add(path, f"image {name!r} has colorSpace {img.colorSpace}, expected GRAYSCALE, "
                   "RGB, BGR or GRAYSCALE_FLOAT16", "feature-type")
    flex = img.WhichOneof("SizeFlexibility")
    if flex is None and (img.width <= 0 or img.height <= 0):
        report.add(path, f"image {name!r} is {img.width}x{img.height}, expected a positive "
                   "width and height", "feature-type")


def check_feature(desc, path, version, role, report: Report) -> None:
    """One ``FeatureDescription``: a name and a valid, complete type."""
    if not desc.name:
        report.add(path, "feature has an empty name", "feature-name")
    name = desc.name
    if not desc.HasField("type") or desc.type.WhichOneof("Type") is None:
        report.add(path, f"feature {name!r} has no type", "feature-type")
        return
    type_ = desc.type
    which = type_.WhichOneof("Type")
    if which == "multiArrayType":
        _check_array(type_.multiArrayType, name, path, version, role == "input", report)
    elif which == "imageType":
        _check_image(type_.imageType, name, path, report)
    elif which == "dictionaryType":
        if type_.dictionaryType.WhichOneof("KeyType") is None:
            report.add(path, f"dictionary {name!r} has no key type, expected int64KeyType or "
                       "stringKeyType", "feature-type")
    elif which == "sequenceType":
        if version < 3:
            report.add(path, f"sequence {name!r} needs specificationVersion >= 3", "feature-type")
        if type_.sequenceType.WhichOneof("Type") is None:
            report.add(path, f"sequence {name!r} has no element type, expected int64Type or "
                       "stringType", "feature-type")
        r = type_.sequenceType.sizeRange
        if r.upperBound > 0 and r.lowerBound > r.upperBound:
            report.add(path, f"sequence {name!r} has size range [{r.lowerBound}, {r.upperBound}] "
                       "with lower > upper", "feature-type")
    elif which == "stateType":
        if role == "output":
            report.add(path, f"state feature {name!r} cannot be an output", "feature-type")
        if version < 9:
            report.add(path, f"state feature {name!r} needs specificationVersion >= 9", "feature-type")


def check_description(model, report: Report) -> None:
    """Inputs, outputs and training inputs of one model (not its pipeline stages)."""
    desc = model.description
    version = model.specificationVersion
    kind = model.WhichOneof("Type")
    if len(desc.functions) or desc.defaultFunctionName:
        if kind != "mlProgram":
            report.add("description.functions",
                       f"{article(kind)} {kind} model cannot have multiple functions",
                       "feature-type")
        return
    if not len(desc.input):
        if kind not in _EMPTY_INPUT_KINDS:
            report.add("description.input", f"{article(kind)} {kind} model needs one or more inputs",
                       "feature-count")
        elif version < 9:
            report.add("description.input", "a model without inputs needs specificationVersion >= 9, "
                       f"the model has {version}", "feature-count")
    if not len(desc.output):
        report.add("description.output", "the model has no outputs, expected one or more",
                   "feature-count")
    for role, field in (("input", "input"), ("output", "output"), ("training", "trainingInput")):
        seen = set()
        for i, feature in enumerate(getattr(desc, field)):
            path = f"description.{field}[{i}]"
            check_feature(feature, path, version, role, report)
            if feature.name in seen and feature.name:
                report.add(path, f"feature name {feature.name!r} appears twice in "
                           f"description.{field}", "feature-name")
            seen.add(feature.name)


def check_optional(model, report: Report) -> None:
    """No optional outputs; optional inputs only where the kind allows them."""
    desc = model.description
    kind = model.WhichOneof("Type")
    for i, feature in enumerate(desc.output):
        if feature.type.isOptional:
            report.add(f"description.output[{i}]", f"output {feature.name!r} is optional, "
                       "outputs cannot be optional", "optional-output")
    if kind in _NN_LIKE:
        plain = [f for f in desc.input if not f.type.isOptional or f.type.WhichOneof("Type") == "stateType"]
        if len(desc.input) and not plain:
            report.add("description.input", "every input is optional, a neural network needs at "
                       "least one required input", "optional-input")
    elif kind not in _OPTIONAL_OK:
        for i, feature in enumerate(desc.input):
            if feature.type.isOptional:
                report.add(f"description.input[{i}]", f"input {feature.name!r} is optional, "
                           f"{article(kind)} {kind} model takes no optional inputs", "optional-input")
    for i, feature in enumerate(desc.input):
        arr = feature.type.multiArrayType
        if feature.type.isOptional and feature.type.WhichOneof("Type") == "multiArrayType" \
                and arr.WhichOneof("defaultOptionalValue") and kind not in _NN_LIKE:
            report.add(f"description.input[{i}]", f"input {feature.name!r} has a default value, "
                       "which only neural networks allow", "optional-input")


def check_class_labels(params, path: str, report: Report, *, allow_empty: bool,
                       unique: bool = True) -> str | None:
    """``stringClassLabels`` / ``int64ClassLabels``; returns ``"string"``/``"int64"`` or None."""
    which = params.WhichOneof("ClassLabels")
    if which is None:
        if not allow_empty:
            report.add(path, "classifier has no class labels, expected stringClassLabels or "
                       "int64ClassLabels", "class-labels")
        return None
    labels = list(getattr(params, which).vector)
    if not labels and not allow_empty:
        report.add(f"{path}.{which}", "classifier declares class labels but lists none",
                   "class-labels")
    if unique and len(set(labels)) != len(labels):
        dupes = sorted((x for x, n in Counter(labels).items() if n > 1), key=str)[:5]
        report.add(f"{path}.{which}", f"class labels repeat: {dupes}", "class-labels")
    return "int64" if which == "int64ClassLabels" else "string"


def check_classifier_outputs(model, label_kind: str | None, report: Report, *,
                             require_name: bool = True) -> None:
    """``predictedFeatureName`` names an output of the label type; probabilities a dictionary."""
    desc = model.description
    outputs = {f.name: (i, f) for i, f in enumerate(desc.output)}
    name = desc.predictedFeatureName
    if not name and not require_name:
        pass
    elif not name:
        report.add("description.predictedFeatureName", "classifier has no predictedFeatureName",
                   "classifier-outputs")
    elif name not in outputs:
        report.add("description.predictedFeatureName", f"predictedFeatureName {name!r} is not "
                   f"an output; outputs are {sorted(outputs)}", "classifier-outputs")
    elif label_kind is not None:
        i, feature = outputs[name]
        want = "int64Type" if label_kind == "int64" else "stringType"
        got = feature_type_name(feature.type)
        if got != want:
            report.add(f"description.output[{i}]", f"predicted label output {name!r} is {got}, "
                       f"expected {want} to match the {label_kind} class labels", "classifier-outputs")
    prob = desc.predictedProbabilitiesName
    if prob:
        if prob not in outputs:
            report.add("description.predictedProbabilitiesName", f"predictedProbabilitiesName "
                       f"{prob!r} is not an output; outputs are {sorted(outputs)}", "classifier-outputs")
        else:
            i, feature = outputs[prob]
            got = feature_type_name(feature.type)
            if got not in ("dictionaryType", "multiArrayType"):
                report.add(f"description.output[{i}]", f"probabilities output {prob!r} is {got}, "
                           "expected dictionaryType", "classifier-outputs")
            elif got == "dictionaryType" and label_kind is not None:
                key = feature.type.dictionaryType.WhichOneof("KeyType")
                want = "int64KeyType" if label_kind == "int64" else "stringKeyType"
                if key != want:
                    report.add(f"description.output[{i}]", f"probabilities output {prob!r} has "
                               f"{key} keys, expected {want} to match the class labels",
                               "classifier-outputs")
