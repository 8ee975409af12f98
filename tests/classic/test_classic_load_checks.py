"""Each classic kind checks its spec at load (sizes, indices, finiteness) with a SpecError naming
the field, and the validator reports the same field; Apple-proprietary kinds are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines.errors import PipelineError
from pippin.pipelines.runtime import load
from pippin.pipelines.runtime.model import build
from pippin.spec import Model
from pippin.spec.errors import SpecError
from pippin.spec.validate import validate


def _describe(spec, inputs, outputs, *, label=None, probs=None):
    for name, kind, shape in inputs:
        f = spec.description.input.add()
        f.name = name
        if kind == "array":
            f.type.multiArrayType.shape.extend(shape)
            f.type.multiArrayType.dataType = 65600
        else:
            getattr(f.type, kind).SetInParent()
    for name, kind in outputs:
        f = spec.description.output.add()
        f.name = name
        if kind == "dict":
            f.type.dictionaryType.int64KeyType.SetInParent()
        elif kind == "array":
            f.type.multiArrayType.dataType = 65600
        else:
            getattr(f.type, kind).SetInParent()
    if label:
        spec.description.predictedFeatureName = label
    if probs:
        spec.description.predictedProbabilitiesName = probs
    return spec


def glm_classifier():
    spec = _describe(Model(specificationVersion=1), [("x", "array", [3])], [("label", "int64Type"), ("p", "dict")],
                     label="label", probs="p")
    glm = spec.glmClassifier
    for row in ([1.0, 2.0, 3.0], [0.5, -1.0, 0.0]):
        glm.weights.add().value.extend(row)
    glm.offset.extend([0.1, -0.2])
    glm.classEncoding = glm.ReferenceClass
    glm.int64ClassLabels.vector.extend([0, 1, 2])
    return spec


def svc():
    spec = _describe(Model(specificationVersion=1), [("x", "array", [2])], [("label", "int64Type"), ("p", "dict")],
                     label="label", probs="p")
    s = spec.supportVectorClassifier
    s.kernel.rbfKernel.gamma = 0.5
    for v in ([0.0, 1.0], [1.0, 0.0], [2.0, 2.0]):
        s.denseSupportVectors.vectors.add().values.extend(v)
    s.numberOfSupportVectorsPerClass.extend([2, 1])
    s.coefficients.add().alpha.extend([1.0, 0.5, -1.5])
    s.rho.append(0.1)
    s.int64ClassLabels.vector.extend([3, 7])
    return spec


def tree_regressor():
    spec = _describe(Model(specificationVersion=1), [("x", "array", [2])], [("y", "doubleType")])
    t = spec.treeEnsembleRegressor.treeEnsemble
    t.numPredictionDimensions = 1
    branch = t.nodes.add(treeId=0, nodeId=0, nodeBehavior=1, branchFeatureIndex=1, branchFeatureValue=0.5,
                         trueChildNodeId=1, falseChildNodeId=2)
    assert branch.nodeBehavior == 1
    for node_id, value in ((1, -1.0), (2, 4.0)):
        leaf = t.nodes.add(treeId=0, nodeId=node_id, nodeBehavior=6)
        leaf.evaluationInfo.add(evaluationIndex=0, evaluationValue=value)
    return spec


def test_hand_built_specs_run():
    x = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    out = load(glm_classifier()).predict_batch({"x": x})
    z = x @ np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]).T + [0.1, -0.2]
    e = np.exp(np.concatenate([np.zeros((2, 1)), z], axis=1))
    np.testing.assert_allclose(out["p"], e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    out = load(tree_regressor()).predict_batch({"x": np.array([[0.0, 0.2], [0.0, 0.5], [0.0, np.nan]])})
    np.testing.assert_array_equal(out["y"], [-1.0, 4.0, 4.0])  # LessThan; NaN follows the false child by default
    out = load(svc()).predict_batch({"x": np.array([[0.0, 1.0], [2.0, 2.0]])})
    assert out["label"].dtype == np.int64 and set(out["label"].tolist()) <= {3, 7}


BREAKS = [
    ("glm offset count", glm_classifier, lambda s: s.glmClassifier.offset.append(1.0), "glmClassifier.offset"),
    ("glm ragged row", glm_classifier, lambda s: s.glmClassifier.weights[1].value.append(1.0),
     "glmClassifier.weights[1]"),
    ("glm rows vs labels", glm_classifier, lambda s: s.glmClassifier.int64ClassLabels.vector.append(9),
     "glmClassifier.weights"),
    ("glm not finite", glm_classifier, lambda s: s.glmClassifier.weights[0].value.__setitem__(1, float("inf")),
     "glmClassifier.weights"),
    ("svc rho count", svc, lambda s: s.supportVectorClassifier.rho.append(0.0), "supportVectorClassifier.rho"),
    ("svc per-class counts", svc, lambda s: s.supportVectorClassifier.numberOfSupportVectorsPerClass.__setitem__(0, 1),
     "supportVectorClassifier.numberOfSupportVectorsPerClass"),
    ("svc coefficients", svc, lambda s: s.supportVectorClassifier.coefficients[0].alpha.append(1.0),
     "supportVectorClassifier.coefficients"),
    ("svc probA count", svc, lambda s: s.supportVectorClassifier.probA.extend([1.0, 2.0]),
     "supportVectorClassifier.probA"),
    ("tree child", tree_regressor,
     lambda s: setattr(s.treeEnsembleRegressor.treeEnsemble.nodes[0], "falseChildNodeId", 9),
     "treeEnsembleRegressor.treeEnsemble.nodes[0]"),
    ("tree feature index", tree_regressor,
     lambda s: setattr(s.treeEnsembleRegressor.treeEnsemble.nodes[0], "branchFeatureIndex", 2),
     "treeEnsembleRegressor.treeEnsemble.nodes[0]"),
    ("tree evaluation index", tree_regressor,
     lambda s: setattr(s.treeEnsembleRegressor.treeEnsemble.nodes[1].evaluationInfo[0], "evaluationIndex", 1),
     "treeEnsembleRegressor.treeEnsemble.nodes[1]"),
    ("tree base values", tree_regressor,
     lambda s: s.treeEnsembleRegressor.treeEnsemble.basePredictionValue.extend([1.0, 2.0]),
     "treeEnsembleRegressor.treeEnsemble.basePredictionValue"),
]


@pytest.mark.parametrize("make,breaks,field", [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS])
def test_bad_spec_names_the_field(make, breaks, field):
    spec = make()
    assert validate(spec) == []
    breaks(spec)
    pattern = field.replace("[", r"\[").replace("]", r"\]")
    with pytest.raises(SpecError, match=pattern):
        load(spec)  # the validator's report, at the loading boundary
    with pytest.raises(SpecError, match=pattern):
        build(spec)  # the model kind's own load-time check, without the validator
    assert any(p.path.startswith(field) for p in validate(spec)), validate(spec)


def test_tree_cycle_is_refused():
    spec = tree_regressor()
    nodes = spec.treeEnsembleRegressor.treeEnsemble.nodes
    nodes[1].nodeBehavior = 0
    nodes[1].trueChildNodeId, nodes[1].falseChildNodeId = 0, 2
    with pytest.raises(SpecError, match="treeEnsemble.nodes"):
        build(spec)
    with pytest.raises(SpecError):
        load(spec)


def test_transforms_check_their_fields():
    spec = _describe(Model(specificationVersion=1), [("x", "array", [3])], [("y", "array")])
    spec.arrayFeatureExtractor.extractIndex.extend([0, 5])
    for loader in (load, build):
        with pytest.raises(SpecError, match="arrayFeatureExtractor.extractIndex"):
            loader(spec)
    assert any(p.path == "arrayFeatureExtractor.extractIndex" for p in validate(spec))
    spec = _describe(Model(specificationVersion=1), [("x", "array", [3])], [("y", "array")])
    spec.scaler.shiftValue.extend([1.0, float("nan"), 0.0])
    for loader in (load, build):
        with pytest.raises(SpecError, match="scaler.shiftValue"):
            loader(spec)
    spec = _describe(Model(specificationVersion=1), [("x", "int64Type", [])], [("y", "array")])
    spec.oneHotEncoder.handleUnknown = 0
    for loader in (load, build):
        with pytest.raises(SpecError, match="oneHotEncoder.CategoryType"):
            loader(spec)


def test_one_hot_unknown_values():
    spec = _describe(Model(specificationVersion=1), [("x", "stringType", [])], [("y", "array")])
    spec.oneHotEncoder.stringCategories.vector.extend(["red", "green"])
    with pytest.raises(PipelineError, match="'blue'"):
        load(spec).predict_batch({"x": ["red", "blue"]})
    spec.oneHotEncoder.handleUnknown = 1
    out = load(spec).predict_batch({"x": ["green", "blue"]})
    np.testing.assert_array_equal(out["y"], [[0.0, 1.0], [0.0, 0.0]])


def test_categorical_mapping_with_default():
    spec = _describe(Model(specificationVersion=1), [("x", "stringType", [])], [("y", "int64Type")])
    spec.categoricalMapping.stringToInt64Map.map.update({"a": 1, "b": 2})
    with pytest.raises(PipelineError, match="'c'"):
        load(spec).predict_batch({"x": ["a", "c"]})
    spec.categoricalMapping.int64Value = -1
    np.testing.assert_array_equal(load(spec).predict_batch({"x": ["b", "c", "a"]})["y"], [2, -1, 1])


@pytest.mark.parametrize("kind", ["visionFeaturePrint", "audioFeaturePrint", "wordTagger", "textClassifier",
                                  "gazetteer", "wordEmbedding", "customModel", "mlProgram"])
def test_proprietary_kinds_are_refused_by_name(kind):
    spec = Model(specificationVersion=4)
    getattr(spec, kind).SetInParent()
    with pytest.raises(PipelineError, match=f"{kind}.*Apple-proprietary"):
        load(spec)


def test_every_classic_kind_runs_and_has_validator_rules():
    from pippin.pipelines.runtime.model import MODEL_KINDS, _import_kind_modules
    from pippin.pipelines.runtime.proprietary import PROPRIETARY_KINDS
    from pippin.spec.validate.classic import CLASSIC_CHECKS

    _import_kind_modules()
    classic = {"glmRegressor", "glmClassifier", "supportVectorRegressor", "supportVectorClassifier",
               "treeEnsembleRegressor", "treeEnsembleClassifier", "oneHotEncoder", "featureVectorizer",
               "dictVectorizer", "imputer", "scaler", "normalizer", "arrayFeatureExtractor", "categoricalMapping"}
    assert classic <= set(MODEL_KINDS)
    assert set(CLASSIC_CHECKS) == classic
    assert not set(PROPRIETARY_KINDS) & set(MODEL_KINDS)
    assert set(PROPRIETARY_KINDS) <= {f.name for f in Model.DESCRIPTOR.oneofs_by_name["Type"].fields}


def test_proprietary_pipeline_stage_is_refused_by_name():
    def described(model):
        feature = model.description.input.add()
        feature.name = "text"
        feature.type.stringType.SetInParent()
        out = model.description.output.add()
        out.name = "vector"
        out.type.multiArrayType.dataType = 65600
        return model

    stage = described(Model(specificationVersion=4))
    stage.wordEmbedding.SetInParent()
    spec = described(Model(specificationVersion=4))
    spec.pipeline.models.add().CopyFrom(stage)
    with pytest.raises(PipelineError, match="'wordEmbedding' is Apple-proprietary"):
        load(spec)


def test_input_of_a_type_the_kind_cannot_read_is_reported():
    spec = _describe(Model(specificationVersion=1), [("x", "stringType", [])], [("y", "array")])
    spec.normalizer.normType = 2
    problems = validate(spec)
    assert [p.rule for p in problems if p.path == "description.input[0]"] == ["classic-input"], problems
    with pytest.raises(SpecError, match=r"description.input\[0\]"):
        load(spec)
