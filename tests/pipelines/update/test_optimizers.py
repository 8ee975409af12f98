import numpy as np
import pytest

from pippin.pipelines.update import SGD, Adam

torch = pytest.importorskip("torch")


def _run(ours, make_torch, n_steps=6, seed=0):
    rng = np.random.default_rng(seed)
    weights = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in weights.items()} for _ in range(n_steps)]
    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in weights.items()}
    opt = make_torch(list(params.values()))
    state = None
    before = {k: v.copy() for k, v in weights.items()}
    for g in grads:
        weights, state = ours.step(weights, g, state)
        for k, p in params.items():
            p.grad = torch.from_numpy(g[k].copy())
        opt.step()
    for k, p in params.items():
        np.testing.assert_allclose(weights[k], p.detach().numpy(), rtol=1e-5, atol=1e-7)
        assert not np.allclose(weights[k], before[k])
    return weights


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_sgd_matches_torch(momentum, wd):
    _run(SGD(learning_rate=0.05, momentum=momentum, weight_decay=wd),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum, weight_decay=wd))


@pytest.mark.parametrize("beta1,beta2,eps,wd", [(0.9, 0.999, 1e-8, 0.0), (0.8, 0.99, 1e-4, 0.01)])
def test_adam_matches_torch(beta1, beta2, eps, wd):
    _run(Adam(learning_rate=0.01, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd),
         lambda p: torch.optim.Adam(p, lr=0.01, betas=(beta1, beta2), eps=eps, weight_decay=wd))


def test_step_does_not_mutate_inputs():
    w = {"w": np.ones(3, np.float32)}
    g = {"w": np.ones(3, np.float32)}
    new, state = Adam(learning_rate=0.1).step(w, g, None)
    new2, _ = Adam(learning_rate=0.1).step(new, g, state)
    np.testing.assert_array_equal(w["w"], np.ones(3))
    np.testing.assert_array_equal(g["w"], np.ones(3))
    assert not np.allclose(new["w"], new2["w"])
