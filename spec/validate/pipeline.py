"""Rules for ``pipeline`` / ``pipelineClassifier`` / ``pipelineRegressor``.

fact: apple/coremltools:mlmodel/src/Validation/PipelineValidator.cpp (stage chaining by
name and exact type, outputs produced, only the last stage updatable, stage names).
"""

from __future__ import annotations

from ._report import Report
from .interface import type_text, types_equivalent

__all__ = ["check_pipeline", "pipeline_of"]


def pipeline_of(model):
    """``(Pipeline message, its field path)`` of a pipeline-kind model."""
    kind = model.WhichOneof("Type")
    if kind == "pipeline":
        return model.pipeline, "pipeline"
    return getattr(model, kind).pipeline, f"{kind}.pipeline"


def _mismatch_rule(feature, source) -> str:
    """``pipeline-types`` when two multi-arrays of one shape differ in data type only, else
    ``pipeline-chain``."""
    kinds = {feature.type.WhichOneof("Type"), source.type.WhichOneof("Type")}
    same_shape = list(feature.type.multiArrayType.shape) == list(source.type.multiArrayType.shape)
    return "pipeline-types" if kinds == {"multiArrayType"} and same_shape else "pipeline-chain"


def check_pipeline(model, report: Report, validate_stage) -> None:
    """Chaining and updatability; ``validate_stage(stage, report)`` checks each stage itself."""
    pipe, path = pipeline_of(model)
    stages = list(pipe.models)
    if not stages:
        report.add(f"{path}.models", "the pipeline has no models, expected one or more", "pipeline-chain")
        return
    known = {f.name: (f, "the pipeline input") for f in model.description.input}
    for i, stage in enumerate(stages):
        spath = f"{path}.models[{i}]"
        for j, feature in enumerate(stage.description.input):
            fpath = f"{spath}.description.input[{j}]"
            if feature.name not in known:
                report.add(fpath, f"stage {i} input {feature.name!r} is neither a pipeline input nor "
                           f"an output of an earlier stage; available: {sorted(known)}", "pipeline-chain")
                continue
            source, origin = known[feature.name]
            if not types_equivalent(feature.type, source.type):
                report.add(fpath, f"stage {i} input {feature.name!r} is {type_text(feature.type)}, "
                           f"but {origin} gives {type_text(source.type)}", _mismatch_rule(feature, source))
        validate_stage(stage, report.at(spath))
        for feature in stage.description.output:
            known[feature.name] = (feature, f"stage {i}")
    for i, feature in enumerate(model.description.output):
        opath = f"description.output[{i}]"
        if feature.name not in known:
            report.add(opath, f"pipeline output {feature.name!r} is not produced by any stage nor "
                       "a pipeline input", "pipeline-chain")
            continue
        source, origin = known[feature.name]
        if not types_equivalent(feature.type, source.type):
            report.add(opath, f"pipeline output {feature.name!r} is {type_text(feature.type)}, "
                       f"but {origin} gives {type_text(source.type)}", _mismatch_rule(feature, source))
    last = len(stages) - 1
    if model.isUpdatable:
        for i, stage in enumerate(stages[:-1]):
            if stage.isUpdatable:
                report.add(f"{path}.models[{i}].isUpdatable", f"stage {i} is updatable, only the "
                           "last stage of a pipeline can be", "pipeline-updatable")
        if not stages[-1].isUpdatable:
            report.add(f"{path}.models[{last}].isUpdatable", "the pipeline is updatable but its "
                       "last stage is not", "pipeline-updatable")
    else:
        for i, stage in enumerate(stages):
            if stage.isUpdatable:
                report.add(f"{path}.models[{i}].isUpdatable", f"stage {i} is updatable inside a "
                           "pipeline that is not", "pipeline-updatable")
    names = list(pipe.names)
    if names:
        if len(names) != len(stages):
            report.add(f"{path}.names", f"{len(names)} stage names for {len(stages)} stages",
                       "pipeline-names")
        seen = set()
        for i, name in enumerate(names):
            if name in seen:
                report.add(f"{path}.names[{i}]", f"stage name {name!r} is used twice", "pipeline-names")
            seen.add(name)
