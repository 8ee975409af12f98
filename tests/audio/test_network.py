"""The sound CNN trains in Pippin exactly as the same network does in PyTorch (the issue's reference).

Weights are copied from Pippin's untrained network into an independently written
PyTorch model; one full-batch SGD step (learning rate 1: the weight change is the
gradient) and two epochs of Adam with the cosine schedule must then agree. This
is the check that pins the FSDD accuracy gap on data/seeds, not on the trainer.
"""

from __future__ import annotations

import numpy as np
import pytest

from pippin.audio.network import CONV_CHANNELS, DENSE_UNITS, build_network
from pippin.pipelines.update import fit_network
from pippin.pipelines.update.network import layers_of

torch = pytest.importorskip("torch")
nn = torch.nn

LABELS = [str(i) for i in range(10)]


def _torch_copy(spec):
    """The reference CNN in PyTorch with ``spec``'s weights."""
    layers = {layer.name: layer for layer in layers_of(spec)}

    def block(c_in, c_out, pool):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()] + (
            [nn.MaxPool2d(2)] if pool else [])

    c1, c2, c3 = CONV_CHANNELS
    body = nn.Sequential(*block(1, c1, True), *block(c1, c2, True), *block(c2, c3, False))
    head = nn.Sequential(nn.Linear(2 * c3, DENSE_UNITS), nn.ReLU(), nn.Linear(DENSE_UNITS, 10))
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    bns = [m for m in body if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for i, conv in enumerate(convs, start=1):
            conv.weight.copy_(torch.from_numpy(layers[f"conv{i}"].params["weights"]))
            conv.bias.copy_(torch.from_numpy(layers[f"conv{i}"].params["bias"]))
        for i, bn in enumerate(bns, start=1):
            bn.weight.copy_(torch.from_numpy(layers[f"bn{i}"].params["gamma"]))
            bn.bias.copy_(torch.from_numpy(layers[f"bn{i}"].params["beta"]))
        for lin, name in zip((head[0], head[2]), ("dense1", "dense2")):
            lin.weight.copy_(torch.from_numpy(layers[name].params["weights"]))
            lin.bias.copy_(torch.from_numpy(layers[name].params["bias"]))

    def forward(x):
        h = body(x)
        return head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    pairs = [(f"conv{i}", m) for i, m in enumerate(convs, 1)] + [(f"bn{i}", m) for i, m in enumerate(bns, 1)]
    pairs += [("dense1", head[0]), ("dense2", head[2])]
    return forward, list(body.parameters()) + list(head.parameters()), pairs


def _data(n=64):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(n, 1, 96, 64)) * 2 - 3).astype(np.float32)  # log-mel-like offset and spread
    y = rng.integers(0, 10, n)
    return x, y


def _param(layer, name):
    if name.startswith("bn"):
        return layer.params["gamma"], layer.params["beta"]
    return layer.params["weights"], layer.params["bias"]


def test_one_sgd_step_equals_pytorch_gradient():
    x, y = _data()
    spec = build_network(LABELS, seed=5, learning_rate=1.0, batch_size=len(y), epochs=1)
    forward, params, pairs = _torch_copy(spec)
    trained, history = fit_network(spec, x, np.array(LABELS, dtype=object)[y], epochs=1, batch_size=len(y),
                                   optimizer="sgd", momentum=0.0, learning_rate=1.0, lr_schedule=None,
                                   random_state=0)
    loss = nn.functional.cross_entropy(forward(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= p.grad
    assert history["loss"][0] == pytest.approx(loss.item(), rel=1e-5)
    after = {layer.name: layer for layer in layers_of(trained)}
    for name, module in pairs:
        ours = _param(after[name], name)
        np.testing.assert_allclose(ours[0], module.weight.detach().numpy(), atol=2e-5, err_msg=name)
        np.testing.assert_allclose(ours[1], module.bias.detach().numpy(), atol=2e-5, err_msg=name)
    for i in (1, 2, 3):
        bn = dict(pairs)[f"bn{i}"]
        np.testing.assert_allclose(after[f"bn{i}"].buffers["mean"], bn.running_mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(after[f"bn{i}"].buffers["variance"], bn.running_var.numpy(), rtol=1e-4)


def test_adam_cosine_epochs_follow_pytorch():
    x, y = _data()
    epochs, batch = 2, 16
    spec = build_network(LABELS, seed=5, learning_rate=3e-3, batch_size=batch, epochs=epochs)
    forward, params, _ = _torch_copy(spec)
    _, history = fit_network(spec, x, np.array(LABELS, dtype=object)[y], epochs=epochs, batch_size=batch,
                             learning_rate=3e-3, lr_schedule="cosine", random_state=7)
    opt = torch.optim.Adam(params, lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rng = np.random.default_rng(7)  # fit_network's shuffling stream
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for _ in range(epochs):
        order, total = rng.permutation(len(y)), 0.0
        for start in range(0, len(y), batch):
            idx = torch.from_numpy(order[start:start + batch])
            opt.zero_grad()
            loss = nn.functional.cross_entropy(forward(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / len(y))
    np.testing.assert_allclose(history["loss"], losses, rtol=2e-3)
