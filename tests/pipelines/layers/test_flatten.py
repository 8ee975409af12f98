import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of


@pytest.mark.parametrize("mode", [0, 1])
def test_flatten_orders(mode):
    nb = builder((2, 3, 4))
    nb.add_flatten("fl", mode=mode, input_name="x", output_name="y")
    x = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    y, _ = forward(nb, {"x": x})
    expected = x.reshape(2, -1) if mode == 0 else x.transpose(0, 2, 3, 1).reshape(2, -1)
    assert y.shape == (2, 1, 24, 1, 1)
    np.testing.assert_array_equal(y.reshape(2, 24), expected)


@pytest.mark.parametrize("mode", [0, 1])
def test_flatten_gradients(mode):
    nb = builder((2, 3, 4))
    nb.add_flatten("fl", mode=mode, input_name="x", output_name="y")
    layer = model_of(nb).layers[0]
    check_gradients(layer, [blob(np.random.default_rng(0).standard_normal((2, 2, 3, 4)), False)], eps=1e-2)
