"""``describe(model)``: what is inside a model, as a plain dict, and as a text tree.

The dict is what ``pippin inspect --json`` prints; ``render_text`` draws the same
information as a tree for people.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from google.protobuf.message import Message

from .validate.interface import DATA_TYPE_NAMES, type_text
from .validate.versions import OS_RELEASES, requirements

__all__ = ["describe", "render_text"]

_NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")
_PIPELINES = ("pipeline", "pipelineClassifier", "pipelineRegressor")
_MAX_LABELS = 50  # labels listed in the text tree; the dict always has all of them
_MAX_DEPTH = 32


def _feature(desc) -> dict:
    type_ = desc.type
    which = type_.WhichOneof("Type")
    info = {"name": desc.name, "type": type_text(type_), "kind": which, "optional": bool(type_.isOptional)}
    if which == "multiArrayType":
        info["shape"] = list(type_.multiArrayType.shape)
        info["data_type"] = DATA_TYPE_NAMES.get(type_.multiArrayType.dataType, "INVALID")
    elif which == "imageType":
        info["shape"] = [type_.imageType.height, type_.imageType.width]
    if desc.shortDescription:
        info["description"] = desc.shortDescription
    return info


def _param(p):
    """The default value of an Int64/Double parameter, with its allowed range or set."""
    info = {"default": p.defaultValue}
    which = p.WhichOneof("AllowedValues")
    if which == "range":
        info["range"] = [p.range.minValue, p.range.maxValue]
    elif which == "set":
        info["set"] = list(p.set.values)
    return info


def _update(nn) -> dict:
    params = nn.updateParams
    info: dict = {}
    losses = []
    for loss in params.lossLayers:
        which = loss.WhichOneof("LossLayerType")
        body = getattr(loss, which) if which else None
        losses.append({"name": loss.name, "type": (which or "unset").replace("LossLayer", ""),
                       "input": body.input if body else "", "target": body.target if body else ""})
    info["loss_layers"] = losses
    which = params.optimizer.WhichOneof("OptimizerType")
    if which:
        body = getattr(params.optimizer, which)
        opt = {"type": which.replace("Optimizer", "")}
        for field, value in body.ListFields():
            opt[field.name] = _param(value)
        info["optimizer"] = opt
    if params.HasField("epochs"):
        info["epochs"] = _param(params.epochs)
    if params.HasField("shuffle"):
        info["shuffle"] = params.shuffle.defaultValue
    if params.HasField("seed"):
        info["seed"] = _param(params.seed)
    return info


def _labels(params):
    which = params.WhichOneof("ClassLabels")
    return list(getattr(params, which).vector) if which else []


def _kind_details(model, kind, info, depth):
    body = getattr(model, kind)
    if kind in _NN_KINDS:
        counts = Counter(layer.WhichOneof("layer") or "unset" for layer in body.layers)
        info["n_layers"] = len(body.layers)
        info["layers"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        info["updatable_layers"] = [l.name for l in body.layers if l.isUpdatable]
        if kind == "neuralNetworkClassifier":
            info["class_labels"] = _labels(body)
        if body.HasField("updateParams"):
            info["update"] = _update(body)
    elif kind == "kNearestNeighborsClassifier":
        index = body.nearestNeighborsIndex
        labels = _labels(body)
        info["class_labels"] = sorted(set(labels), key=str)
        info["n_samples"] = len(index.floatSamples)
        info["n_dimensions"] = index.numberOfDimensions
        info["k"] = body.numberOfNeighbors.defaultValue
        info["index"] = index.WhichOneof("IndexType")
        info["weighting"] = body.WhichOneof("WeightingScheme")
    elif kind == "itemSimilarityRecommender":
        ids = body.itemStringIds.vector or body.itemInt64Ids.vector
        max_index = max((e.itemId for e in body.itemItemSimilarities), default=-1)
        info["n_items"] = len(ids) if len(ids) else max_index + 1
        info["n_similarities"] = sum(len(e.similarItemList) for e in body.itemItemSimilarities)
        info["item_ids"] = "string" if len(body.itemStringIds.vector) else (
            "int64" if len(body.itemInt64Ids.vector) else "index")
    elif kind == "soundAnalysisPreprocessing":
        info["preprocessing"] = body.WhichOneof("SoundAnalysisPreprocessingType")
    elif kind == "linkedModel" and body.WhichOneof("LinkType"):
        info["linked_file"] = body.linkedModelFile.linkedModelFileName.defaultValue
    elif kind in _PIPELINES:
        pipe = body if kind == "pipeline" else body.pipeline
        names = list(pipe.names)
        stages = []
        for i, stage in enumerate(pipe.models):
            sub = _describe(stage, depth + 1) if depth < _MAX_DEPTH else {"kind": "…"}
            sub["stage_name"] = names[i] if i < len(names) else None
            stages.append(sub)
        info["stages"] = stages
        if kind == "pipelineClassifier":
            labels = [s.get("class_labels") for s in stages if s.get("class_labels")]
            if labels:
                info["class_labels"] = labels[-1]


def _describe(model, depth=0) -> dict:
    kind = model.WhichOneof("Type")
    version = model.specificationVersion
    desc = model.description
    needed = max((v for v, _, _ in requirements(model)), default=1)
    info: dict = {
        "kind": kind,
        "specification_version": version,
        "os_releases": dict(OS_RELEASES.get(version, {})),
        "minimum_specification_version": needed,
        "updatable": bool(model.isUpdatable),
        "inputs": [_feature(f) for f in desc.input],
        "outputs": [_feature(f) for f in desc.output],
        "training_inputs": [_feature(f) for f in desc.trainingInput],
    }
    if desc.predictedFeatureName:
        info["predicted_feature_name"] = desc.predictedFeatureName
    if desc.predictedProbabilitiesName:
        info["predicted_probabilities_name"] = desc.predictedProbabilitiesName
    meta = desc.metadata
    metadata = {k: getattr(meta, k) for k in ("shortDescription", "author", "license", "versionString")
                if getattr(meta, k)}
    if len(meta.userDefined):
        metadata["userDefined"] = dict(meta.userDefined)
    if metadata:
        info["metadata"] = metadata
    if kind is not None:
        _kind_details(model, kind, info, depth)
    return info


def describe(model, *, path: str | os.PathLike | None = None) -> dict:
    """Summarize a model: kind, interface, versions, updatable parts, layers, labels.

    Parameters
    ----------
    model : pippin.spec.Model or str or os.PathLike
        A parsed model, or the path of a ``.mlmodel`` file to load.
    path : str or os.PathLike, optional
        The file the model came from; adds ``file`` and ``file_size`` (bytes).

    Returns
    -------
    info : dict
        JSON-ready. Always has ``kind``, ``specification_version``, ``os_releases``
        (the first release of each OS that runs this version),
        ``minimum_specification_version``, ``updatable``, ``inputs``, ``outputs``,
        ``training_inputs``; per kind ``n_layers``/``layers`` (counts by layer
        kind)/``updatable_layers``/``update``, ``class_labels``, ``n_items``,
        ``n_samples``, ``stages`` (each a nested description) and so on.
    """
    if isinstance(model, (str, os.PathLike)):
        from .io import load

        path = model if path is None else path
        model = load(model)
    if not isinstance(model, Message):
        raise TypeError(f"describe() takes a Model or a path, not {type(model).__name__}")
    info = {}
    if path is not None:
        p = Path(path)
        info["file"] = str(p)
        try:  # an .mlpackage folder counts every file inside it
            files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
            info["file_size"] = sum(f.stat().st_size for f in files)
        except OSError:
            info["file_size"] = None
    info.update(_describe(model))
    return info


def _size_text(n) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _feature_lines(features) -> list:
    return [(f"{f['name']}: {f['type']}" + (f"  ({f['description']})" if f.get("description") else ""), [])
            for f in features]


def _param_text(p) -> str:
    text = f"{p['default']:g}" if isinstance(p["default"], float) else str(p["default"])
    if "range" in p:
        text += f" in [{p['range'][0]:g}, {p['range'][1]:g}]"
    if "set" in p:
        text += f" in {p['set']}"
    return text


def _update_nodes(update) -> list:
    nodes = []
    for loss in update.get("loss_layers", []):
        nodes.append((f"loss {loss['name']}: {loss['type']}({loss['input']}, target={loss['target']})", []))
    opt = update.get("optimizer")
    if opt:
        parts = [f"{k}={_param_text(v)}" for k, v in opt.items() if k != "type"]
        nodes.append((f"optimizer {opt['type']}: " + ", ".join(parts), []))
    if "epochs" in update:
        nodes.append((f"epochs {_param_text(update['epochs'])}", []))
    if "shuffle" in update:
        nodes.append((f"shuffle {update['shuffle']}", []))
    if "seed" in update:
        nodes.append((f"seed {_param_text(update['seed'])}", []))
    return nodes


def _headline(info) -> str:
    version = info["specification_version"]
    releases = ", ".join(f"{os_} {rel}" for os_, rel in info["os_releases"].items())
    text = f"{info['kind'] or 'no model type'}  specificationVersion {version}"
    text += f" ({releases})" if releases else " (unknown release)"
    if info["minimum_specification_version"] > version:
        text += f"  [needs >= {info['minimum_specification_version']}]"
    if info["updatable"]:
        text += "  updatable"
    return text


def _nodes(info) -> list:
    nodes = [(f"inputs ({len(info['inputs'])})", _feature_lines(info["inputs"])),
             (f"outputs ({len(info['outputs'])})", _feature_lines(info["outputs"]))]
    if info["training_inputs"]:
        nodes.append((f"training inputs ({len(info['training_inputs'])})",
                      _feature_lines(info["training_inputs"])))
    if "predicted_feature_name" in info:
        text = f"predicts {info['predicted_feature_name']}"
        if "predicted_probabilities_name" in info:
            text += f", probabilities in {info['predicted_probabilities_name']}"
        nodes.append((text, []))
    if "class_labels" in info:
        labels = info["class_labels"]
        shown = ", ".join(map(str, labels[:_MAX_LABELS])) + (", …" if len(labels) > _MAX_LABELS else "")
        nodes.append((f"class labels ({len(labels)}): {shown}", []))
    if "n_layers" in info:
        kinds = ", ".join(f"{k} {n}" for k, n in info["layers"].items())
        nodes.append((f"layers ({info['n_layers']}): {kinds}", []))
    if info.get("updatable_layers"):
        nodes.append((f"updatable layers: {', '.join(info['updatable_layers'])}", []))
    if "update" in info:
        nodes.append(("update parameters", _update_nodes(info["update"])))
    if "n_samples" in info:
        nodes.append((f"k-NN: {info['n_samples']} samples of {info['n_dimensions']} dimensions, "
                      f"k={info['k']}, {info['index']}, {info['weighting']}", []))
    if "n_items" in info:
        nodes.append((f"items: {info['n_items']} ({info['item_ids']} ids), "
                      f"{info['n_similarities']} similarities", []))
    if "preprocessing" in info:
        nodes.append((f"preprocessing: {info['preprocessing']}", []))
    if "linked_file" in info:
        nodes.append((f"linked file: {info['linked_file']}", []))
    if "stages" in info:
        stages = []
        for i, stage in enumerate(info["stages"]):
            name = f" {stage['stage_name']!r}" if stage.get("stage_name") else ""
            if "inputs" not in stage:
                stages.append((f"[{i}]{name} …", []))
                continue
            stages.append((f"[{i}]{name} {_headline(stage)}", _nodes(stage)))
        nodes.append((f"stages ({len(stages)})", stages))
    return nodes


def _draw(nodes, prefix, out) -> None:
    for i, (label, children) in enumerate(nodes):
        last = i == len(nodes) - 1
        out.append(prefix + ("└─ " if last else "├─ ") + label)
        _draw(children, prefix + ("   " if last else "│  "), out)


def render_text(info: dict) -> str:
    """Draw a ``describe`` dict as a tree, one line per fact."""
    lines = []
    if "file" in info:
        lines.append(f"{info['file']}  ({_size_text(info.get('file_size'))})")
    lines.append(_headline(info))
    _draw(_nodes(info), "", lines)
    return "\n".join(lines)
