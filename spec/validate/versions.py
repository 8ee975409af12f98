"""Which ``specificationVersion`` each part of a model needs, and which OS releases run it.

The facts (which feature arrived in which Core ML release) come from the format's
own downgrade logic: a model may only carry a version at or above the newest
feature it uses.
"""

from __future__ import annotations

from ._report import Report, article

__all__ = ["OS_RELEASES", "NEWEST_VERSION", "requirements", "check_versions", "layer_min_version"]

# fact: apple/coremltools:mlmodel/src/Globals.hpp (specification version per iOS release)
# Other platforms follow Apple's yearly release trains (macOS/watchOS/tvOS/visionOS).
OS_RELEASES = {
    1: {"iOS": "11.0", "macOS": "10.13", "watchOS": "4.0", "tvOS": "11.0"},
    2: {"iOS": "11.2", "macOS": "10.13.2", "watchOS": "4.2", "tvOS": "11.2"},
    3: {"iOS": "12.0", "macOS": "10.14", "watchOS": "5.0", "tvOS": "12.0"},
    4: {"iOS": "13.0", "macOS": "10.15", "watchOS": "6.0", "tvOS": "13.0"},
    5: {"iOS": "14.0", "macOS": "11.0", "watchOS": "7.0", "tvOS": "14.0"},
    6: {"iOS": "15.0", "macOS": "12.0", "watchOS": "8.0", "tvOS": "15.0"},
    7: {"iOS": "16.0", "macOS": "13.0", "watchOS": "9.0", "tvOS": "16.0"},
    8: {"iOS": "17.0", "macOS": "14.0", "watchOS": "10.0", "tvOS": "17.0", "visionOS": "1.0"},
    9: {"iOS": "18.0", "macOS": "15.0", "watchOS": "11.0", "tvOS": "18.0", "visionOS": "2.0"},
    10: {"iOS": "26.0", "macOS": "26.0", "watchOS": "26.0", "tvOS": "26.0", "visionOS": "26.0"},
}
NEWEST_VERSION = max(OS_RELEASES)

# fact: apple/coremltools:mlmodel/src/Utils.cpp (isIOS12NeuralNetworkLayer: the layers of
# Core ML 1/2; everything else in the layer oneof arrived with Core ML 3, i.e. version 4)
_V1_LAYERS = frozenset((
    "convolution innerProduct batchnorm activation pooling padding concat lrn softmax split add "
    "multiply unary upsample bias l2normalize reshape flatten permute reduce loadConstant scale "
    "simpleRecurrent gru uniDirectionalLSTM biDirectionalLSTM crop average max min dot mvn "
    "embedding sequenceRepeat reorganizeData slice"
).split())
_V2_LAYERS = frozenset({"custom"})  # fact: Utils.cpp hasIOS11_2Features (custom layers)
_V3_LAYERS = frozenset({"resizeBilinear", "cropResize"})  # fact: Utils.cpp hasIOS12NewNeuralNetworkLayers
# fact: apple/coremltools:mlmodel/src/Utils.cpp (hasIOS14NeuralNetworkFeatures: Core ML 4 layers)
_V5_LAYERS = frozenset({"cumSum", "oneHot", "clampedReLU", "argSort", "pooling3d",
                        "globalPooling3d", "sliceBySize", "convolution3d"})

# Model kinds by the version that introduced them.
# fact: apple/coremltools:mlmodel/src/Utils.cpp (hasIOS12Features .. hasIOS17Features)
_KIND_VERSIONS = {
    "customModel": 3, "textClassifier": 3, "wordTagger": 3, "nonMaximumSuppression": 3,
    "bayesianProbitRegressor": 3,
    "kNearestNeighborsClassifier": 4, "linkedModel": 4, "itemSimilarityRecommender": 4,
    "soundAnalysisPreprocessing": 4,
    "serializedModel": 5, "mlProgram": 6, "classConfidenceThresholding": 8,
}
_RANK5_ARRAY = 0  # NeuralNetworkMultiArrayShapeMapping.RANK5_ARRAY_MAPPING
_RANK5_IMAGE = 0  # NeuralNetworkImageShapeMapping.RANK5_IMAGE_MAPPING
_NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")


def _weight_fields(params):
    """WeightParams messages directly inside a layer's parameters (one level of nesting)."""
    for field, value in params.ListFields():
        if field.message_type is None or field.is_repeated:
            continue
        if field.message_type.name == "WeightParams":
            yield field.name, value
        elif field.message_type.name.endswith("WeightParams"):
            for sub_field, sub in value.ListFields():
                if sub_field.message_type is not None and sub_field.message_type.name == "WeightParams":
                    yield f"{field.name}.{sub_field.name}", sub


def layer_min_version(layer) -> tuple[int, str]:
    """The lowest ``specificationVersion`` that can hold ``layer``, and why."""
    kind = layer.WhichOneof("layer")
    if kind is None:
        return 1, ""
    params = getattr(layer, kind)
    # conditions from Utils.cpp: flags that turn an old layer into a Core ML 4 (version 5) one
    if kind == "innerProduct" and params.int8DynamicQuantize:
        return 5, "innerProduct with int8DynamicQuantize"
    if kind == "batchedMatmul" and params.int8DynamicQuantize:
        return 5, "batchedMatmul with int8DynamicQuantize"
    if kind == "upsample" and (params.linearUpsampleMode != 0 or len(params.fractionalScalingFactor)):
        return 5, "upsample with linearUpsampleMode or fractionalScalingFactor"
    if kind == "reorganizeData" and params.mode == 2:  # PIXEL_SHUFFLE
        return 5, "reorganizeData in PIXEL_SHUFFLE mode"
    if kind == "concatND" and params.interleave:
        return 5, "concatND with interleave"
    if kind == "sliceDynamic" and (len(layer.input) == 7 or len(params.squeezeMasks)):
        return 5, "sliceDynamic with 7 inputs or squeezeMasks"
    if kind in _V5_LAYERS:
        return 5, f"layer type {kind!r} (Core ML 4)"
    if kind == "convolution" and len(layer.input) != 1:
        return 4, "convolution with weights as a second input"
    if kind in _V3_LAYERS:
        return 3, f"layer type {kind!r} (Core ML 2)"
    if kind in _V2_LAYERS:
        return 2, f"layer type {kind!r}"
    if kind not in _V1_LAYERS:
        return 4, f"layer type {kind!r} (Core ML 3)"
    for name, weights in _weight_fields(params):
        if len(weights.float16Value):
            return 2, f"float16 weights in {kind}.{name}"
        if len(weights.rawValue) and weights.HasField("quantization"):
            return 3, f"quantized weights in {kind}.{name}"
    return 1, ""


def _feature_requirements(desc, path, out):
    type_ = desc.type
    which = type_.WhichOneof("Type")
    if which == "multiArrayType":
        arr = type_.multiArrayType
        if arr.dataType == 65552:  # FLOAT16
            out.append((7, path, "a FLOAT16 multi-array"))
        elif arr.dataType == 131080:  # INT8
            out.append((10, path, "an INT8 multi-array"))
        if arr.WhichOneof("ShapeFlexibility"):
            out.append((3, path, "a flexible multi-array shape"))
        if type_.isOptional and arr.WhichOneof("defaultOptionalValue"):
            out.append((5, path, "a default value for an optional input"))
    elif which == "imageType":
        if type_.imageType.WhichOneof("SizeFlexibility"):
            out.append((3, path, "a flexible image size"))
        if type_.imageType.colorSpace == 40:  # GRAYSCALE_FLOAT16
            out.append((7, path, "a GRAYSCALE_FLOAT16 image"))
    elif which == "sequenceType":
        out.append((3, path, "a sequence feature"))
    elif which == "stateType":
        out.append((9, path, "a state feature"))


def requirements(model, prefix: str = "") -> list[tuple[int, str, str]]:
    """Every ``(min_version, path, reason)`` the model and its pipeline stages need."""
    out: list[tuple[int, str, str]] = []
    _walk(model, prefix, out)
    return out


def _join(prefix, sub):
    return f"{prefix}.{sub}" if prefix else sub


def _walk(model, prefix, out):
    if model.isUpdatable:
        out.append((4, _join(prefix, "isUpdatable"), "an updatable model"))
    desc = model.description
    for field in ("input", "output"):
        for i, feature in enumerate(getattr(desc, field)):
            _feature_requirements(feature, _join(prefix, f"description.{field}[{i}]"), out)
    if len(desc.functions) or desc.defaultFunctionName:
        out.append((9, _join(prefix, "description.functions"), "multiple functions"))
    kind = model.WhichOneof("Type")
    if kind is None:
        return
    body = getattr(model, kind)
    kind_path = _join(prefix, kind)
    if kind in _KIND_VERSIONS:
        out.append((_KIND_VERSIONS[kind], kind_path, f"{article(kind)} {kind} model"))
    if kind == "visionFeaturePrint" and body.HasField("objects"):
        out.append((5, kind_path, "visionFeaturePrint.objects"))
    elif kind == "visionFeaturePrint" and body.HasField("scene"):
        out.append((8 if body.scene.version == 2 else 3, kind_path, "visionFeaturePrint.scene"))
    elif kind == "audioFeaturePrint" and body.HasField("sound"):
        out.append((6, kind_path, "audioFeaturePrint.sound"))
    elif kind in _NN_KINDS:
        if body.arrayInputShapeMapping != _RANK5_ARRAY:
            out.append((4, _join(kind_path, "arrayInputShapeMapping"), "a non-rank-5 array input mapping"))
        if body.imageInputShapeMapping != _RANK5_IMAGE:
            out.append((4, _join(kind_path, "imageInputShapeMapping"), "a non-rank-5 image input mapping"))
        for i, layer in enumerate(body.layers):
            version, reason = layer_min_version(layer)
            if version > 1:
                out.append((version, _join(kind_path, f"layers[{i}]({layer.name})"), reason))
    elif kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        pipe = body if kind == "pipeline" else body.pipeline
        pipe_path = kind_path if kind == "pipeline" else _join(kind_path, "pipeline")
        for i, stage in enumerate(pipe.models):
            _walk(stage, _join(pipe_path, f"models[{i}]"), out)


def check_versions(model, report: Report) -> None:
    """Problems with ``specificationVersion``: missing, unknown, or too low for a feature used."""
    version = model.specificationVersion
    if version <= 0:
        report.add("specificationVersion", f"specificationVersion is {version}, expected 1 or more "
                   "(the field is missing or corrupt)", "spec-version")
        return
    if version > NEWEST_VERSION:
        report.add("specificationVersion", f"specificationVersion {version} is newer than any Core ML "
                   f"release pippin knows (newest: {NEWEST_VERSION})", "spec-version")
    for needed, path, reason in requirements(model):
        if needed > version:
            ios = OS_RELEASES[needed]["iOS"]
            report.add(path, f"{reason} needs specificationVersion >= {needed} (iOS {ios}), "
                       f"the model has {version}", "spec-version")
