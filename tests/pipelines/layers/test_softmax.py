import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of


@pytest.mark.parametrize("exact,shape", [(False, (5,)), (False, (4, 2, 3)), (True, (5,)), (True, (4, 2, 3))])
def test_softmax_along_channels(exact, shape):
    nb = builder(shape, exact=exact)
    nb.add_softmax("sm", input_name="x", output_name="y")
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32) * 5
    y, _ = forward(nb, {"x": x})
    axis = 1
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    got = y if exact else (y[:, 0] if len(shape) == 3 else y.reshape(x.shape))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_softmax_large_inputs_do_not_overflow():
    nb = builder((3,))
    nb.add_softmax("sm", input_name="x", output_name="y")
    y, _ = forward(nb, {"x": np.array([[1000.0, 1000.0, -1000.0]], np.float32)})
    np.testing.assert_allclose(y.reshape(3), [0.5, 0.5, 0.0], atol=1e-7)


def test_softmax_gradients_finite_differences():
    nb = builder((4, 2, 3))
    nb.add_softmax("sm", input_name="x", output_name="y")
    layer = model_of(nb).layers[0]
    check_gradients(layer, [blob(np.random.default_rng(1).standard_normal((2, 4, 2, 3)), False)], eps=1e-3)
