import numpy as np

from train_helpers import builder, forward, model_of


def _net(sequence=False):
    nb = builder(None, inputs={"a": (2, 3, 4), "b": (3, 3, 4)})
    nb.add_elementwise("cat", input_names=["a", "b"], output_name="y", mode="CONCAT")
    if sequence:
        nb.spec.neuralNetwork.layers[0].concat.sequenceConcat = True
    return nb


def test_concat_along_channels():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    y, _ = forward(_net(), {"a": a, "b": b})
    np.testing.assert_array_equal(y[:, 0], np.concatenate([a, b], axis=1))


def test_concat_gradient_splits():
    layer = model_of(_net()).layers[0]
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 1, 2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 1, 3, 3, 4)).astype(np.float32)
    (y,), cache = layer.forward_train(a, b)
    g = rng.standard_normal(y.shape).astype(np.float32)
    (ga, gb), params = layer.backward(cache, g)
    assert params == {}
    np.testing.assert_array_equal(ga, g[:, :, :2])
    np.testing.assert_array_equal(gb, g[:, :, 2:])


def test_concat_mismatched_inputs_names_layer():
    layer = model_of(_net()).layers[0]
    import pytest
    with pytest.raises(Exception, match="cat"):
        layer.forward(np.ones((1, 1, 2, 3, 4), np.float32), np.ones((1, 1, 3, 2, 4), np.float32))
