"""Cases for ``test_fast_paths.py`` and ``test_fast_loop.py``: ``FastLoop`` (``fast_loop.py``)
computes what the reference ``loop`` computes.

``gru_loop_model`` builds, with coremltools' builder, the while loop coremltools writes for
``torch.nn.GRU`` (counter, input step gathered and squeezed, six inner products, gate
sigmoids, tanh, ``(1 - z) * n + z * h``, scatter into a state buffer, copies back), with
knobs for the variants the recognizer must take (scatter mode, inputs of commutative
layers swapped, counter start, limit beyond the buffer) and ones it must refuse (another
activation, an extra layer in the body).
"""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import NeuralNetworkBuilder, load, nd_builder

from pippin.pipelines.layers import OVERRIDES
from pippin.pipelines.runtime.neural_network import NeuralNetworkModel
from pippin.spec import loads

RNG = np.random.default_rng(8)
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def gru_loop_model(t=7, b=2, i=5, h=6, *, mode="ADD", swap=False, start=0, limit=None, candidate="TANH",
                   extra=False):
    """Inputs ``x`` ``(t, b, i)`` and ``buf`` ``(t + 1, b, h)`` (the state buffer, step 0 the initial
    state); outputs ``hbuf`` (the buffer after the loop), ``count`` (the counter) and ``tail``
    (a body temporary of the last iteration). Returns ``(spec, weights)``."""
    bld = nd_builder({"x": (t, b, i), "buf": (t + 1, b, h)}, outputs=("hbuf", "count", "tail"))
    bld.add_load_constant_nd("c0", "count0", np.array([float(start)], np.float32), shape=(1,))
    bld.add_copy("init_count", "count0", "count")
    bld.add_copy("init_buf", "buf", "hbuf")
    loop = bld.add_loop("loop", condition="go", condition_network=None, body_network=None)
    cond = NeuralNetworkBuilder(nn_spec=loop.loop.conditionNetwork, disable_rank5_shape_mapping=True)
    cond.add_load_constant_nd("limit", "lim", np.array([float(t if limit is None else limit)], np.float32),
                              shape=(1,))
    cond.add_less_than("lt", ["count", "lim"], "go")
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_gather("gx", ["x", "count"], "gx_out", axis=0)
    body.add_gather("gh", ["hbuf", "count"], "gh_out", axis=0)
    body.add_squeeze("sx", "gx_out", "xt", axes=[0])
    body.add_squeeze("sh", "gh_out", "ht", axes=[0])
    weights = {}

    def order(a, c):
        return [c, a] if swap else [a, c]

    for gate in ("r", "z", "n"):
        weights[gate] = (_w(h, i), _w(h), _w(h, h), _w(h))
        wx, bx, wh, bh = weights[gate]
        body.add_inner_product(f"x{gate}", wx, bx, i, h, True, "xt", f"px_{gate}")
        body.add_inner_product(f"h{gate}", wh, bh, h, h, True, "ht", f"ph_{gate}")
        if gate == "n":
            body.add_elementwise("rn", order("r", "ph_n"), "rph_n", mode="MULTIPLY")
            body.add_elementwise("an", order("px_n", "rph_n"), "a_n", mode="ADD")
            body.add_activation("act_n", candidate, "a_n", "n")
        else:
            body.add_elementwise(f"a{gate}", order(f"px_{gate}", f"ph_{gate}"), f"a_{gate}", mode="ADD")
            body.add_activation(f"act_{gate}", "SIGMOID", f"a_{gate}", gate)
    body.add_load_constant_nd("one", "one", np.array([1.0], np.float32), shape=(1,))
    body.add_activation("neg", "LINEAR", "z", "minus_z", params=[-1.0, 0.0])
    body.add_elementwise("sub", order("minus_z", "one"), "one_minus_z", mode="ADD")
    body.add_elementwise("keep", order("one_minus_z", "n"), "new_part", mode="MULTIPLY")
    body.add_elementwise("old", order("z", "ht"), "old_part", mode="MULTIPLY")
    body.add_elementwise("mix", order("new_part", "old_part"), "tail", mode="ADD")
    new_h = "tail"
    if extra:  # one more layer in the body: not the recognized cell
        body.add_activation("extra", "LINEAR", "tail", "tail2", params=[1.0, 0.0])
        new_h = "tail2"
    body.add_elementwise("inc", ["count"], "count_next", mode="ADD", alpha=1.0)
    body.add_expand_dims("ed", new_h, "update", axes=[0])
    body.add_scatter("sc", ["hbuf", "count_next", "update"], "hbuf_next", axis=0, mode=mode)
    body.add_copy("set_count", "count_next", "count")
    body.add_copy("set_buf", "hbuf_next", "hbuf")
    return loads(bld.spec.SerializeToString()), weights


def torch_gru(x, buf, weights, start, steps, *, add):
    """PyTorch's GRU formula in float64, as the loop applies it to the buffer."""
    out = buf.astype(np.float64).copy()
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for s in range(start, start + steps):
        xt, ht = x[:, s].astype(np.float64), out[:, s]
        lin = {g: (xt @ w[0].T + w[1], ht @ w[2].T + w[3]) for g, w in weights.items()}
        r, z = sig(sum(lin["r"])), sig(sum(lin["z"]))
        new = (1 - z) * np.tanh(lin["n"][0] + r * lin["n"][1]) + z * ht
        out[:, s + 1] = new + out[:, s + 1] if add else new
    return out


def compare(spec, *, n=4, recognized=True, start=0, steps=None, weights=None, mode="ADD"):
    """Fast and reference models on random ``x`` and ``buf``: every blob equal to TOL."""
    t, b, i = (int(d) for d in spec.description.input[0].type.multiArrayType.shape)
    h = int(spec.description.input[1].type.multiArrayType.shape[-1])
    fast, reference = load(spec), NeuralNetworkModel(spec, fast=False)
    (loop,) = [layer for layer in fast.layers if layer.kind == "loop"]
    assert type(loop) is OVERRIDES[("loop",)]
    assert (loop.cell is not None) is recognized
    x = RNG.standard_normal((n, t, b, i)).astype(np.float32)
    x[0] *= 20  # saturated gates
    buf = RNG.standard_normal((n, t + 1, b, h)).astype(np.float32)
    feeds = {"x": x, "buf": buf}
    got = fast.run_layers(fast.to_blobs(feeds))
    want = reference.run_layers(reference.to_blobs(feeds))
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, **TOL, err_msg=name)
    if weights is not None:
        expected = torch_gru(x, buf, weights, start, t - start if steps is None else steps, add=mode == "ADD")
        np.testing.assert_allclose(got["hbuf"], expected, rtol=1e-4, atol=1e-5)
    return got


def case_loop():
    spec, weights = gru_loop_model()
    compare(spec, weights=weights)
    for kw in (dict(mode="UPDATE"), dict(swap=True), dict(start=2)):
        spec, weights = gru_loop_model(**kw)
        compare(spec, weights=weights, start=kw.get("start", 0), mode=kw.get("mode", "ADD"))
    for kw in (dict(candidate="RELU"), dict(extra=True)):  # not the cell: the plain loop
        compare(gru_loop_model(**kw)[0], recognized=False)
    spec = gru_loop_model(limit=12)[0]  # steps past the input: the reference loop names the error
    errors = []
    for model in (load(spec), NeuralNetworkModel(spec, fast=False)):
        feeds = {"x": np.zeros((2, 7, 2, 5), np.float32), "buf": np.zeros((2, 8, 2, 6), np.float32)}
        with pytest.raises(Exception) as caught:
            model.predict_batch(feeds)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1], errors
