"""Federated learning on Core ML files: parameter codec, the Flower-shaped client, and (with Flower) the server."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import load
from pippin.pipelines.build import NetworkBuilder
from pippin.pipelines.errors import PipelineError
from pippin.pipelines.personalize.federated import (CoreMLClient, client_data, parameter_names, score,
                                                     updatable_parameters, with_parameters)
from pippin.spec.validate import validate

LABELS = ["a", "b", "c"]


def _model(seed=0):
    """features [4] -> dense (frozen) 8 -> relu -> dense (updatable) 3 -> softmax; SGD, 5 epochs."""
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=LABELS,
                       predicted_feature_name="label", seed=seed)
    b.add_dense("frozen", "x", "h", n_out=8)
    b.add_activation("relu", "h", "hr", kind="ReLU")
    b.add_dense("head", "hr", "logits", n_out=3)
    b.add_softmax("softmax", "logits", "probs")
    b.make_updatable(["head"])
    b.set_loss("categorical_cross_entropy", input="probs", target="label")
    b.set_optimizer("sgd", learning_rate=0.1, batch_size=8, momentum=0.0)
    b.set_epochs(5)
    return b.spec


def _data(n, shift, seed):
    """Three Gaussian blobs in 4-D; ``shift`` moves a client's blobs (non-IID clients)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], np.float32)
    x = centres[y] + shift + 0.4 * rng.standard_normal((n, 4)).astype(np.float32)
    return {"x": x.astype(np.float32), "label": np.array(LABELS, dtype=object)[y]}


def _fedavg(results):
    """Hand-written FedAvg (the test's reference): example-weighted mean of each array."""
    total = sum(n for _, n, _ in results)
    return [sum(p[i] * n for p, n, _ in results) / total for i in range(len(results[0][0]))]


def test_parameters_are_only_the_updatable_weights():
    spec = _model()
    names = parameter_names(spec)
    assert [n.split(":")[1] for n in names] == ["head.weights", "head.bias"]
    w, b = updatable_parameters(spec)
    assert w.shape == (3, 8) and b.shape == (3,) and w.dtype == np.float32
    new = with_parameters(spec, [w + 1, b - 1])
    w2, b2 = updatable_parameters(new)
    np.testing.assert_allclose(w2, w + 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b2, b - 1, rtol=0, atol=1e-6)
    frozen = [layer for layer in new.neuralNetworkClassifier.layers if layer.name == "frozen"][0]
    assert frozen.SerializeToString() == [layer for layer in spec.neuralNetworkClassifier.layers
                                          if layer.name == "frozen"][0].SerializeToString()
    assert new.description == spec.description
    assert new.neuralNetworkClassifier.updateParams == spec.neuralNetworkClassifier.updateParams
    assert not [p for p in validate(new) if getattr(p, "severity", "error") == "error"]


def test_with_parameters_rejects_wrong_count_shape_and_nan():
    spec = _model()
    w, b = updatable_parameters(spec)
    with pytest.raises(PipelineError, match="got 1 parameter arrays"):
        with_parameters(spec, [w])
    with pytest.raises(PipelineError, match=r"head\.weights"):
        with_parameters(spec, [np.zeros((2, 8)), b])
    with pytest.raises(PipelineError, match="non-finite"):
        with_parameters(spec, [w * np.nan, b])


def test_no_updatable_weights_is_a_clear_error():
    spec = _model()
    for layer in spec.neuralNetworkClassifier.layers:
        layer.isUpdatable = False
    with pytest.raises(PipelineError, match="no updatable weights"):
        updatable_parameters(spec)


def test_client_fit_trains_with_the_file_update_and_evaluates():
    spec = _model()
    train, test = _data(120, 0.0, 1), _data(60, 0.0, 2)
    client = CoreMLClient(spec, train, test)
    start = client.get_parameters({})
    loss0, n_test, m0 = client.evaluate(start, {})
    params, n, metrics = client.fit(start, {})
    assert n == 120 and n_test == 60 and metrics["loss"] > 0
    # the same as updating the file directly with Pippin's engine
    direct = load(spec).update(train)
    for got, want in zip(params, updatable_parameters(direct.spec)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    loss1, _, m1 = client.evaluate(params, {})
    assert loss1 < loss0 and m1["accuracy"] > m0["accuracy"]
    assert client.fit(start, {"epochs": 1})[2]["loss"] > metrics["loss"]  # config epochs override the file's


def test_score_is_cross_entropy_and_accuracy():
    model = load(_model())
    data = _data(30, 0.0, 3)
    probs = model.predict_batch({"x": data["x"]})["probs"]
    truth = np.array([LABELS.index(v) for v in data["label"]])
    want_loss = -np.mean(np.log(probs[np.arange(30), truth]))
    want_acc = np.mean(np.argmax(probs, 1) == truth)
    loss, acc = score(model, data)
    assert loss == pytest.approx(want_loss, rel=1e-5) and acc == pytest.approx(want_acc)


def test_client_data_splits_by_group_without_overlap():
    data = _data(50, 0.0, 4)
    groups = np.array(["p", "q"] * 25)
    parts = client_data(data, groups, test_fraction=0.2, seed=0)
    assert sorted(parts) == ["p", "q"]
    for train, test in parts.values():
        assert len(train["x"]) == 20 and len(test["x"]) == 5
        rows = {tuple(r) for r in train["x"]} & {tuple(r) for r in test["x"]}
        assert not rows


def test_averaged_rounds_beat_the_start_on_every_client():
    """The client's round trip with a hand-written FedAvg: three non-IID clients converge together."""
    spec = _model()
    clients = [CoreMLClient(spec, _data(60, s, 10 + i), _data(40, s, 20 + i))
               for i, s in enumerate((0.0, 0.3, -0.3))]
    params = updatable_parameters(spec)
    before = [c.evaluate(params, {})[2]["accuracy"] for c in clients]
    for _ in range(3):
        params = _fedavg([c.fit(params, {}) for c in clients])
    after = [c.evaluate(params, {})[2]["accuracy"] for c in clients]
    assert min(after) > 0.8 and all(a > b for a, b in zip(after, before))


# -- the Flower server (needs pippin[federated]) ------------------------------------------------------


def test_federate_on_flower_writes_a_valid_model_each_round(tmp_path):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    spec = _model()
    clients = {f"c{i}": CoreMLClient(spec, _data(60, s, 10 + i), _data(40, s, 20 + i))
               for i, s in enumerate((0.0, 0.3, -0.3))}
    seen, written_each_round = [], []
    out = tmp_path / "fed.mlmodel"

    def on_round(record):
        seen.append(record)
        written_each_round.append(updatable_parameters(load(str(out)).spec)[0])

    history = federate(spec, clients, rounds=3, out=out, on_round=on_round)
    assert [h["round"] for h in history] == [1, 2, 3] and seen == history
    assert all(not np.array_equal(a, b) for a, b in zip(written_each_round, written_each_round[1:]))
    assert all(h["clients"] == 3 and h["failures"] == 0 for h in history)
    assert history[-1]["accuracy"] > 0.8 and history[-1]["loss"] < history[0]["loss"]
    written = load(str(out))
    assert written.spec.description == spec.description
    assert parameter_names(written.spec) == parameter_names(spec)
    same = with_parameters(written.spec, updatable_parameters(spec))
    assert same.SerializeToString() == with_parameters(spec, updatable_parameters(spec)).SerializeToString()


def test_a_client_crashing_mid_fit_does_not_stop_the_round(tmp_path):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    spec = _model()

    class Crashing(CoreMLClient):
        def fit(self, parameters, config):
            raise RuntimeError("device went away")

    clients = {"c0": CoreMLClient(spec, _data(60, 0, 1), _data(40, 0, 2)),
               "c1": Crashing(spec, _data(60, 0, 3), _data(40, 0, 4)),
               "c2": CoreMLClient(spec, _data(60, 0, 5), _data(40, 0, 6))}
    out = tmp_path / "fed.mlmodel"
    history = federate(spec, clients, rounds=2, out=out)
    assert all(h["clients"] == 2 and h["failures"] == 1 for h in history)
    assert load(str(out)).dry_run()


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam"])
def test_other_flower_strategies_and_dp_run(tmp_path, strategy):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    spec = _model()
    clients = {f"c{i}": CoreMLClient(spec, _data(60, 0, 30 + i), _data(40, 0, 40 + i)) for i in range(3)}
    history = federate(spec, clients, rounds=2, out=tmp_path / "a.mlmodel", strategy=strategy)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    for side in ("client", "server"):
        noisy = federate(spec, clients, rounds=2, out=tmp_path / "b.mlmodel", dp_clip=1.0, dp_noise=0.5,
                         dp_side=side)
        assert load(str(tmp_path / "b.mlmodel")).dry_run() and len(noisy) == 2


def test_client_clips_its_update_when_flower_asks():
    pytest.importorskip("flwr")
    spec = _model()
    client = CoreMLClient(spec, _data(60, 0, 1))
    start = updatable_parameters(spec)
    free = client.fit(start, {})[0]
    clipped = client.fit(start, {"clipping_norm": 0.05})[0]
    norm = lambda ps: np.sqrt(sum(float(np.sum((p - s) ** 2)) for p, s in zip(ps, start)))  # noqa: E731
    assert norm(free) > 0.05 and norm(clipped) == pytest.approx(0.05, rel=1e-4)
    direction = [(c - s) / norm(clipped) for c, s in zip(clipped, start)]
    for d, f, s in zip(direction, free, start):
        np.testing.assert_allclose(d, (f - s) / norm(free), atol=1e-4)


def test_federate_without_flower_says_how_to_install(monkeypatch, tmp_path):
    import sys

    from pippin.pipelines.personalize.federated_server import federate

    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(PipelineError, match="Flower"):
        federate(_model(), {"c": CoreMLClient(_model(), _data(10, 0, 1))}, rounds=1, out=tmp_path / "x.mlmodel")


def test_an_updatable_knn_is_refused_with_a_reason():
    from pippin.pipelines import KNearestNeighborsClassifier

    knn = KNearestNeighborsClassifier(n_dimensions=3, default_label="?", k=1, updatable=True)
    spec = knn.add_samples(np.eye(3, dtype=np.float32), ["a", "b", "c"]).to_spec()
    with pytest.raises(PipelineError, match="k-NN"):
        updatable_parameters(spec)


def test_split_head_federates_only_the_last_stage():
    from pippin.pipelines.build import PipelineClassifier
    from pippin.pipelines.personalize.federated import run_prefix, split_head

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["x2"])
    b.add_activation("scale", "x", "x2", kind="linear", alpha=2.0, beta=0.0)
    head = _model()
    head.description.input[0].name = "x2"
    head.neuralNetworkClassifier.layers[0].input[0] = "x2"
    pipe = PipelineClassifier([("pre", b.spec), ("head", head)]).make_updatable(training_inputs=["x", "label"])
    spec = pipe.to_spec()
    prefix, got = split_head(spec)
    assert len(prefix) == 1 and parameter_names(got) != [] and len(updatable_parameters(spec)) == 2
    data = _data(5, 0.0, 0)
    fed = run_prefix(prefix, data)
    np.testing.assert_allclose(fed["x2"], 2 * data["x"], rtol=1e-6)
    for a, b2 in zip(updatable_parameters(spec), updatable_parameters(got)):
        np.testing.assert_array_equal(a, b2)


def test_federate_is_reproducible(tmp_path):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    spec = _model()
    runs = []
    for name in ("a", "b"):
        clients = {f"c{i}": CoreMLClient(spec, _data(60, s, 10 + i), _data(40, s, 20 + i))
                   for i, s in enumerate((0.0, 0.3, -0.3))}
        federate(spec, clients, rounds=2, out=tmp_path / f"{name}.mlmodel")
        runs.append((tmp_path / f"{name}.mlmodel").read_bytes())
    assert runs[0] == runs[1]


def test_every_fit_failing_leaves_the_start_model(tmp_path):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    class Crashing(CoreMLClient):
        def fit(self, parameters, config):
            raise RuntimeError("no battery")

    spec = _model()
    out = tmp_path / "fed.mlmodel"
    history = federate(spec, {"c": Crashing(spec, _data(10, 0, 1), _data(10, 0, 2))}, rounds=2, out=out)
    assert [h["failures"] for h in history] == [1, 1]
    for got, want in zip(updatable_parameters(load(str(out)).spec), updatable_parameters(spec)):
        np.testing.assert_array_equal(got, want)
