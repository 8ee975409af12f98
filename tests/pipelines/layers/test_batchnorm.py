import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of

torch = pytest.importorskip("torch")


def _net(c=3, compute=False, instance=False, exact=False, seed=0):
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    nb = builder((c, 4, 5), exact=exact)
    nb.add_batchnorm("bn", c, gamma, beta, mean=mean, variance=var, input_name="x", output_name="y",
                     epsilon=1e-3)
    params = nb.spec.neuralNetwork.layers[0].batchnorm
    params.computeMeanVar, params.instanceNormalization = compute, instance
    return nb, gamma, beta, mean, var


@pytest.mark.parametrize("exact", [False, True])
def test_batchnorm_inference_uses_stored_statistics(exact):
    nb, gamma, beta, mean, var = _net(exact=exact)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    s = lambda v: v.reshape(1, 3, 1, 1)  # noqa: E731
    expected = s(gamma) * (x - s(mean)) / np.sqrt(s(var) + 1e-3) + s(beta)
    np.testing.assert_allclose(y if exact else y[:, 0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("instance", [False, True])
def test_batchnorm_compute_mean_var(instance):
    nb, gamma, beta, _, _ = _net(compute=True, instance=instance)
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    axes = (2, 3) if instance else (0, 2, 3)
    x64 = x.astype(np.float64)
    m, v = x64.mean(axis=axes, keepdims=True), x64.var(axis=axes, keepdims=True)
    expected = gamma.reshape(1, 3, 1, 1) * (x64 - m) / np.sqrt(v + 1e-3) + beta.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_training_mode_gradients_finite_differences():
    layer = model_of(_net()[0]).layers[0]
    layer.batch_statistics = True
    layer.momentum = 0.0  # keep the stored statistics fixed across the probes
    x = blob(np.random.default_rng(3).standard_normal((4, 3, 4, 5)), False)
    check_gradients(layer, [x], params=("gamma", "beta"), eps=1e-2, rtol=2e-2)


def test_batchnorm_training_mode_matches_torch():
    nb, gamma, beta, mean, var = _net()
    layer = model_of(nb).layers[0]
    layer.batch_statistics = True
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 4, 5)).astype(np.float32) * 2 + 1
    g = rng.standard_normal(x.shape).astype(np.float32)
    (y,), cache = layer.forward_train(blob(x, False))
    (gx,), grads = layer.backward(cache, g.reshape(6, 1, 3, 4, 5))
    bn = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
    tx = torch.tensor(x, requires_grad=True)
    ty = bn(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y[:, 0], ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx[:, 0], tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["gamma"], bn.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["beta"], bn.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.buffers["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.buffers["variance"], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_batchnorm_frozen_backward_is_affine():
    nb, gamma, _, _, var = _net()
    layer = model_of(nb).layers[0]
    x = blob(np.random.default_rng(5).standard_normal((2, 3, 4, 5)), False)
    (y,), cache = layer.forward_train(x)
    (gx,), grads = layer.backward(cache, np.ones_like(y))
    assert grads == {}
    np.testing.assert_allclose(gx[0, 0, :, 0, 0], gamma / np.sqrt(var + 1e-3), rtol=1e-5)
