"""Rules for ``neuralNetwork`` / ``neuralNetworkClassifier`` / ``neuralNetworkRegressor``.

fact: apple/coremltools:mlmodel/src/Validation/NeuralNetwork/NeuralNetworkValidator.cpp
(validateNeuralNetworkTopLevel, validateNeuralNetwork: the layer graph, model outputs,
classifier probabilities) and NeuralNetworkValidatorUtils.hpp (input/output types).
"""

from __future__ import annotations

from ._report import Report, feature_type_name, layer_path
from .interface import check_class_labels, check_classifier_outputs
from .layer_params import check_layer_params
from .ranges import check_layer_ranges
from .updatable import check_updatable_network
from .versions import layer_min_version

__all__ = ["check_neural_network"]

_NN_IO_TYPES = ("multiArrayType", "imageType", "stateType")


def _check_io_types(features, field, report, kind):
    for i, feature in enumerate(features):
        got = feature_type_name(feature.type)
        if got not in _NN_IO_TYPES:
            report.add(f"description.{field}[{i}]", f"{kind} {field} {feature.name!r} is {got}, "
                       "expected multiArrayType or imageType", "feature-type")


def _check_shape_mapping(model, nn, kind, report):
    has_array_input = any(f.type.WhichOneof("Type") == "multiArrayType" for f in model.description.input)
    new_layer = next(((i, l) for i, l in enumerate(nn.layers) if layer_min_version(l)[0] >= 4), None)
    if new_layer is not None and nn.arrayInputShapeMapping == 0 and has_array_input:
        i, layer = new_layer
        report.add(f"{kind}.arrayInputShapeMapping", "is RANK5_ARRAY_MAPPING but layer "
                   f"{layer_path('layers', i, layer)} needs Core ML 3's EXACT_ARRAY_MAPPING",
                   "nn-shape-mapping")
    if nn.arrayInputShapeMapping == 0 and nn.imageInputShapeMapping != 0 and has_array_input:
        report.add(f"{kind}.arrayInputShapeMapping", "is RANK5_ARRAY_MAPPING while "
                   "imageInputShapeMapping is not RANK5_IMAGE_MAPPING", "nn-shape-mapping")


def _check_input_ranks(model, nn, report):
    """Core ML 1/2 networks (rank-5 interpretation) take rank 1 or 3 arrays; Core ML 3 any rank >= 1."""
    nd = (nn.arrayInputShapeMapping != 0 or nn.imageInputShapeMapping != 0
          or any(layer_min_version(l)[0] >= 4 for l in nn.layers))
    for i, feature in enumerate(model.description.input):
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        arr = feature.type.multiArrayType
        flex = arr.WhichOneof("ShapeFlexibility")
        ranks = {len(arr.shape)} if len(arr.shape) else set()
        if flex == "enumeratedShapes":
            ranks |= {len(s.shape) for s in arr.enumeratedShapes.shapes}
        elif flex == "shapeRange":
            ranks.add(len(arr.shapeRange.sizeRanges))
        if not ranks:
            continue  # reported by the feature rules
        if nd and min(ranks) < 1:
            report.add(f"description.input[{i}]", f"input {feature.name!r} has rank 0, expected "
                       "at least 1", "nn-inputs")
        elif not nd and not ranks <= {1, 3}:
            report.add(f"description.input[{i}]", f"input {feature.name!r} has shape "
                       f"{list(arr.shape)}: a network with rank-5 input mapping takes rank 1 or 3 "
                       "arrays; use EXACT_ARRAY_MAPPING (Core ML 3) for other ranks", "nn-inputs")


def _check_graph(model, nn, kind, report) -> dict[str, list[str]]:
    """Every layer input exists when it is consumed; returns blob -> producing layer names."""
    produced: dict[str, list[str]] = {f.name: ["__input"] for f in model.description.input}
    names: dict[str, int] = {}
    for i, layer in enumerate(nn.layers):
        path = f"{kind}.{layer_path('layers', i, layer)}"
        which = layer.WhichOneof("layer")
        if which is None:
            report.add(path, f"layer {layer.name!r} has no layer type set", "nn-layer")
        if not layer.name:
            report.add(path, "layer has an empty name", "nn-layer")
        elif layer.name in names and model.isUpdatable:  # Core ML checks this for updatable models
            report.add(path, f"layer name {layer.name!r} is also used by layers[{names[layer.name]}]",
                       "nn-layer")
        names.setdefault(layer.name, i)
        if len(layer.inputTensor) and len(layer.inputTensor) != len(layer.input):
            report.add(f"{path}.inputTensor", f"{len(layer.inputTensor)} inputTensor entries for "
                       f"{len(layer.input)} inputs", "nn-layer")
        if len(layer.outputTensor) and len(layer.outputTensor) != len(layer.output):
            report.add(f"{path}.outputTensor", f"{len(layer.outputTensor)} outputTensor entries for "
                       f"{len(layer.output)} outputs", "nn-layer")
        for j, blob in enumerate(layer.input):
            if blob not in produced:
                report.add(f"{path}.input[{j}]", f"layer {layer.name!r} consumes {blob!r}, which no "
                           "earlier layer produces and is not a model input", "nn-graph")
        for j, blob in enumerate(layer.output):
            if blob in produced and which != "copy":
                report.add(f"{path}.output[{j}]", f"layer {layer.name!r} produces {blob!r}, which "
                           f"is already produced by {produced[blob][0]!r}", "nn-graph")
            produced.setdefault(blob, []).append(layer.name)
        if which in ("branch", "loop"):  # blobs the nested networks write are visible after the layer
            for blob in _nested_outputs(getattr(layer, which)):
                produced.setdefault(blob, []).append(layer.name)
        if which is not None:
            check_layer_params(layer, which, report.at(path))
            check_layer_ranges(layer, which, report.at(path))
    return produced


def _nested_outputs(params, depth: int = 0) -> list[str]:
    """Blobs written by the layers of a branch's or loop's nested networks (recursively)."""
    names = []
    if depth > 32:
        return names
    for field in ("ifBranch", "elseBranch", "conditionNetwork", "bodyNetwork"):
        if field in params.DESCRIPTOR.fields_by_name and params.HasField(field):
            for layer in getattr(params, field).layers:
                names.extend(layer.output)
                which = layer.WhichOneof("layer")
                if which in ("branch", "loop"):
                    names.extend(_nested_outputs(getattr(layer, which), depth + 1))
    return names


def _output_blobs(model, produced) -> set[str]:
    inputs = {f.name for f in model.description.input}
    return {b for b, by in produced.items() if b not in inputs or len(by) > 1}


def check_neural_network(model, report: Report) -> None:
    """All neural-network rules, for the three neural-network kinds."""
    kind = model.WhichOneof("Type")
    nn = getattr(model, kind)
    desc = model.description
    label_kind = None
    if kind == "neuralNetworkClassifier":
        label_kind = check_class_labels(nn, kind, report, allow_empty=False)
        check_classifier_outputs(model, label_kind, report)
    elif kind == "neuralNetworkRegressor":
        name = desc.predictedFeatureName
        outs = {f.name: f for f in desc.output}
        if not name:
            report.add("description.predictedFeatureName", "regressor has no predictedFeatureName",
                       "regressor-outputs")
        elif name not in outs:
            report.add("description.predictedFeatureName", f"predictedFeatureName {name!r} is not an "
                       f"output; outputs are {sorted(outs)}", "regressor-outputs")
        elif feature_type_name(outs[name].type) not in ("doubleType", "multiArrayType"):
            i = list(outs).index(name)
            report.add(f"description.output[{i}]", f"predicted output {name!r} is "
                       f"{feature_type_name(outs[name].type)}, expected doubleType or "
                       "multiArrayType", "regressor-outputs")
    else:
        _check_io_types(desc.output, "output", report, "neural network")
    _check_io_types(desc.input, "input", report, "neural network")
    _check_shape_mapping(model, nn, kind, report)
    _check_input_ranks(model, nn, report)
    if not len(nn.layers):
        report.add(f"{kind}.layers", "the network has no layers, expected one or more", "nn-graph")
        return
    produced = _check_graph(model, nn, kind, report)
    outputs = _output_blobs(model, produced)
    for i, feature in enumerate(desc.output):
        if feature.name in outputs:
            continue
        if kind == "neuralNetworkClassifier" and feature.name in (desc.predictedFeatureName,
                                                                   desc.predictedProbabilitiesName):
            continue
        report.add(f"description.output[{i}]", f"output {feature.name!r} is not produced by any "
                   "layer of the network", "nn-outputs")
    if kind == "neuralNetworkClassifier" and nn.labelProbabilityLayerName:
        if nn.labelProbabilityLayerName not in outputs:
            report.add(f"{kind}.labelProbabilityLayerName", f"{nn.labelProbabilityLayerName!r} is "
                       "not produced by any layer of the network", "nn-outputs")
    if model.isUpdatable:
        check_updatable_network(model, nn, kind, label_kind, report)
