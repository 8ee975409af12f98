"""k-NN classifiers: coremltools-built models run in pippin as an independent NumPy vote says."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, PipelineError, load
from pippin.spec import io as spec_io


def reference_knn(samples, labels, queries, *, k, inverse):
    """Brute force, one query at a time: squared distances, weighted vote, tie -> closest label."""
    classes = sorted(set(labels))
    out_labels, out_probs = [], []
    for q in queries.astype(np.float64):
        d = ((samples.astype(np.float64) - q) ** 2).sum(axis=1)
        order = np.argsort(d, kind="stable")[:k]
        if inverse and (d[order] == 0).any():
            w = (d[order] == 0).astype(float)
        else:
            w = 1.0 / d[order] if inverse else np.ones(len(order))
        score = {c: 0.0 for c in classes}
        for i, wi in zip(order, w):
            score[labels[i]] += wi
        total = sum(score.values())
        best = max(score.values())
        winner = next(labels[i] for i in order if score[labels[i]] >= best * (1 - 1e-12))
        out_labels.append(winner)
        out_probs.append([score[c] / total for c in classes])
    return out_labels, np.array(out_probs)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    samples = rng.normal(size=(60, 5)).astype(np.float32)
    queries = rng.normal(size=(25, 5)).astype(np.float32)
    return samples, queries


@pytest.mark.parametrize("index", ["linear", "kd_tree"])
@pytest.mark.parametrize("weighting", ["uniform", "inverse_distance"])
@pytest.mark.parametrize("int_labels", [False, True])
def test_coremltools_knn_matches_numpy(data, index, weighting, int_labels):
    nn = pytest.importorskip("coremltools.models.nearest_neighbors")
    samples, queries = data
    labels = [i % 4 for i in range(len(samples))] if int_labels else [f"c{i % 4}" for i in range(len(samples))]
    builder = nn.KNearestNeighborsClassifierBuilder(
        input_name="x", output_name="label", number_of_dimensions=5,
        default_class_label=-1 if int_labels else "none", number_of_neighbors=7,
        weighting_scheme=weighting, index_type=index, leaf_size=4)
    builder.add_samples(samples, labels)
    model = load(builder.spec.SerializeToString())
    got = model.predict_batch({"x": queries})
    want_labels, want_probs = reference_knn(samples, labels, queries, k=7, inverse=weighting != "uniform")
    assert list(got["label"]) == want_labels
    np.testing.assert_allclose(got["labelProbs"], want_probs, rtol=1e-5, atol=1e-7)
    one = model.predict({"x": queries[3]})
    assert one["label"] == want_labels[3]
    assert one["labelProbs"] == pytest.approx(dict(zip(sorted(set(labels)), want_probs[3])))


def test_batch_equals_loop_and_rows_differ(data):
    samples, queries = data
    model = KNearestNeighborsClassifier(n_dimensions=5, default_label="?", k=3).add_samples(
        samples, [f"c{i % 3}" for i in range(60)]).model()
    batch = model.predict_batch({"features": queries})
    loop = [model.predict({"features": q})["label"] for q in queries]
    assert list(batch["label"]) == loop and len(set(loop)) > 1


def test_k_input_overrides_and_is_checked(data):
    samples, queries = data
    labels = [f"c{i % 3}" for i in range(60)]
    knn = KNearestNeighborsClassifier(n_dimensions=5, default_label="?", k=3, k_range=(1, 9), k_input="k")
    model = knn.add_samples(samples, labels).model()
    for k in (1, 9):
        got = model.predict_batch({"features": queries, "k": np.full(len(queries), k)})
        want, probs = reference_knn(samples, labels, queries, k=k, inverse=False)
        assert list(got["label"]) == want
        np.testing.assert_allclose(got["labelProbs"], probs)
    mixed = np.where(np.arange(len(queries)) % 2 == 0, 1, 9)
    got = model.predict_batch({"features": queries, "k": mixed})
    for k in (1, 9):
        want, _ = reference_knn(samples, labels, queries[mixed == k], k=k, inverse=False)
        assert list(got["label"][mixed == k]) == want
    with pytest.raises(PipelineError, match="numberOfNeighbors 10 is outside"):
        model.predict({"features": queries[0], "k": 10})


def test_empty_index_predicts_default_label():
    model = KNearestNeighborsClassifier(n_dimensions=2, default_label=42).model()
    out = model.predict({"features": [1.0, 2.0]})
    assert out["label"] == 42 and out["labelProbs"] == {}


def test_builder_spec_parses_in_coremltools_and_update_appends(tmp_path, data):
    ct = pytest.importorskip("coremltools")
    samples, _ = data
    path = KNearestNeighborsClassifier(n_dimensions=5, default_label="?", k=1, index="kd_tree").add_samples(
        samples[:10], ["a"] * 10).save(tmp_path / "knn.mlmodel")
    theirs = ct.models.utils.load_spec(str(path))
    assert theirs.isUpdatable and theirs.specificationVersion == 4
    assert len(theirs.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples) == 10
    model = load(path)
    new = np.full((2, 5), 30.0, dtype=np.float32)
    updated = model.update({"features": new, "label": np.array(["b", "b"])})
    assert updated.predict({"features": new[0] + 0.1})["label"] == "b"
    assert model.predict({"features": new[0]})["label"] == "a"  # the original is unchanged
    saved = updated.save(tmp_path / "u.mlmodel")
    assert len(spec_io.load(saved).kNearestNeighborsClassifier.stringClassLabels.vector) == 12


@pytest.mark.parametrize("kwargs, match", [
    ({"weighting": "cosine"}, "weighting"), ({"index": "ball"}, "index"), ({"k": 0}, "k=0"),
    ({"k": 5, "k_set": [1, 3]}, r"k=5 is not within"),
])
def test_builder_rejects_bad_settings(kwargs, match):
    with pytest.raises(PipelineError, match=match):
        KNearestNeighborsClassifier(n_dimensions=3, default_label="x", **kwargs).to_spec()


def test_update_rejects_wrong_width(data):
    model = KNearestNeighborsClassifier(n_dimensions=5, default_label="?").model()
    with pytest.raises(PipelineError, match="expected"):
        model.update({"features": np.zeros((2, 4)), "label": ["a", "b"]})
