"""Rules for ``linkedModel``: the spec's own fields, and, when the model's file is known,
the file the link points to (``pippin.spec.links``: containment, file type, size, cycles,
depth), whose model is then validated too.

fact: apple/coremltools:mlmodel/src/Validation/LinkedModelValidator.cpp (link type and
file name set, not updatable).
"""

from __future__ import annotations

from pathlib import Path

from .._proto.Model_pb2 import Model
from ..errors import SpecError
from ..io import loads
from ..links import check_chain, read_model_bytes, resolve_link
from ._report import Report

__all__ = ["check_linked", "LINK_CONTEXT"]

#: ``report.context[LINK_CONTEXT]``: ``{"folder": Path, "allowed": tuple, "chain": list[Path]}``
LINK_CONTEXT = "links"


def check_linked(model, report: Report, check_model=None) -> None:
    """A linked model names its file and is never updatable; with a folder known, the file is followed.

    ``check_model(spec, report)`` validates the linked file's model.
    """
    linked = model.linkedModel
    if model.isUpdatable:
        report.add("isUpdatable", "a linkedModel cannot be updatable", "linked-model")
    if linked.WhichOneof("LinkType") is None:
        report.add("linkedModel", "no link type set, expected linkedModelFile", "linked-model")
        return
    if not linked.linkedModelFile.linkedModelFileName.defaultValue:
        report.add("linkedModel.linkedModelFile.linkedModelFileName", "linkedModelFileName is "
                   "empty, expected the linked .mlmodelc file name", "linked-model")
        return
    context = report.context.get(LINK_CONTEXT)
    if context is None:  # validating a spec with no file: the link cannot be followed
        return
    target = follow_link(model, context, report)
    if target is None or check_model is None:
        return
    path, spec = target
    inner = dict(report.context)
    inner[LINK_CONTEXT] = {"folder": path.parent, "allowed": context["allowed"],
                           "chain": context["chain"] + [path]}
    check_model(spec, Report(report.problems, report.join(f"linkedModel({path.name})"), inner))


def follow_link(model, context: dict, report: Report) -> tuple[Path, Model] | None:
    """Resolve, read and parse the linked file; report why not and return None when it fails."""
    try:
        path = resolve_link(model.linkedModel.linkedModelFile, folder=context["folder"],
                            allowed=context["allowed"])
        check_chain(context["chain"], path)
        data = read_model_bytes(path)
        spec = loads(data, where=str(path))
    except SpecError as exc:
        where = exc.where or ""
        field = where if where.startswith("linkedModel") else "linkedModel.linkedModelFile.linkedModelFileName"
        message = exc.message if where.startswith("linkedModel") else f"{where}: {exc.message}"
        report.add(field, message, "linked-file")
        return None
    return path, spec
