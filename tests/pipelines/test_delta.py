"""Deltas: diff + apply reproduce the updated file byte for byte; merge is the weighted mean."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, PipelineError, load
from pippin.pipelines.personalize.delta import Delta, apply, diff, merge
from pippin.spec import io as spec_io


def dense_spec():
    """A two-layer network written by coremltools (the oracle), read into pippin's Model."""
    nb = pytest.importorskip("coremltools.models.neural_network")
    from coremltools.models import datatypes

    rng = np.random.default_rng(3)
    builder = nb.NeuralNetworkBuilder([("x", datatypes.Array(4))], [("y", datatypes.Array(2))])
    builder.add_inner_product("fc1", rng.normal(size=(3, 4)), rng.normal(size=3), 4, 3, True, "x", "h")
    builder.add_inner_product("fc2", rng.normal(size=(2, 3)), rng.normal(size=2), 3, 2, True, "h", "y")
    return spec_io.loads(builder.spec.SerializeToString())


def perturbed(spec, seed, *, layer=1):
    """A copy with layer ``layer``'s weights and bias changed, as an update would."""
    out = type(spec)()
    out.CopyFrom(spec)
    rng = np.random.default_rng(seed)
    ip = out.neuralNetwork.layers[layer].innerProduct
    for param in (ip.weights, ip.bias):
        values = np.asarray(param.floatValue, dtype=np.float32) + rng.normal(size=len(param.floatValue)).astype(np.float32)
        param.ClearField("floatValue")
        param.floatValue.extend(values.tolist())
    return out


def test_diff_keeps_only_changed_parameters_and_apply_is_byte_identical(tmp_path):
    base = spec_io.save(dense_spec(), tmp_path / "base.mlmodel")
    updated = spec_io.save(perturbed(spec_io.load(base), 1), tmp_path / "updated.mlmodel")
    delta = diff(base, updated, n_examples=7)
    paths = sorted(c["path"] for c in delta.changes)
    assert paths == ["neuralNetwork.layers[1].innerProduct.bias.floatValue",
                     "neuralNetwork.layers[1].innerProduct.weights.floatValue"]
    saved = delta.save(tmp_path / "d.mldelta")
    with zipfile.ZipFile(saved) as archive:
        assert "manifest.json" in archive.namelist()
    rebuilt = apply(base, Delta.load(saved))
    assert rebuilt.SerializeToString() == updated.read_bytes()
    assert Delta.load(saved).n_examples == 7


def test_apply_refuses_a_delta_for_another_base(tmp_path):
    base = spec_io.save(dense_spec(), tmp_path / "base.mlmodel")
    other = spec_io.save(perturbed(spec_io.load(base), 9, layer=0), tmp_path / "other.mlmodel")
    delta = diff(base, spec_io.save(perturbed(spec_io.load(base), 1), tmp_path / "u.mlmodel"))
    with pytest.raises(PipelineError, match="delta was made for base"):
        apply(other, delta)


def test_merge_is_the_example_weighted_mean(tmp_path):
    base_spec = dense_spec()
    base = spec_io.save(base_spec, tmp_path / "base.mlmodel")
    u1, u2 = perturbed(base_spec, 1), perturbed(base_spec, 2)
    d1 = diff(base, spec_io.save(u1, tmp_path / "u1.mlmodel"), n_examples=2)
    d2 = diff(base, spec_io.save(u2, tmp_path / "u2.mlmodel"), n_examples=6)
    merged = merge(base, [d1, d2])
    for field in ("weights", "bias"):
        p1 = np.asarray(getattr(u1.neuralNetwork.layers[1].innerProduct, field).floatValue, dtype=np.float64)
        p2 = np.asarray(getattr(u2.neuralNetwork.layers[1].innerProduct, field).floatValue, dtype=np.float64)
        want = ((2 * p1 + 6 * p2) / 8).astype(np.float32)
        got = np.asarray(getattr(merged.neuralNetwork.layers[1].innerProduct, field).floatValue, dtype=np.float32)
        np.testing.assert_array_equal(got, want)
    untouched = merged.neuralNetwork.layers[0].innerProduct.weights.floatValue
    assert list(untouched) == list(base_spec.neuralNetwork.layers[0].innerProduct.weights.floatValue)


def test_knn_deltas_append_and_merge_concatenates(tmp_path):
    rng = np.random.default_rng(0)
    base = KNearestNeighborsClassifier(n_dimensions=3, default_label="?", k=1).add_samples(
        rng.normal(size=(4, 3)), list("abab")).save(tmp_path / "knn.mlmodel")
    model = load(base)
    u1 = model.update({"features": np.full((1, 3), 10.0), "label": ["x"]}).save(tmp_path / "u1.mlmodel")
    u2 = model.update({"features": np.full((2, 3), -10.0), "label": ["y", "y"]}).save(tmp_path / "u2.mlmodel")
    d1, d2 = diff(base, u1), diff(base, u2)
    assert {c["op"] for c in d1.changes} == {"append"}
    assert apply(base, d1).SerializeToString() == u1.read_bytes()
    merged = load(merge(base, [d1, d2]))
    got = merged.predict_batch({"features": np.array([[10.0] * 3, [-10.0] * 3, [9.0] * 3])})
    assert list(got["label"]) == ["x", "y", "x"]


def test_diff_refuses_models_of_different_kinds(tmp_path):
    knn = KNearestNeighborsClassifier(n_dimensions=4, default_label="?").save(tmp_path / "k.mlmodel")
    net = spec_io.save(dense_spec(), tmp_path / "n.mlmodel")
    with pytest.raises(PipelineError, match="base is a kNearestNeighborsClassifier"):
        diff(knn, net)


def test_a_corrupt_delta_file_is_named(tmp_path):
    bad = tmp_path / "bad.mldelta"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="not a pippin delta file"):
        Delta.load(bad)


def test_apply_restores_map_entry_order_written_by_another_process(tmp_path):
    """Python protobuf writes map entries in a per-process order; apply must still match the file."""
    from pippin.pipelines.personalize.delta_wire import map_orders, reorder_maps
    from pippin.spec import Model

    spec = dense_spec()
    for i in range(8):
        spec.description.metadata.userDefined[f"key{i}"] = f"value{i}"
    base = spec_io.save(spec, tmp_path / "base.mlmodel")
    data = perturbed(spec, 1).SerializeToString()
    keys = map_orders(data, Model.DESCRIPTOR)["description.metadata.userDefined"]
    shuffled = reorder_maps(data, Model.DESCRIPTOR, {"description.metadata.userDefined": keys[::-1]})
    assert shuffled != data and spec_io.loads(shuffled) == spec_io.loads(data)
    updated = tmp_path / "updated.mlmodel"
    updated.write_bytes(shuffled)
    delta = diff(base, updated)
    from pippin.pipelines.personalize.delta import apply_bytes

    assert apply_bytes(base, delta) == shuffled
