"""Rules for the classic model kinds: GLMs, support vector machines, tree ensembles and the
feature transforms (one-hot encoder, feature/dict vectorizer, imputer, scaler, normalizer,
array feature extractor, categorical mapping).

fact: apple/coremltools:mlmodel/src/Validation/ (GLMClassifierValidator.cpp,
GLMRegressorValidator.cpp, SVMClassifierValidator.cpp, SVMRegressorValidator.cpp,
TreeEnsembleValidator.cpp, OneHotEncoderValidator.cpp, FeatureVectorizerValidator.cpp,
DictVectorizerValidator.cpp, ImputerValidator.cpp, ScalerValidator.cpp,
ArrayFeatureExtractorValidator.cpp, CategoricalMappingValidator.cpp): which fields must be
set and how their sizes relate. The runtime (``pippin.pipelines.runtime``) checks the same
at load.
"""

from __future__ import annotations

import math

from ._report import Report
from .interface import check_class_labels, check_classifier_outputs

__all__ = ["CLASSIC_CHECKS", "check_input_types"]


def _finite(values, path, report, rule):
    for i, v in enumerate(values):
        if not math.isfinite(v):
            report.add(path, f"value {v!r} at index {i} is not finite", rule)
            return


def _input_width(model) -> int | None:
    """Total number of values the model's inputs carry per example, when every input declares it."""
    total = 0
    for feature in model.description.input:
        kind = feature.type.WhichOneof("Type")
        if kind in ("doubleType", "int64Type"):
            total += 1
        elif kind == "multiArrayType" and len(feature.type.multiArrayType.shape):
            total += math.prod(feature.type.multiArrayType.shape)
        else:
            return None
    return total


_NUMERIC = ("doubleType", "int64Type", "multiArrayType")
# kind -> the input feature types its computation reads (Core ML's validators name the same sets)
_INPUT_TYPES = {
    "glmRegressor": _NUMERIC, "glmClassifier": _NUMERIC,
    "supportVectorRegressor": _NUMERIC + ("dictionaryType",), "supportVectorClassifier": _NUMERIC + ("dictionaryType",),
    "treeEnsembleRegressor": _NUMERIC, "treeEnsembleClassifier": _NUMERIC,
    "oneHotEncoder": ("stringType", "int64Type", "multiArrayType"),
    "featureVectorizer": _NUMERIC + ("dictionaryType",),
    "dictVectorizer": ("dictionaryType",),
    "imputer": _NUMERIC + ("stringType", "dictionaryType"),
    "scaler": _NUMERIC, "normalizer": ("multiArrayType",), "arrayFeatureExtractor": ("multiArrayType",),
    "categoricalMapping": ("stringType", "int64Type", "sequenceType"),
}


def check_input_types(model, report: Report) -> None:
    """Every input of a classic model is of a type its computation reads."""
    kind = model.WhichOneof("Type")
    allowed = _INPUT_TYPES.get(kind, ())
    for i, feature in enumerate(model.description.input):
        got = feature.type.WhichOneof("Type")
        if allowed and got not in allowed:
            report.add(f"description.input[{i}]", f"input {feature.name!r} is {got}, but {kind} reads "
                       f"{' or '.join(allowed)}", "classic-input")


def _n_labels(params) -> int:
    which = params.WhichOneof("ClassLabels")
    return len(getattr(params, which).vector) if which else 0


def _glm(params, path, report, width) -> int:
    rows = list(params.weights)
    if not rows:
        report.add(f"{path}.weights", "no weights, expected one row per output", "glm")
        return 0
    n = len(rows[0].value)
    for i, row in enumerate(rows):
        if len(row.value) != n or not row.value:
            report.add(f"{path}.weights[{i}]", f"row has {len(row.value)} values, expected {n} (the "
                       "length of weights[0]) and at least 1", "glm")
            break
        _finite(row.value, f"{path}.weights[{i}]", report, "glm")
    if width is not None and n != width:
        report.add(f"{path}.weights", f"rows have {n} values, but the inputs carry {width}", "glm")
    if len(params.offset) not in (0, len(rows)):
        report.add(f"{path}.offset", f"{len(params.offset)} values, expected one per weights row "
                   f"({len(rows)})", "glm")
    _finite(params.offset, f"{path}.offset", report, "glm")
    return len(rows)


def check_glm_regressor(model, report: Report) -> None:
    _glm(model.glmRegressor, "glmRegressor", report, _input_width(model))


def check_glm_classifier(model, report: Report) -> None:
    params = model.glmClassifier
    n_rows = _glm(params, "glmClassifier", report, _input_width(model))
    kind = check_class_labels(params, "glmClassifier", report, allow_empty=False)
    check_classifier_outputs(model, kind, report)
    k = _n_labels(params)
    if not n_rows or not k:
        return
    if k < 2:
        report.add("glmClassifier.ClassLabels", f"{k} class label, expected at least 2", "glm")
        return
    binary = n_rows == 1 and k == 2
    one_vs_rest = params.classEncoding == 1
    expected = k if one_vs_rest else k - 1
    if not binary and n_rows != expected:
        report.add("glmClassifier.weights", f"{n_rows} weights rows for {k} class labels, expected "
                   f"{expected} under {'OneVsRest' if one_vs_rest else 'ReferenceClass'}", "glm")
    if params.postEvaluationTransform == 1 and not binary:
        report.add("glmClassifier.postEvaluationTransform", "the Probit transform is for two "
                   "classes (one weights row) only", "glm")


def _support_vectors(params, path, report) -> int:
    if params.kernel.WhichOneof("kernel") is None:
        report.add(f"{path}.kernel", "no kernel set, expected linearKernel, rbfKernel, polyKernel "
                   "or sigmoidKernel", "svm")
    which = params.WhichOneof("supportVectors")
    if which is None:
        report.add(path, "no support vectors, expected denseSupportVectors or "
                   "sparseSupportVectors", "svm")
        return 0
    vectors = getattr(params, which).vectors
    if which == "denseSupportVectors":
        n = len(vectors[0].values) if vectors else 0
        for i, v in enumerate(vectors):
            if len(v.values) != n:
                report.add(f"{path}.denseSupportVectors.vectors[{i}]", f"{len(v.values)} values, "
                           f"expected {n} (the length of vectors[0])", "svm")
                break
    else:
        for i, v in enumerate(vectors):
            if any(node.index < 1 for node in v.nodes):
                report.add(f"{path}.sparseSupportVectors.vectors[{i}]", "an index below 1 (libsvm "
                           "counts features from 1)", "svm")
                break
    return len(vectors)


def check_svr(model, report: Report) -> None:
    params = model.supportVectorRegressor
    n = _support_vectors(params, "supportVectorRegressor", report)
    if len(params.coefficients.alpha) != n:
        report.add("supportVectorRegressor.coefficients.alpha", f"{len(params.coefficients.alpha)} "
                   f"values, expected one per support vector ({n})", "svm")


def check_svc(model, report: Report) -> None:
    params = model.supportVectorClassifier
    path = "supportVectorClassifier"
    n = _support_vectors(params, path, report)
    kind = check_class_labels(params, path, report, allow_empty=False)
    check_classifier_outputs(model, kind, report)
    k = _n_labels(params)
    if k < 2:
        return
    counts = list(params.numberOfSupportVectorsPerClass)
    if len(counts) != k or sum(counts) != n or min(counts) < 0:
        report.add(f"{path}.numberOfSupportVectorsPerClass", f"{counts}, expected {k} non-negative "
                   f"counts adding up to the {n} support vectors", "svm")
    rows = list(params.coefficients)
    if len(rows) != k - 1 or any(len(r.alpha) != n for r in rows):
        report.add(f"{path}.coefficients", f"{len(rows)} rows, expected {k - 1} (classes - 1) of "
                   f"{n} values (one per support vector)", "svm")
    pairs = k * (k - 1) // 2
    if len(params.rho) != pairs:
        report.add(f"{path}.rho", f"{len(params.rho)} values, expected one per class pair ({pairs})",
                   "svm")
    if len(params.probA) or len(params.probB):
        for name in ("probA", "probB"):
            if len(getattr(params, name)) != pairs:
                report.add(f"{path}.{name}", f"{len(getattr(params, name))} values, expected one per "
                           f"class pair ({pairs}) or none", "svm")


def _tree_ensemble(params, path, report, width) -> int:
    dims = params.numPredictionDimensions
    if dims < 1:
        report.add(f"{path}.numPredictionDimensions", "numPredictionDimensions is 0, expected at "
                   "least 1", "tree-ensemble")
    if len(params.basePredictionValue) not in (0, dims):
        report.add(f"{path}.basePredictionValue", f"{len(params.basePredictionValue)} values, expected "
                   f"numPredictionDimensions ({dims}) or none", "tree-ensemble")
    if not params.nodes:
        report.add(f"{path}.nodes", "no nodes, expected at least one tree", "tree-ensemble")
    ids = {}
    for i, node in enumerate(params.nodes):
        key = (node.treeId, node.nodeId)
        if key in ids:
            report.add(f"{path}.nodes[{i}]", f"tree {key[0]} has node {key[1]} twice", "tree-ensemble")
            return dims
        ids[key] = i
    children = set()
    for i, node in enumerate(params.nodes):
        where = f"{path}.nodes[{i}]"
        if node.nodeBehavior == 6:
            for info in node.evaluationInfo:
                if info.evaluationIndex >= dims:
                    report.add(where, f"evaluationIndex {info.evaluationIndex}, expected below "
                               f"numPredictionDimensions ({dims})", "tree-ensemble")
                    return dims
            continue
        if width is not None and node.branchFeatureIndex >= width:
            report.add(where, f"branchFeatureIndex {node.branchFeatureIndex}, expected below the "
                       f"{width} input features", "tree-ensemble")
            return dims
        for field in ("trueChildNodeId", "falseChildNodeId"):
            key = (node.treeId, getattr(node, field))
            if key not in ids or ids[key] == i:
                report.add(where, f"{field} {key[1]} is not another node of tree {key[0]}", "tree-ensemble")
                return dims
            children.add(ids[key])
    for tree in sorted({t for t, _ in ids}):
        roots = [i for (t, _), i in ids.items() if t == tree and i not in children]
        if len(roots) != 1:
            report.add(f"{path}.nodes", f"tree {tree} has {len(roots)} root nodes, expected 1", "tree-ensemble")
            break
    return dims


def check_tree_regressor(model, report: Report) -> None:
    _tree_ensemble(model.treeEnsembleRegressor.treeEnsemble, "treeEnsembleRegressor.treeEnsemble",
                   report, _input_width(model))


def check_tree_classifier(model, report: Report) -> None:
    params = model.treeEnsembleClassifier
    dims = _tree_ensemble(params.treeEnsemble, "treeEnsembleClassifier.treeEnsemble", report,
                          _input_width(model))
    kind = check_class_labels(params, "treeEnsembleClassifier", report, allow_empty=False)
    check_classifier_outputs(model, kind, report)
    k = _n_labels(params)
    expected = k - 1 if params.postEvaluationTransform == 3 else k
    if k and dims and not (k == 2 and dims == 1) and dims != expected:
        report.add("treeEnsembleClassifier.treeEnsemble.numPredictionDimensions", f"{dims} for {k} "
                   f"class labels, expected {expected}", "tree-ensemble")


def _one_in_one_out(model, report, kind) -> None:
    n_in, n_out = len(model.description.input), len(model.description.output)
    if n_in != 1 or n_out != 1:
        report.add("description", f"{kind} has {n_in} inputs and {n_out} outputs, expected one of "
                   "each", "transform")


def check_one_hot(model, report: Report) -> None:
    _one_in_one_out(model, report, "oneHotEncoder")
    which = model.oneHotEncoder.WhichOneof("CategoryType")
    if which is None or not getattr(model.oneHotEncoder, which).vector:
        report.add("oneHotEncoder.CategoryType", "no categories, expected a non-empty stringCategories "
                   "or int64Categories", "transform")


def check_feature_vectorizer(model, report: Report) -> None:
    inputs = {f.name for f in model.description.input}
    columns = model.featureVectorizer.inputList
    if not columns:
        report.add("featureVectorizer.inputList", "inputList is empty", "transform")
    for i, column in enumerate(columns):
        if column.inputColumn not in inputs:
            report.add(f"featureVectorizer.inputList[{i}]", f"column {column.inputColumn!r} is not an "
                       f"input ({sorted(inputs)})", "transform")
        if column.inputDimensions < 1:
            report.add(f"featureVectorizer.inputList[{i}]", "inputDimensions is 0, expected at least 1",
                       "transform")


def check_dict_vectorizer(model, report: Report) -> None:
    _one_in_one_out(model, report, "dictVectorizer")
    which = model.dictVectorizer.WhichOneof("Map")
    keys = list(getattr(model.dictVectorizer, which).vector) if which else []
    if not keys:
        report.add("dictVectorizer.Map", "no keys, expected a non-empty stringToIndex or int64ToIndex",
                   "transform")
    elif len(set(keys)) != len(keys):
        report.add(f"dictVectorizer.{which}", "a key appears twice", "transform")


def check_imputer(model, report: Report) -> None:
    _one_in_one_out(model, report, "imputer")
    if model.imputer.WhichOneof("ImputedValue") is None:
        report.add("imputer.ImputedValue", "no imputed value set", "transform")


def check_scaler(model, report: Report) -> None:
    _one_in_one_out(model, report, "scaler")
    width = _input_width(model)
    for name in ("shiftValue", "scaleValue"):
        values = getattr(model.scaler, name)
        if width is not None and len(values) not in (0, 1, width):
            report.add(f"scaler.{name}", f"{len(values)} values for an input of width {width}, "
                       f"expected 0, 1 or {width}", "transform")
        _finite(values, f"scaler.{name}", report, "transform")


def check_normalizer(model, report: Report) -> None:
    _one_in_one_out(model, report, "normalizer")
    if model.normalizer.normType not in (0, 1, 2):
        report.add("normalizer.normType", f"unknown normType {model.normalizer.normType}", "transform")


def check_array_feature_extractor(model, report: Report) -> None:
    _one_in_one_out(model, report, "arrayFeatureExtractor")
    indices = list(model.arrayFeatureExtractor.extractIndex)
    width = _input_width(model)
    if not indices:
        report.add("arrayFeatureExtractor.extractIndex", "no indices, expected at least one", "transform")
    elif width is not None and max(indices) >= width:
        report.add("arrayFeatureExtractor.extractIndex", f"index {max(indices)} is outside the input's "
                   f"{width} values", "transform")


def check_categorical_mapping(model, report: Report) -> None:
    _one_in_one_out(model, report, "categoricalMapping")
    params = model.categoricalMapping
    which = params.WhichOneof("MappingType")
    if which is None:
        report.add("categoricalMapping.MappingType", "no mapping, expected stringToInt64Map or "
                   "int64ToStringMap", "transform")
        return
    unknown = params.WhichOneof("ValueOnUnknown")
    if unknown and (unknown == "int64Value") != (which == "stringToInt64Map"):
        report.add("categoricalMapping.ValueOnUnknown", f"{unknown} does not match the mapping's "
                   f"output type ({which})", "transform")


def _with_input_types(check):
    def run(model, report: Report) -> None:
        check_input_types(model, report)
        check(model, report)

    run.__name__ = check.__name__
    return run


CLASSIC_CHECKS = {
    "glmRegressor": check_glm_regressor,
    "glmClassifier": check_glm_classifier,
    "supportVectorRegressor": check_svr,
    "supportVectorClassifier": check_svc,
    "treeEnsembleRegressor": check_tree_regressor,
    "treeEnsembleClassifier": check_tree_classifier,
    "oneHotEncoder": check_one_hot,
    "featureVectorizer": check_feature_vectorizer,
    "dictVectorizer": check_dict_vectorizer,
    "imputer": check_imputer,
    "scaler": check_scaler,
    "normalizer": check_normalizer,
    "arrayFeatureExtractor": check_array_feature_extractor,
    "categoricalMapping": check_categorical_mapping,
}
CLASSIC_CHECKS = {kind: _with_input_types(check) for kind, check in CLASSIC_CHECKS.items()}
