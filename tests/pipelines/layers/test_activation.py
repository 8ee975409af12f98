import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of

C = 3
ALPHA = np.array([0.1, 0.5, 2.0])
BETA = np.array([1.5, 0.5, 3.0])


def _ch(v):
    return v.reshape(1, C, 1, 1)


# coremltools name, params, NumPy reference from Core ML's definition (float64)
CASES = {
    "LINEAR": ((2.0, -0.5), lambda x: 2.0 * x - 0.5),
    "RELU": (None, lambda x: np.maximum(x, 0)),
    "LEAKYRELU": ((0.2,), lambda x: np.where(x >= 0, x, 0.2 * x)),
    "THRESHOLDEDRELU": (0.4, lambda x: np.where(x > 0.4, x, 0)),
    "PRELU": (ALPHA, lambda x: np.where(x >= 0, x, _ch(ALPHA) * x)),
    "TANH": (None, np.tanh),
    "SCALED_TANH": ((1.5, 0.7), lambda x: 1.5 * np.tanh(0.7 * x)),
    "SIGMOID": (None, lambda x: 1 / (1 + np.exp(-x))),
    "SIGMOID_HARD": ((0.3, 0.4), lambda x: np.minimum(np.maximum(0.3 * x + 0.4, 0), 1)),
    "ELU": (0.8, lambda x: np.where(x > 0, x, 0.8 * (np.exp(x) - 1))),
    "SOFTSIGN": (None, lambda x: x / (1 + np.abs(x))),
    "SOFTPLUS": (None, lambda x: np.log1p(np.exp(x))),
    "PARAMETRICSOFTPLUS": ((ALPHA, BETA), lambda x: _ch(ALPHA) * np.log1p(np.exp(_ch(BETA) * x))),
}


def _net(name, exact=False):
    params, _ = CASES[name]
    nb = builder((C, 4, 5), exact=exact)
    nb.add_activation("act", name, input_name="x", output_name="y", params=params)
    return nb


def _x(seed=0):
    # keep away from the kinks (0, thresholds) so finite differences are meaningful
    x = np.random.default_rng(seed).uniform(-3, 3, size=(2, C, 4, 5))
    for kink in (0.0, 0.4, -0.4 / 0.3, 0.6 / 0.3):
        x = np.where(np.abs(x - kink) < 0.05, x + 0.1, x)
    return x.astype(np.float32)


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_matches_definition(name, exact):
    x = _x()
    y, _ = forward(_net(name, exact), {"x": x})
    expected = CASES[name][1](x.astype(np.float64))
    np.testing.assert_allclose(y if exact else y[:, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_gradients_finite_differences(name):
    layer = model_of(_net(name)).layers[0]
    check_gradients(layer, [blob(_x(1), False)], eps=1e-3, rtol=1e-2)


def test_softplus_is_stable_for_large_inputs():
    x = np.array([[-100.0, 0.0, 100.0]], np.float32).reshape(1, 3, 1, 1)
    y, _ = forward(_wide("SOFTPLUS"), {"x": x})
    np.testing.assert_allclose(y.reshape(3), [0.0, np.log(2.0), 100.0], rtol=1e-6, atol=1e-30)


def _wide(name):
    nb = builder((3, 1, 1))
    nb.add_activation("act", name, input_name="x", output_name="y")
    return nb
