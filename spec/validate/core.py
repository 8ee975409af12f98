"""``validate(model)``: run every rule that applies to a model and its pipeline stages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from google.protobuf.message import Message

from ._report import Problem, Report, article
from .interface import check_classifier_outputs, check_description, check_optional
from .classic import CLASSIC_CHECKS
from .knn import check_knn
from .neural_network import check_neural_network
from .pipeline import check_pipeline
from .recommender import check_recommender
from .linked import LINK_CONTEXT, check_linked
from .sound import check_sound
from .versions import check_versions

__all__ = ["validate"]

# fact: apple/coremltools:mlmodel/src/Validation/InterfaceValidators.cpp (validateCanModelBeUpdatable)
_UPDATABLE_KINDS = frozenset({"neuralNetwork", "neuralNetworkRegressor", "neuralNetworkClassifier",
                              "kNearestNeighborsClassifier", "pipeline", "pipelineRegressor",
                              "pipelineClassifier"})
_CHECKS = {
    "neuralNetwork": check_neural_network,
    "neuralNetworkClassifier": check_neural_network,
    "neuralNetworkRegressor": check_neural_network,
    "kNearestNeighborsClassifier": check_knn,
    "itemSimilarityRecommender": check_recommender,
    "soundAnalysisPreprocessing": check_sound,
    **CLASSIC_CHECKS,
}
_PIPELINES = frozenset({"pipeline", "pipelineClassifier", "pipelineRegressor"})
_MAX_DEPTH = 32  # pipelines nested deeper than this are reported, not followed


def _check_model(model, report: Report, depth: int = 0) -> None:
    check_versions(model, report)
    kind = model.WhichOneof("Type")
    if kind is None:
        report.add("", "the model has no type: none of the Model.Type fields is set", "model-kind")
    check_description(model, report)
    check_optional(model, report)
    if model.isUpdatable and kind is not None and kind not in _UPDATABLE_KINDS:
        report.add("isUpdatable", f"{article(kind)} {kind} model cannot be updatable; only "
                   "neural networks, k-NN classifiers and pipelines can", "updatable")
    if kind in _PIPELINES:
        if depth >= _MAX_DEPTH:
            report.add(kind, f"pipelines are nested more than {_MAX_DEPTH} deep", "pipeline-chain")
            return
        check_pipeline(model, report, lambda stage, rep: _check_model(stage, rep, depth + 1))
        if kind == "pipelineClassifier":
            # Core ML's pipeline rules do not require the names; when given they must be outputs
            check_classifier_outputs(model, None, report, require_name=False)
    elif kind == "linkedModel":
        check_linked(model, report, lambda target, rep: _check_model(target, rep, depth + 1))
    elif kind in _CHECKS:
        _CHECKS[kind](model, report)


def validate(model: Message, *, path: str | os.PathLike | None = None,
             allowed_paths: Iterable[str | os.PathLike] = ()) -> list[Problem]:
    """Check a model against the rules Core ML's model compiler enforces.

    Parameters
    ----------
    model : pippin.spec.Model
        A parsed model (ours, or a coremltools ``Model_pb2.Model``: it is re-read
        through its bytes).

    Returns
    -------
    problems : list of Problem
        Empty when the model is valid. Each problem has a field ``path``, a
        ``message`` and a ``rule`` id; pipeline stages are checked recursively and
        their paths carry the stage prefix (``pipeline.models[1].…``).
    path : path, optional
        The file the model came from. When given, linked models are followed: their
        files must be regular files inside this file's folder (or ``allowed_paths``),
        of bounded size, with no cycle and a bounded depth (``pippin.spec.links``),
        and the linked models are validated too (paths prefixed ``linkedModel(NAME).``).
    allowed_paths : iterable of path
        Further folders linked files may resolve into.
    """
    from .._proto.Model_pb2 import Model

    if not isinstance(model, Model):
        if not isinstance(model, Message):
            raise TypeError(f"validate() takes a Model, not {type(model).__name__}")
        model = Model.FromString(model.SerializeToString())
    report = Report()
    if path is not None:
        report.context[LINK_CONTEXT] = {"folder": Path(path).parent, "allowed": tuple(allowed_paths),
                                        "chain": [Path(os.path.realpath(path))]}
    _check_model(model, report)
    return report.problems
