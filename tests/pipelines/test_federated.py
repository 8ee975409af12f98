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


def _model(seed=0, *, frozen=True, learning_rate=0.1, batch_size=8, epochs=5, shuffle=None):
    """features [4] -> (dense (frozen) 8 -> relu ->) dense (updatable) 3 -> softmax; SGD."""
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=LABELS,
                       predicted_feature_name="label", seed=seed)
    head_input = "x"
    if frozen:
        b.add_dense("frozen", "x", "h", n_out=8)
        b.add_activation("relu", "h", "hr", kind="ReLU")
        head_input = "hr"
    b.add_dense("head", head_input, "logits", n_out=3)
    b.add_softmax("softmax", "logits", "probs")
    b.make_updatable(["head"])
    b.set_loss("categorical_cross_entropy", input="probs", target="label")
    b.set_optimizer("sgd", learning_rate=learning_rate, batch_size=batch_size, momentum=0.0)
    b.set_epochs(epochs)
    if shuffle is not None:
        b.set_shuffle(shuffle)
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


# -- FedProx's proximal term on the clients ---------------------------------------------------------


def _softmax_ce_grads(w, b, x, y):
    """Hand-computed gradients of the mean categorical cross-entropy of softmax(x @ w.T + b)."""
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    return d.T @ x, d.sum(0)


def test_proximal_wrapper_adds_mu_times_the_pull_to_the_gradient():
    from pippin.pipelines.personalize.proximal import Proximal
    from pippin.pipelines.update.optimizers import SGD, Adam

    rng = np.random.default_rng(0)
    w, g, a = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    new, _ = Proximal(SGD(learning_rate=0.1), 0.5, anchor={"w": a}).step({"w": w}, {"w": g}, None)
    np.testing.assert_allclose(new["w"], w - 0.1 * (g + 0.5 * (w - a)), rtol=1e-6, atol=1e-6)
    # Adam sees the pulled gradient: the same step as Adam on g + mu (w - a)
    got, _ = Proximal(Adam(learning_rate=0.01), 0.5, anchor={"w": a}).step({"w": w}, {"w": g}, None)
    want, _ = Adam(learning_rate=0.01).step({"w": w}, {"w": g + np.float32(0.5) * (w - a)}, None)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6, atol=1e-7)
    # with no anchor given, the first step's weights are the anchor: no pull on the first step
    free, _ = SGD(learning_rate=0.1).step({"w": w}, {"w": g}, None)
    first, state = Proximal(SGD(learning_rate=0.1), 0.5).step({"w": w}, {"w": g}, None)
    np.testing.assert_array_equal(first["w"], free["w"])
    np.testing.assert_array_equal(state["anchor"]["w"], w)


def test_fedprox_client_step_equals_the_hand_computed_proximal_step():
    """Two mini-batch SGD steps of a fit with proximal_mu: the second is pulled towards the received weights."""
    spec = _model(3, frozen=False, learning_rate=0.5, batch_size=10, epochs=1, shuffle=False)
    data = _data(20, 0.0, 7)
    x, y = data["x"], np.array([LABELS.index(v) for v in data["label"]])
    client = CoreMLClient(spec, data)
    w0, b0 = (p.astype(np.float64) for p in updatable_parameters(spec))
    mu, lr = 2.0, 0.5

    def hand(mu):
        w, bias = w0.copy(), b0.copy()
        for rows in (slice(0, 10), slice(10, 20)):
            gw, gb = _softmax_ce_grads(w, bias, x[rows], y[rows])
            w, bias = w - lr * (gw + mu * (w - w0)), bias - lr * (gb + mu * (bias - b0))
        return w, bias

    got = client.fit([w0.astype(np.float32), b0.astype(np.float32)], {"proximal_mu": mu})[0]
    plain = client.fit([w0.astype(np.float32), b0.astype(np.float32)], {})[0]
    for g, want in zip(got, hand(mu)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)
    for g, want in zip(plain, hand(0.0)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got[0], plain[0], atol=1e-4)  # the term changed the second step


def test_fedprox_on_flower_sends_mu_and_the_clients_apply_it(tmp_path):
    pytest.importorskip("flwr")
    from pippin.pipelines.personalize.federated_server import federate

    spec = _model()
    seen = []

    class Watching(CoreMLClient):
        def fit(self, parameters, config):
            seen.append(config.get("proximal_mu"))
            return super().fit(parameters, config)

    def run(strategy, **kw):
        clients = {f"c{i}": Watching(spec, _data(60, s, 10 + i), _data(40, s, 20 + i))
                   for i, s in enumerate((0.0, 0.3, -0.3))}
        federate(spec, clients, rounds=2, out=tmp_path / f"{strategy}.mlmodel", strategy=strategy, **kw)
        return updatable_parameters(load(str(tmp_path / f"{strategy}.mlmodel")).spec)

    avg, prox = run("fedavg"), run("fedprox", proximal_mu=1.0)
    assert seen[:6] == [None] * 6 and seen[6:] == [1.0] * 6
    start = updatable_parameters(spec)
    moved = lambda ps: np.sqrt(sum(float(np.sum((p - s) ** 2)) for p, s in zip(ps, start)))  # noqa: E731
    assert moved(prox) < moved(avg)  # the pull keeps the clients nearer the shared weights


# -- Flower's simulation engine and SecAgg+ (needs pippin[federated-simulation]: Ray) -------------------


def test_simulation_engine_with_secure_aggregation_matches_the_in_process_rounds(tmp_path):
    pytest.importorskip("flwr")
    pytest.importorskip("ray", reason="Flower's simulation engine needs pippin[federated-simulation] (Ray)")
    from pippin.pipelines.personalize.federated_server import federate
    from pippin.pipelines.personalize.federated_sim import simulate

    spec = _model()
    parts = {f"c{i}": (_data(60, s, 10 + i), _data(40, s, 20 + i)) for i, s in enumerate((0.0, 0.3, -0.3))}
    federate(spec, {k: CoreMLClient(spec, tr, te) for k, (tr, te) in parts.items()}, rounds=2,
             out=tmp_path / "inprocess.mlmodel")
    want = updatable_parameters(load(str(tmp_path / "inprocess.mlmodel")).spec)
    for secure, tol in ((False, 1e-5), (True, 1e-4)):  # SecAgg+ quantizes to 2^22 levels over [-8, 8]
        out = tmp_path / f"sim{secure}.mlmodel"
        history = simulate(spec, spec, parts, rounds=2, out=out, secure_aggregation=secure, num_cpus=2)
        assert [h["clients"] for h in history] == [3, 3] and history[-1]["accuracy"] > 0.8
        for got, w in zip(updatable_parameters(load(str(out)).spec), want):
            np.testing.assert_allclose(got, w, atol=tol)


def test_simulation_engine_refusals(monkeypatch, tmp_path):
    pytest.importorskip("flwr")
    import sys

    from pippin.pipelines.personalize.federated_sim import simulate

    spec = _model()
    parts = {f"c{i}": (_data(20, 0, i), {}) for i in range(2)}
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PipelineError, match="Ray"):
        simulate(spec, spec, parts, rounds=1, out=tmp_path / "x.mlmodel")
    monkeypatch.setattr("pippin.pipelines.personalize.federated_sim.ray_available", lambda: True)
    with pytest.raises(PipelineError, match="at least 3 clients"):
        simulate(spec, spec, parts, rounds=1, out=tmp_path / "x.mlmodel", secure_aggregation=True)
