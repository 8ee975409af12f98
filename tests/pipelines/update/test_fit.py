"""fit_network: from-scratch training of every weight (conv, dense, batchnorm with running statistics)."""

import numpy as np
import pytest

from pippin.pipelines import PipelineError
from pippin.pipelines.build.network import NetworkBuilder
from pippin.pipelines.update import fit_network
from pippin.spec.validate import validate

torch = pytest.importorskip("torch")
F = torch.nn.functional
LABELS = ["a", "b", "c"]


def small_sound_net(seed=0, height=12):
    """The sound classifier's shape at toy size: conv-bn-relu-pool, conv-bn-relu, global mean+max, dense
    (``height=11``: the 2x2 max pooling sees an odd height)."""
    b = NetworkBuilder(inputs=[("x", (1, height, 8))], outputs=["probs"], mode="classifier", class_labels=LABELS,
                       seed=seed)
    b.add_conv("conv1", "x", "c1", n_out=4, bias=False)  # a bias before batchnorm has no gradient
    b.add_batchnorm("bn1", "c1", "b1")
    b.add_activation("relu1", "b1", "r1")
    b.add_pooling("pool1", "r1", "p1", type="max")
    b.add_conv("conv2", "p1", "c2", n_out=6, bias=False)
    b.add_batchnorm("bn2", "c2", "b2")
    b.add_activation("relu2", "b2", "r2")
    b.add_pooling("gavg", "r2", "ga", type="average", is_global=True)
    b.add_pooling("gmax", "r2", "gm", type="max", is_global=True)
    b.add_concat("cat", ["ga", "gm"], "cat")
    b.add_flatten("flat", "cat", "f")
    b.add_dense("fc1", "f", "h", n_out=5)
    b.add_activation("relu3", "h", "hr")
    b.add_dense("fc2", "hr", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    return b.spec


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 1, 12, 8)).astype(np.float32)
    x[:, 0, :4] += (y == 0)[:, None, None] * 2.0
    x[:, 0, 4:8] += (y == 1)[:, None, None] * 2.0
    return x, y


def _params(spec):
    out = {}
    for layer in spec.neuralNetworkClassifier.layers:
        kind = layer.WhichOneof("layer")
        p = getattr(layer, kind)
        for field in ("weights", "bias", "gamma", "beta", "mean", "variance"):
            if hasattr(p, field) and len(getattr(p, field).floatValue):
                out[(layer.name, field)] = np.array(getattr(p, field).floatValue, np.float32)
    return out


def _torch_epoch(spec, x, y, *, lr, batch_size, seed):
    p = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in _params(spec).items()
         if k[1] not in ("mean", "variance")}
    stats = {k: torch.from_numpy(v.copy()) for k, v in _params(spec).items() if k[1] in ("mean", "variance")}

    def bn(h, name):
        return F.batch_norm(h, stats[(name, "mean")], stats[(name, "variance")], p[(name, "gamma")],
                            p[(name, "beta")], training=True, momentum=0.1, eps=1e-5)

    def forward(xb):
        h = F.relu(bn(F.conv2d(xb, p[("conv1", "weights")].reshape(4, 1, 3, 3), None, padding=1),
                      "bn1"))
        h = F.max_pool2d(h, 2)
        h = F.relu(bn(F.conv2d(h, p[("conv2", "weights")].reshape(6, 4, 3, 3), None, padding=1),
                      "bn2"))
        feat = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        h = F.relu(F.linear(feat, p[("fc1", "weights")].reshape(5, 12), p[("fc1", "bias")]))
        return F.linear(h, p[("fc2", "weights")].reshape(3, 5), p[("fc2", "bias")])

    opt = torch.optim.Adam(list(p.values()), lr=lr)
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        opt.zero_grad()
        F.cross_entropy(forward(torch.from_numpy(x[idx])), torch.from_numpy(y[idx])).backward()
        opt.step()
    out = {k: v.detach().numpy().reshape(-1) for k, v in p.items()}
    out.update({k: v.numpy() for k, v in stats.items()})
    return out


def test_one_epoch_matches_torch_including_batchnorm_statistics():
    spec = small_sound_net()
    x, y = _data()
    trained, history = fit_network(spec, x, y, epochs=1, batch_size=16, learning_rate=0.01, lr_schedule=None,
                                   random_state=7)
    expected = _torch_epoch(spec, x, y, lr=0.01, batch_size=16, seed=7)
    ours = _params(trained)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-4, atol=1e-5, err_msg=str(key))
    assert history["epochs_run"] == 1 and len(history["loss"]) == 1


def test_learns_and_is_deterministic():
    x, y = _data(60, seed=1)
    labels = np.array(LABELS, dtype=object)[y]
    kw = dict(epochs=6, batch_size=12, learning_rate=0.02, random_state=3)
    a, ha = fit_network(small_sound_net(), x, labels, **kw)
    b, _ = fit_network(small_sound_net(), x, labels, **kw)
    c, _ = fit_network(small_sound_net(), x, labels, **{**kw, "random_state": 4})
    assert a.SerializeToString() == b.SerializeToString()
    assert a.SerializeToString() != c.SerializeToString()
    assert ha["loss"][-1] < ha["loss"][0]
    assert ha["accuracy"][-1] > 0.6
    assert ha["learning_rate"][0] == pytest.approx(0.02) and ha["learning_rate"][-1] < 0.02
    assert validate(a) == []
    before, after = _params(small_sound_net()), _params(a)
    assert not np.allclose(before[("bn1", "mean")], after[("bn1", "mean")])


def test_validation_early_stopping_and_progress_stop():
    x, y = _data(48, seed=2)
    vx, vy = _data(24, seed=3)
    _, h = fit_network(small_sound_net(), x, y, epochs=30, batch_size=16, learning_rate=0.5, optimizer="sgd",
                       validation=(vx, vy), early_stopping_patience=2, random_state=0)
    assert h["epochs_run"] < 30 and len(h["val_loss"]) == h["epochs_run"]
    assert h["best_epoch"] == int(np.argmin(h["val_loss"]))
    seen = []
    _, h2 = fit_network(small_sound_net(), x, y, epochs=5, batch_size=16, learning_rate=0.01, random_state=0,
                        progress=lambda e: seen.append(e["epoch"]) or e["epoch"] < 1)
    assert seen == [0, 1] and h2["epochs_run"] == 2


def test_bad_arguments():
    x, y = _data(8)
    with pytest.raises(PipelineError, match="optimizer"):
        fit_network(small_sound_net(), x, y, epochs=1, batch_size=4, optimizer="rmsprop")
    with pytest.raises(PipelineError, match="'zebra'"):
        fit_network(small_sound_net(), x, np.array(["zebra"] * 8, dtype=object), epochs=1, batch_size=4)
    with pytest.raises(PipelineError, match="shape"):
        fit_network(small_sound_net(), x[:, :, :6], y, epochs=1, batch_size=4)


def test_augment_sees_every_training_batch_and_never_validation():
    x, y = _data(n=40)
    seen = []

    def augment(batch, rng):
        (name, values), = batch.items()
        seen.append(len(values))
        return {name: values + rng.normal(0, 0.1, values.shape).astype(np.float32)}

    spec = small_sound_net()
    trained, history = fit_network(spec, x, y, epochs=2, batch_size=16, validation=(x[:8], y[:8]),
                                   random_state=0, augment=augment)
    assert seen == [16, 16, 8] * 2
    plain, _ = fit_network(spec, x, y, epochs=2, batch_size=16, validation=(x[:8], y[:8]), random_state=0)
    assert trained.SerializeToString() != plain.SerializeToString()  # the augmented batches were trained on
    again, _ = fit_network(spec, x, y, epochs=2, batch_size=16, validation=(x[:8], y[:8]), random_state=0,
                           augment=augment)
    assert trained.SerializeToString() == again.SerializeToString()  # seeded: the same bytes
