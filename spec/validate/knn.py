"""Rules for ``kNearestNeighborsClassifier``.

fact: apple/coremltools:mlmodel/src/Validation/KNearestNeighborsClassifierValidator.cpp
(numberOfNeighbors, weighting, labels vs samples, dimensions, index, distance).
"""

from __future__ import annotations

from ._report import Report
from .interface import check_class_labels, check_classifier_outputs
from .ranges import check_finite_samples
from .updatable import check_int64_parameter

__all__ = ["check_knn"]


def _check_index(knn, n_labels, report):
    index = knn.nearestNeighborsIndex
    path = "kNearestNeighborsClassifier.nearestNeighborsIndex"
    n_samples = len(index.floatSamples)
    if n_samples != n_labels:
        report.add(f"{path}.floatSamples", f"{n_samples} samples but {n_labels} class labels, "
                   "expected one label per sample", "knn-labels")
    dim = index.numberOfDimensions
    if dim <= 0 and n_samples:
        report.add(f"{path}.numberOfDimensions", f"numberOfDimensions is {dim}, expected a "
                   "positive value", "knn-index")
    for i, sample in enumerate(index.floatSamples):
        if len(sample.vector) != dim:
            report.add(f"{path}.floatSamples[{i}]", f"sample has {len(sample.vector)} values, "
                       f"expected numberOfDimensions {dim}", "knn-index")
            break
    check_finite_samples(index.floatSamples, f"{path}.floatSamples", report)
    which = index.WhichOneof("IndexType")
    if which is None:
        report.add(path, "no index type, expected linearIndex or singleKdTreeIndex", "knn-index")
    elif which == "singleKdTreeIndex" and index.singleKdTreeIndex.leafSize <= 0:
        report.add(f"{path}.singleKdTreeIndex.leafSize", f"leafSize is "
                   f"{index.singleKdTreeIndex.leafSize}, expected a positive value", "knn-index")
    if index.WhichOneof("DistanceFunction") is None:
        report.add(path, "no distance function, expected squaredEuclideanDistance", "knn-index")


def _check_input(model, dim, report):
    inputs = model.description.input
    if len(inputs) != 1:
        return
    type_ = inputs[0].type
    if type_.WhichOneof("Type") == "multiArrayType":
        shape = list(type_.multiArrayType.shape)
        if shape and dim > 0 and shape[-1] != dim and shape != [dim]:
            report.add("description.input[0]", f"input {inputs[0].name!r} has shape {shape}, "
                       f"expected [{dim}] to match numberOfDimensions", "knn-index")


def check_knn(model, report: Report) -> None:
    """All k-NN classifier rules."""
    knn = model.kNearestNeighborsClassifier
    path = "kNearestNeighborsClassifier"
    check_int64_parameter(knn.numberOfNeighbors, f"{path}.numberOfNeighbors", "numberOfNeighbors",
                          report, positive=True)
    if knn.WhichOneof("WeightingScheme") is None:
        report.add(path, "no weighting scheme, expected uniformWeighting or "
                   "inverseDistanceWeighting", "knn-params")
    label_kind = check_class_labels(knn, path, report, allow_empty=True, unique=False)
    labels = knn.WhichOneof("ClassLabels")
    n_labels = len(getattr(knn, labels).vector) if labels else 0
    default = knn.WhichOneof("DefaultClassLabel")
    if default is None and n_labels == 0:
        report.add(path, "no class labels and no default class label", "knn-labels")
    elif default is not None:
        default_kind = "int64" if default == "defaultInt64Label" else "string"
        if label_kind is not None and label_kind != default_kind:
            report.add(f"{path}.{default}", f"default label is {default_kind} but the class labels "
                       f"are {label_kind}", "knn-labels")
        label_kind = label_kind or default_kind
    check_classifier_outputs(model, label_kind, report)
    _check_index(knn, n_labels, report)
    _check_input(model, knn.nearestNeighborsIndex.numberOfDimensions, report)
