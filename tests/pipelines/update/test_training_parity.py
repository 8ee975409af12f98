"""N mini-batch steps in pippin equal the same steps in PyTorch (same weights, data order, hyper-parameters)."""

import numpy as np
import pytest

import pippin.pipelines as pp
from pippin.pipelines.update import update_network

from torch_nets import LABELS, conv_spec, dense_spec, torch, torch_conv, torch_dense, torch_train, weights_of


def _data(n, shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(np.float32), rng.integers(0, 3, n)


def _compare(new_spec, names, torch_params):
    ours = [a for name in names for a in weights_of(new_spec, name)]
    for a, b in zip(ours, torch_params):
        np.testing.assert_allclose(a, b.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer,opt", [("sgd", dict(learning_rate=0.1, momentum=0.9)),
                                           ("adam", dict(learning_rate=0.01, beta1=0.8, beta2=0.99, eps=1e-6))])
def test_dense_classifier_steps_match_torch(optimizer, opt):
    spec = dense_spec(optimizer, **opt)
    x, y = _data(20, (4,), 0)
    model = pp.load(spec)
    new = update_network(model, {"x": x, "classLabel": np.array(LABELS, dtype=object)[y]})
    params, forward = torch_dense(spec)
    topt = dict(lr=opt["learning_rate"])
    if optimizer == "sgd":
        topt["momentum"] = opt["momentum"]
        expected = torch_train(params, forward, x, y, optimizer=torch.optim.SGD, batch_size=5, epochs=2, **topt)
    else:
        topt.update(betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
        expected = torch_train(params, forward, x, y, optimizer=torch.optim.Adam, batch_size=5, epochs=2, **topt)
    _compare(new.spec, ["fc1", "fc2"], expected)


@pytest.mark.parametrize("optimizer,opt", [("sgd", dict(learning_rate=0.05, momentum=0.5)),
                                           ("adam", dict(learning_rate=0.005))])
def test_conv_net_steps_match_torch(optimizer, opt):
    spec = conv_spec(optimizer, **opt)
    x, y = _data(12, (2, 8, 8), 1)
    new = update_network(pp.load(spec), {"x": x, "classLabel": y})  # class indices work too
    params, forward = torch_conv(spec)
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    topt = {"lr": opt["learning_rate"]}
    if optimizer == "sgd":
        topt["momentum"] = opt["momentum"]
    expected = torch_train(params, forward, x, y, optimizer=cls, batch_size=4, epochs=2, **topt)
    _compare(new.spec, ["conv", "fc"], expected)


def test_shuffled_update_uses_the_seeded_order():
    spec = dense_spec("sgd", shuffle=True, learning_rate=0.1, momentum=0.0, epochs=1)
    x, y = _data(10, (4,), 2)
    new = update_network(pp.load(spec), {"x": x, "classLabel": np.array(LABELS, dtype=object)[y]})
    order = np.random.default_rng(11).permutation(10)
    params, forward = torch_dense(spec)
    expected = torch_train(params, forward, x, y, optimizer=torch.optim.SGD, batch_size=5, epochs=1,
                           order=order, lr=0.1)
    _compare(new.spec, ["fc1", "fc2"], expected)


def test_regressor_mean_squared_error_matches_torch():
    from pippin.pipelines.build.network import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["out"], mode="regressor", seed=9)
    b.add_dense("fc1", "x", "h", n_out=6)
    b.add_activation("act", "h", "ha", kind="tanh")
    b.add_dense("fc2", "ha", "out", n_out=2)
    b.make_updatable(["fc1", "fc2"])
    b.set_loss("mean_squared_error")
    b.set_optimizer("sgd", learning_rate=0.05, momentum=0.9, batch_size=4)
    b.set_epochs(3)
    spec = b.spec
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    t = rng.standard_normal((12, 2)).astype(np.float32)
    new = update_network(pp.load(spec), {"x": x, "out_true": t})

    def w(name):
        layer = next(layer for layer in spec.neuralNetworkRegressor.layers if layer.name == name)
        return np.array(layer.innerProduct.weights.floatValue, np.float32), np.array(
            layer.innerProduct.bias.floatValue, np.float32)

    (w1, b1), (w2, b2) = w("fc1"), w("fc2")
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in (w1.reshape(6, 4), b1, w2.reshape(2, 6), b2)]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    for _ in range(3):
        for s in range(0, 12, 4):
            opt.zero_grad()
            h = torch.tanh(torch.nn.functional.linear(torch.from_numpy(x[s:s + 4]), params[0], params[1]))
            out = torch.nn.functional.linear(h, params[2], params[3])
            torch.nn.functional.mse_loss(out, torch.from_numpy(t[s:s + 4])).backward()
            opt.step()
    got = {layer.name: layer for layer in new.spec.neuralNetworkRegressor.layers}
    for name, (wi, bi) in (("fc1", (0, 1)), ("fc2", (2, 3))):
        np.testing.assert_allclose(got[name].innerProduct.weights.floatValue, params[wi].detach().numpy().ravel(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[name].innerProduct.bias.floatValue, params[bi].detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
