import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("has_bias", [True, False])
def test_inner_product_matches_numpy(exact, has_bias):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    nb = builder((7,), exact=exact)
    nb.add_inner_product("fc", W=w, b=b if has_bias else None, input_channels=7, output_channels=5,
                         has_bias=has_bias, input_name="x", output_name="y")
    x = rng.standard_normal((4, 7)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    expected = x.astype(np.float64) @ w.T.astype(np.float64) + (b if has_bias else 0)
    np.testing.assert_allclose(y.reshape(4, 5), expected, rtol=1e-5, atol=1e-6)


def test_inner_product_float16_weights():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 4)).astype(np.float16).astype(np.float32)
    nb = builder((4,))
    nb.add_inner_product("fc", W=w, b=None, input_channels=4, output_channels=3, has_bias=False,
                         input_name="x", output_name="y")
    weights = nb.spec.neuralNetwork.layers[0].innerProduct.weights
    weights.ClearField("floatValue")
    weights.float16Value = w.astype("<f2").tobytes()
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    np.testing.assert_allclose(y.reshape(2, 3), x @ w.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exact", [False, True])
def test_inner_product_gradients(exact):
    rng = np.random.default_rng(2)
    nb = builder((6,), exact=exact)
    nb.add_inner_product("fc", W=rng.standard_normal((3, 6)).astype(np.float32),
                         b=rng.standard_normal(3).astype(np.float32), input_channels=6, output_channels=3,
                         has_bias=True, input_name="x", output_name="y")
    layer = model_of(nb).layers[0]
    x = blob(rng.standard_normal((5, 6)), exact)
    check_gradients(layer, [x], params=("weights", "bias"))


def test_inner_product_gradients_match_torch():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nb = builder((6,))
    nb.add_inner_product("fc", W=w, b=b, input_channels=6, output_channels=4, has_bias=True,
                         input_name="x", output_name="y")
    layer = model_of(nb).layers[0]
    x = rng.standard_normal((8, 6)).astype(np.float32)
    g = rng.standard_normal((8, 4)).astype(np.float32)
    (y,), cache = layer.forward_train(blob(x, False))
    (gx,), grads = layer.backward(cache, g.reshape(8, 1, 4, 1, 1))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y.reshape(8, 4), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx.reshape(8, 6), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["weights"], tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["bias"], tb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_inner_product_wrong_input_size_names_layer():
    nb = builder((6,))
    nb.add_inner_product("fc", W=np.ones((3, 6), np.float32), b=None, input_channels=6, output_channels=3,
                         has_bias=False, input_name="x", output_name="y")
    layer = model_of(nb).layers[0]
    with pytest.raises(Exception, match="fc"):
        layer.forward(np.ones((2, 1, 5, 1, 1), np.float32))
