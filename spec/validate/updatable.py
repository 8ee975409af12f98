"""Rules for updatable neural networks (Core ML 3 on-device training).

fact: apple/coremltools:mlmodel/src/Validation/NeuralNetwork/UpdatableNeuralNetworkValidator.cpp
(updatable layers, loss layers, optimizer, epochs, training inputs),
NeuralNetworkValidatorGraph.hpp (which layers back-propagate) and
mlmodel/src/Validation/ParameterValidator.cpp (default value inside its allowed range/set).
"""

from __future__ import annotations

from ._report import Report, layer_path
from .interface import features_equivalent

__all__ = ["check_updatable_network", "check_int64_parameter", "check_double_parameter"]

_UPDATABLE_KINDS = ("convolution", "innerProduct")
_BACKPROP = {"convolution", "innerProduct", "uniDirectionalLSTM", "flatten", "pooling", "batchnorm"}
_BACKPROP_ACTIVATIONS = {"ReLU", "sigmoid", "tanh"}


def check_int64_parameter(param, path: str, name: str, report: Report, *, positive: bool) -> None:
    """An ``Int64Parameter``: default positive if required, and inside its range or set."""
    value = param.defaultValue
    if positive and value <= 0:
        report.add(path, f"{name} is {value}, expected a positive value", "update-params")
    which = param.WhichOneof("AllowedValues")
    if which == "set":
        values = list(param.set.values)
        if positive and any(v <= 0 for v in values):
            report.add(f"{path}.set", f"allowed {name} values {values} include a non-positive value",
                       "update-params")
        if value not in values:
            report.add(path, f"{name} is {value}, which is not in its allowed set {values}",
                       "update-params")
    elif which == "range":
        lo, hi = param.range.minValue, param.range.maxValue
        if positive and (lo <= 0 or hi <= 0):
            report.add(f"{path}.range", f"allowed {name} range [{lo}, {hi}] is not positive",
                       "update-params")
        if lo > hi:
            report.add(f"{path}.range", f"allowed {name} range [{lo}, {hi}] has min > max",
                       "update-params")
        elif not lo <= value <= hi:
            report.add(path, f"{name} is {value}, outside its allowed range [{lo}, {hi}]",
                       "update-params")


def check_double_parameter(param, path: str, name: str, report: Report) -> None:
    """A ``DoubleParameter``: default inside its allowed range."""
    if param.WhichOneof("AllowedValues") == "range":
        lo, hi = param.range.minValue, param.range.maxValue
        if not lo <= param.defaultValue <= hi:
            report.add(path, f"{name} is {param.defaultValue!r}, outside its allowed range "
                       f"[{lo!r}, {hi!r}]", "update-params")


def _check_optimizer(opt, path, report):
    which = opt.WhichOneof("OptimizerType")
    if which is None:
        report.add(path, "no optimizer set, expected sgdOptimizer or adamOptimizer", "update-params")
        return
    body = getattr(opt, which)
    names = ("learningRate", "miniBatchSize") + (("beta1", "beta2", "eps") if which == "adamOptimizer" else ())
    for name in names:
        sub = f"{path}.{which}.{name}"
        if not body.HasField(name):
            report.add(sub, f"{which} has no {name}", "update-params")
        elif name == "miniBatchSize":
            check_int64_parameter(body.miniBatchSize, sub, name, report, positive=True)
        else:
            check_double_parameter(getattr(body, name), sub, name, report)
    if which == "sgdOptimizer" and body.HasField("momentum"):
        check_double_parameter(body.momentum, f"{path}.{which}.momentum", "momentum", report)


def _loss_target(loss):
    which = loss.WhichOneof("LossLayerType")
    return (getattr(loss, which).input, getattr(loss, which).target) if which else ("", "")


def _check_layers(nn, kind, report):
    any_updatable = False
    for i, layer in enumerate(nn.layers):
        if not layer.isUpdatable:
            continue
        any_updatable = True
        path = f"{kind}.{layer_path('layers', i, layer)}"
        which = layer.WhichOneof("layer")
        if which not in _UPDATABLE_KINDS:
            report.add(f"{path}.isUpdatable", f"layer {layer.name!r} ({which}) is marked updatable, "
                       "but Core ML updates only innerProduct and convolution layers", "updatable-layer")
            continue
        params = getattr(layer, which)
        if params.weights.HasField("quantization") or (params.hasBias and params.bias.HasField("quantization")):
            report.add(f"{path}.{which}.weights", f"updatable layer {layer.name!r} has quantized "
                       "weights, which cannot be updated", "updatable-layer")
        if not params.weights.isUpdatable:
            report.add(f"{path}.{which}.weights.isUpdatable", f"updatable layer {layer.name!r} has "
                       "weights not marked updatable", "updatable-layer")
        if params.hasBias and not params.bias.isUpdatable:
            report.add(f"{path}.{which}.bias.isUpdatable", f"updatable layer {layer.name!r} has a "
                       "bias not marked updatable", "updatable-layer")
    if not any_updatable:
        report.add(f"{kind}.layers", "the model is updatable but no layer is marked updatable",
                   "updatable-layer")


def _check_losses(nn, kind, report):
    params = nn.updateParams
    losses = list(params.lossLayers)
    path = f"{kind}.updateParams.lossLayers"
    if len(losses) != 1:
        report.add(path, f"{len(losses)} loss layers, expected exactly one", "loss-layer")
        if not losses:
            return
    producers = {}
    for layer in nn.layers:
        for blob in layer.output:
            producers[blob] = layer
    names = {layer.name for layer in nn.layers}
    for i, loss in enumerate(losses):
        lpath = f"{path}[{i}]({loss.name})"
        which = loss.WhichOneof("LossLayerType")
        if loss.name in names:
            report.add(lpath, f"loss layer name {loss.name!r} is also a layer name", "loss-layer")
        if which is None:
            report.add(lpath, "loss layer has no type, expected categoricalCrossEntropyLossLayer "
                       "or meanSquaredErrorLossLayer", "loss-layer")
            continue
        source, target = _loss_target(loss)
        producer = producers.get(source)
        if which == "categoricalCrossEntropyLossLayer":
            if producer is None or producer.WhichOneof("layer") != "softmax" or producer.output[0] != source:
                report.add(f"{lpath}.{which}.input", f"cross-entropy input {source!r} is not the "
                           "output of a softmax layer", "loss-layer")
        elif producer is None:
            report.add(f"{lpath}.{which}.input", f"MSE input {source!r} is not produced by a layer",
                       "loss-layer")
        if target in producers:
            report.add(f"{lpath}.{which}.target", f"loss target {target!r} is produced inside the "
                       "network, expected a training input", "loss-layer")
    _check_backprop(nn, losses[0], producers, kind, report)


def _backprop_ok(layer) -> bool:
    which = layer.WhichOneof("layer")
    if which == "activation":
        return layer.activation.WhichOneof("NonlinearityType") in _BACKPROP_ACTIVATIONS
    return which in _BACKPROP


def _check_backprop(nn, loss, producers, kind, report):
    """Every layer between the loss and an updatable layer must back-propagate."""
    source, _ = _loss_target(loss)
    start = producers.get(source)
    if start is None:
        return
    is_ce = loss.WhichOneof("LossLayerType") == "categoricalCrossEntropyLossLayer"
    blocker, seen, queue = None, {start.name}, [(start, True)]
    while queue:
        layer, first = queue.pop(0)
        if layer.isUpdatable and blocker is not None:
            report.add(f"{kind}.updateParams", f"layer {blocker!r} cannot back-propagate but sits "
                       f"between updatable layer {layer.name!r} and the loss", "backprop")
            return
        if not _backprop_ok(layer) and not (first and is_ce and layer.WhichOneof("layer") == "softmax"):
            blocker = blocker or layer.name
        for blob in layer.input:
            parent = producers.get(blob)
            if parent is not None and parent.name not in seen:
                seen.add(parent.name)
                queue.append((parent, False))


def _check_training_inputs(model, nn, label_kind, report):
    desc = model.description
    training = list(desc.trainingInput)
    if len(training) <= 1:
        report.add("description.trainingInput", f"{len(training)} training inputs, expected the "
                   "prediction input(s) and the loss target", "training-inputs")
        return
    exclusive = [t for t in training if not any(features_equivalent(t, x) for x in desc.input)]
    if not exclusive:
        report.add("description.trainingInput", "training inputs do not include the loss target",
                   "training-inputs")
        return
    if len(exclusive) == len(training):
        report.add("description.trainingInput", "no training input is also a prediction input "
                   f"(same name and type); inputs are {[f.name for f in desc.input]}", "training-inputs")
    target = _loss_target(nn.updateParams.lossLayers[0])[1] if len(nn.updateParams.lossLayers) else ""
    outputs = {f.name: f for f in desc.output}
    for t in exclusive:
        if label_kind is not None and t.name == desc.predictedFeatureName and t.name in outputs:
            got, want = t.type.WhichOneof("Type"), outputs[t.name].type.WhichOneof("Type")
            if got != want:
                i = next(i for i, x in enumerate(training) if x is t or x == t)
                report.add(f"description.trainingInput[{i}]", f"training target {t.name!r} is "
                           f"{got}, expected {want} like the predicted label", "training-inputs")
            return
        if t.name == target:
            return
    want = desc.predictedFeatureName if label_kind is not None else target
    report.add("description.trainingInput", f"training inputs do not include the target {want!r}",
               "training-inputs")


def check_updatable_network(model, nn, kind: str, label_kind, report: Report) -> None:
    """All rules of an updatable neural network (the model's ``isUpdatable`` is set)."""
    _check_layers(nn, kind, report)
    if not model.HasField(kind) or not nn.HasField("updateParams"):
        report.add(f"{kind}.updateParams", "the model is updatable but has no updateParams",
                   "update-params")
        return
    params = nn.updateParams
    _check_losses(nn, kind, report)
    _check_optimizer(params.optimizer, f"{kind}.updateParams.optimizer", report)
    if not params.HasField("epochs"):
        report.add(f"{kind}.updateParams.epochs", "updateParams has no epochs", "update-params")
    else:
        check_int64_parameter(params.epochs, f"{kind}.updateParams.epochs", "epochs", report, positive=True)
    if params.HasField("seed"):
        check_int64_parameter(params.seed, f"{kind}.updateParams.seed", "seed", report, positive=False)
    _check_training_inputs(model, nn, label_kind, report)
