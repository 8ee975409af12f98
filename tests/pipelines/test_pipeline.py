"""Pipelines built with coremltools run in pippin as independent NumPy says; updates touch the last stage."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import PipelineError, load
from pippin.spec import Model

ct = pytest.importorskip("coremltools")
from coremltools.models import datatypes  # noqa: E402
from coremltools.models.nearest_neighbors import KNearestNeighborsClassifierBuilder  # noqa: E402
from coremltools.models.neural_network import NeuralNetworkBuilder  # noqa: E402
from coremltools.models.pipeline import Pipeline, PipelineClassifier, PipelineRegressor  # noqa: E402

RNG = np.random.default_rng(11)
W1, B1 = RNG.normal(size=(3, 4)), RNG.normal(size=3)
W2, B2 = RNG.normal(size=(2, 3)), RNG.normal(size=2)
SAMPLES = RNG.normal(size=(30, 3))
LABELS = [f"c{i % 3}" for i in range(30)]
QUERIES = RNG.normal(size=(16, 4)).astype(np.float32)


def dense(name, w, b, inp, out, *, relu=False):
    builder = NeuralNetworkBuilder([(inp, datatypes.Array(w.shape[1]))], [(out, datatypes.Array(w.shape[0]))])
    builder.add_inner_product(name, w, b, w.shape[1], w.shape[0], True, inp, out + "_pre" if relu else out)
    if relu:
        builder.add_activation(name + "_relu", "RELU", out + "_pre", out)
    return builder.spec


def knn(index, weighting, *, updatable=False):
    builder = KNearestNeighborsClassifierBuilder(
        input_name="emb", output_name="label", number_of_dimensions=3, default_class_label="none",
        number_of_neighbors=5, weighting_scheme=weighting, index_type=index, leaf_size=3)
    builder.add_samples(SAMPLES, LABELS)
    builder.is_updatable = updatable
    return builder.spec


def vote(embedded, *, k, inverse):
    """Brute-force reference: squared distances, weighted vote share, tie -> closest label."""
    classes = sorted(set(LABELS))
    labels, probs = [], []
    for e in embedded:
        d = ((SAMPLES - e) ** 2).sum(axis=1)
        order = np.argsort(d, kind="stable")[:k]
        w = 1.0 / d[order] if inverse else np.ones(k)
        score = {c: sum(wi for i, wi in zip(order, w) if LABELS[i] == c) for c in classes}
        best = max(score.values())
        labels.append(next(LABELS[i] for i in order if score[LABELS[i]] >= best * (1 - 1e-12)))
        probs.append([score[c] / sum(score.values()) for c in classes])
    return labels, np.array(probs)


def classifier_pipeline(index, weighting, *, updatable=False):
    pipe = PipelineClassifier([("x", datatypes.Array(4))], ["c0", "c1", "c2"], output_features=[
        ("label", datatypes.String()), ("labelProbs", datatypes.Dictionary(datatypes.String()))])
    pipe.add_model(dense("fc", W1, B1, "x", "emb", relu=True))
    pipe.add_model(knn(index, weighting, updatable=updatable))
    if updatable:
        pipe.spec.isUpdatable = True
        pipe.spec.specificationVersion = 4
        for name in ("x", "label"):
            src = pipe.spec.description.input if name == "x" else pipe.spec.description.output
            pipe.spec.description.trainingInput.add().CopyFrom([f for f in src if f.name == name][0])
    return pipe.spec


@pytest.mark.parametrize("index", ["linear", "kd_tree"])
@pytest.mark.parametrize("weighting", ["uniform", "inverse_distance"])
def test_pipeline_classifier_matches_numpy(index, weighting):
    model = load(classifier_pipeline(index, weighting).SerializeToString())
    embedded = np.maximum(QUERIES.astype(np.float64) @ W1.T + B1, 0)
    want_labels, want_probs = vote(embedded, k=5, inverse=weighting != "uniform")
    got = model.predict_batch({"x": QUERIES})
    assert list(got["label"]) == want_labels
    np.testing.assert_allclose(got["labelProbs"], want_probs, rtol=1e-4)
    one = model.predict({"x": QUERIES[2]})
    assert one["label"] == want_labels[2]
    assert one["labelProbs"] == pytest.approx(dict(zip(["c0", "c1", "c2"], want_probs[2])), rel=1e-4)


@pytest.mark.parametrize("kind", [Pipeline, PipelineRegressor])
def test_two_network_pipeline_matches_numpy(kind):
    if kind is Pipeline:
        pipe = kind([("x", datatypes.Array(4))], [("y", datatypes.Array(2))])
    else:
        pipe = kind([("x", datatypes.Array(4))], "y")
    pipe.add_model(dense("fc1", W1, B1, "x", "h", relu=True))
    pipe.add_model(dense("fc2", W2, B2, "h", "y"))
    if kind is PipelineRegressor:
        pipe.spec.description.output[0].type.multiArrayType.shape.append(2)
    model = load(pipe.spec.SerializeToString())
    want = np.maximum(QUERIES.astype(np.float64) @ W1.T + B1, 0) @ W2.T + B2
    got = np.asarray(model.predict_batch({"x": QUERIES})["y"]).reshape(len(QUERIES), 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_updatable_pipeline_updates_only_the_last_stage():
    spec = classifier_pipeline("linear", "uniform", updatable=True)
    model = load(spec.SerializeToString())
    new = np.array([[8, 8, 8, 8], [-8, 8, -8, 8]], dtype=np.float32)
    updated = model.update({"x": np.repeat(new, 3, axis=0), "label": np.array(["new"] * 6)})  # 3 of k=5 votes
    assert list(updated.predict_batch({"x": new})["label"]) == ["new", "new"]
    before, after = spec.pipelineClassifier.pipeline.models, updated.spec.pipelineClassifier.pipeline.models
    assert before[0].SerializeToString() == after[0].SerializeToString()
    n_samples = len(after[1].kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples)
    assert n_samples == len(SAMPLES) + 6


def test_non_updatable_pipeline_refuses_update():
    model = load(classifier_pipeline("linear", "uniform").SerializeToString())
    with pytest.raises(PipelineError, match="not updatable"):
        model.update({"x": QUERIES, "label": np.array(["a"] * len(QUERIES))})


def test_unsupported_stage_kind_fails_at_load_naming_it():
    pipe = Pipeline([("x", datatypes.Array(4))], [("y", datatypes.Double())])
    glm = Model()
    glm.specificationVersion = 1
    glm.bayesianProbitRegressor.SetInParent()  # a kind Pippin does not run (glmRegressor now runs)
    glm.description.input.add().ParseFromString(pipe.spec.description.input[0].SerializeToString())
    glm.description.output.add().ParseFromString(pipe.spec.description.output[0].SerializeToString())
    pipe.spec.pipeline.models.add().ParseFromString(glm.SerializeToString())
    with pytest.raises(PipelineError, match="'bayesianProbitRegressor' is not one Pippin runs"):
        load(pipe.spec.SerializeToString())


def test_a_stage_input_nobody_provides_is_named():
    pipe = Pipeline([("x", datatypes.Array(4))], [("y", datatypes.Array(2))])
    pipe.add_model(dense("fc2", W2, B2, "h", "y"))
    with pytest.raises(PipelineError, match="takes 'h'|input 'h' is neither"):
        load(pipe.spec.SerializeToString())
