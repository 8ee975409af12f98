"""The classic kinds' rules against hand-written references: every tree branch mode, missing
values and post-evaluation transform; GLM probit and one-vs-rest; sparse support vectors;
and batches equal to one example at a time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from pippin.pipelines.runtime import load
from pippin.spec import Model

OPS = {0: lambda v, t: v <= t, 1: lambda v, t: v < t, 2: lambda v, t: v >= t, 3: lambda v, t: v > t,
       4: lambda v, t: v == t, 5: lambda v, t: v != t}


def _io(spec, n_features, outputs):
    f = spec.description.input.add()
    f.name = "x"
    f.type.multiArrayType.shape.append(n_features)
    f.type.multiArrayType.dataType = 65600
    for name, kind in outputs:
        o = spec.description.output.add()
        o.name = name
        if kind == "dict":
            o.type.dictionaryType.int64KeyType.SetInParent()
        elif kind == "array":
            o.type.multiArrayType.dataType = 65600
        else:
            getattr(o.type, kind).SetInParent()


def _random_forest(params, rng, *, n_trees, n_dims, depth=3, modes=(0, 1, 2, 3, 4, 5)):
    """Random complete trees using every branch mode; returns {tree: {node: (mode, f, t, true, false, miss, leaf)}}."""
    trees = {}
    for tree in range(n_trees):
        nodes, next_id = {}, [1]

        def grow(node_id, level):
            if level == depth:
                values = rng.normal(size=n_dims).round(3)
                nodes[node_id] = (6, None, None, None, None, None, values)
                return
            true_id, false_id = next_id[0], next_id[0] + 1
            next_id[0] += 2
            mode = int(rng.choice(modes))
            nodes[node_id] = (mode, int(rng.integers(0, 3)), float(rng.integers(-1, 2)), true_id, false_id,
                              bool(rng.integers(0, 2)), None)
            grow(true_id, level + 1)
            grow(false_id, level + 1)

        grow(0, 0)
        trees[tree] = nodes
    for tree, nodes in trees.items():
        for node_id, (mode, f, t, true_id, false_id, miss, values) in sorted(nodes.items(), key=lambda kv: -kv[0]):
            node = params.nodes.add(treeId=tree, nodeId=node_id, nodeBehavior=mode)
            if mode == 6:
                for dim, value in enumerate(values):
                    node.evaluationInfo.add(evaluationIndex=dim, evaluationValue=float(value))
            else:
                node.branchFeatureIndex, node.branchFeatureValue = f, t
                node.trueChildNodeId, node.falseChildNodeId = true_id, false_id
                node.missingValueTracksTrueChild = miss
    params.numPredictionDimensions = n_dims
    return trees


def _walk(trees, row, n_dims, base):
    total = np.array(base, dtype=np.float64)
    for nodes in trees.values():
        node = nodes[0]
        while node[0] != 6:
            mode, f, t, true_id, false_id, miss, _ = node
            value = row[f]
            go = miss if np.isnan(value) else OPS[mode](value, t)
            node = nodes[true_id if go else false_id]
        total += node[6]
    return total


def _inputs(rng, n=60):
    x = rng.integers(-2, 3, size=(n, 3)).astype(np.float64)  # integers: the == and != modes get hits
    x[rng.random(size=x.shape) < 0.15] = np.nan
    return x


@pytest.mark.parametrize("transform,modes", [(0, (0, 1, 2, 3, 4, 5)), (2, (0, 1, 2, 3, 4, 5)), (0, (1,)), (0, (4,))])
def test_tree_regressor_every_branch_mode(transform, modes):
    rng = np.random.default_rng(transform + 10 * modes[0])
    spec = Model(specificationVersion=1)
    _io(spec, 3, [("y", "array")])
    params = spec.treeEnsembleRegressor.treeEnsemble
    trees = _random_forest(params, rng, n_trees=5, n_dims=2, modes=modes)
    params.basePredictionValue.extend([0.25, -0.5])
    spec.treeEnsembleRegressor.postEvaluationTransform = transform
    assert {n.nodeBehavior for n in params.nodes} == set(modes) | {6}  # one mode: the single-comparison path
    x = _inputs(rng)
    want = np.array([_walk(trees, row, 2, [0.25, -0.5]) for row in x])
    if transform == 2:
        want = 1 / (1 + np.exp(-want))
    np.testing.assert_allclose(load(spec).predict_batch({"x": x})["y"], want, rtol=1e-12)


@pytest.mark.parametrize("transform,n_dims,n_classes", [(0, 3, 3), (1, 3, 3), (2, 1, 2), (3, 2, 3), (0, 1, 2)])
def test_tree_classifier_transforms(transform, n_dims, n_classes):
    rng = np.random.default_rng(10 + transform)
    spec = Model(specificationVersion=1)
    _io(spec, 3, [("label", "int64Type"), ("p", "dict")])
    spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName = "label", "p"
    message = spec.treeEnsembleClassifier
    trees = _random_forest(message.treeEnsemble, rng, n_trees=4, n_dims=n_dims)
    message.postEvaluationTransform = transform
    labels = [10, 20, 30][:n_classes]
    message.int64ClassLabels.vector.extend(labels)
    x = _inputs(rng)
    s = np.array([_walk(trees, row, n_dims, np.zeros(n_dims)) for row in x])
    if n_dims == 1:  # one score for two labels: the second label's probability
        p1 = s[:, 0] if transform == 0 else 1 / (1 + np.exp(-s[:, 0]))
        want = np.stack([1 - p1, p1], axis=1)
    elif transform == 1:
        want = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    elif transform == 3:
        e = np.exp(np.concatenate([np.zeros((len(s), 1)), s], axis=1))
        want = e / e.sum(axis=1, keepdims=True)
    else:
        want = s
    model = load(spec)
    out = model.predict_batch({"x": x})
    np.testing.assert_allclose(out["p"], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out["label"], np.array(labels)[np.argmax(want, axis=1)])
    for i in (0, 7):
        one = model.predict({"x": x[i]})
        assert one["label"] == out["label"][i] and one["p"] == pytest.approx(dict(zip(labels, want[i])), rel=1e-12)


def _glm(spec, rows, offsets, *, encoding, transform, labels):
    _io(spec, rows.shape[1], [("label", "stringType"), ("p", "dict")])
    spec.description.output[1].type.dictionaryType.stringKeyType.SetInParent()
    spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName = "label", "p"
    glm = spec.glmClassifier
    for row in rows:
        glm.weights.add().value.extend(row.tolist())
    glm.offset.extend(offsets.tolist())
    glm.classEncoding, glm.postEvaluationTransform = encoding, transform
    glm.stringClassLabels.vector.extend(labels)


def test_glm_probit_binary_and_one_vs_rest():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    w, b = rng.normal(size=(1, 3)), rng.normal(size=1)
    spec = Model(specificationVersion=1)
    _glm(spec, w, b, encoding=0, transform=1, labels=["no", "yes"])
    p1 = norm.cdf(x @ w[0] + b[0])
    out = load(spec).predict_batch({"x": x})
    np.testing.assert_allclose(out["p"], np.stack([1 - p1, p1], axis=1), rtol=1e-10, atol=1e-14)
    w, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    spec = Model(specificationVersion=1)
    _glm(spec, w, b, encoding=1, transform=0, labels=["a", "b", "c"])
    s = 1 / (1 + np.exp(-(x @ w.T + b)))
    want = s / s.sum(axis=1, keepdims=True)
    out = load(spec).predict_batch({"x": x})
    np.testing.assert_allclose(out["p"], want, rtol=1e-12)
    np.testing.assert_array_equal(out["label"], np.array(["a", "b", "c"], dtype=object)[np.argmax(want, axis=1)])


def _svr(spec, vectors, alpha, rho, *, sparse):
    _io(spec, vectors.shape[1], [("y", "doubleType")])
    svr = spec.supportVectorRegressor
    svr.kernel.polyKernel.degree, svr.kernel.polyKernel.c, svr.kernel.polyKernel.gamma = 3, 1.0, 0.5
    for v in vectors:
        if sparse:
            node_list = svr.sparseSupportVectors.vectors.add()
            for j in np.flatnonzero(v):
                node_list.nodes.add(index=int(j) + 1, value=float(v[j]))
        else:
            svr.denseSupportVectors.vectors.add().values.extend(v.tolist())
    svr.coefficients.alpha.extend(alpha.tolist())
    svr.rho = rho


def test_sparse_support_vectors_equal_dense_and_the_formula():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(6, 4)) * (rng.random(size=(6, 4)) < 0.5)
    vectors[:, 3] = 0.0  # the last column is in no sparse vector: the input is still 4 wide
    alpha, rho = rng.normal(size=6), 0.3
    x = rng.normal(size=(25, 4))
    want = ((0.5 * x @ vectors.T + 1.0) ** 3) @ alpha - rho
    for sparse in (False, True):
        spec = Model(specificationVersion=1)
        _svr(spec, vectors, alpha, rho, sparse=sparse)
        np.testing.assert_allclose(load(spec).predict_batch({"x": x})["y"], want, rtol=1e-12)


def test_batch_equals_one_at_a_time_and_rows_differ():
    rng = np.random.default_rng(5)
    spec = Model(specificationVersion=1)
    _glm(spec, rng.normal(size=(2, 3)), rng.normal(size=2), encoding=0, transform=0, labels=["a", "b", "c"])
    model = load(spec)
    x = rng.normal(size=(12, 3))
    batch = model.predict_batch({"x": x})
    singles = [model.predict({"x": row}) for row in x]
    assert [s["label"] for s in singles] == batch["label"].tolist()
    np.testing.assert_allclose([[s["p"][k] for k in "abc"] for s in singles], batch["p"], rtol=1e-12)
    assert len({tuple(row) for row in batch["p"].round(6)}) > 1


def test_network_features_into_glm_classifier_pipeline():
    """The shape of Create ML's classifiers: a network makes features, a GLM classifier ends the pipeline."""
    pytest.importorskip("coremltools")
    import warnings

    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    rng = np.random.default_rng(8)
    w1, b1 = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder = NeuralNetworkBuilder([("audio", datatypes.Array(5))], [("features", datatypes.Array(8))])
        builder.add_inner_product("embed", w1, b1, 5, 8, True, input_name="audio", output_name="embed_out")
        builder.add_activation("relu", "RELU", "embed_out", "features")
    network = Model.FromString(builder.spec.SerializeToString())
    head = Model(specificationVersion=1)
    w2, b2 = rng.normal(size=(3, 8)), rng.normal(size=3)
    _glm(head, w2, b2, encoding=1, transform=0, labels=["speech", "music", "noise"])
    head.description.input[0].name = "features"
    head.description.input[0].type.multiArrayType.shape[:] = [8]
    spec = Model(specificationVersion=4)
    spec.description.input.add().CopyFrom(network.description.input[0])
    for out in head.description.output:
        spec.description.output.add().CopyFrom(out)
    spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName = "label", "p"
    spec.pipelineClassifier.pipeline.models.add().CopyFrom(network)
    spec.pipelineClassifier.pipeline.models.add().CopyFrom(head)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    out = load(spec).predict_batch({"audio": x})
    feats = np.maximum(x @ w1.T + b1, 0.0).astype(np.float64)
    s = 1 / (1 + np.exp(-(feats @ w2.T + b2)))
    want = s / s.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["p"], want, rtol=1e-5)
    np.testing.assert_array_equal(out["label"], np.array(["speech", "music", "noise"], dtype=object)[want.argmax(1)])
