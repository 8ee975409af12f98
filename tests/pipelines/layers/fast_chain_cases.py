"""Cases for ``test_fast_paths.py``: the fused inference chains (``fast_chains.py``), the
elementwise overrides (``fast_arith.py``) and the growing concatenation (``fast_concat.py``)
compute what the reference layers compute.

Each chain case builds the reference layers, fuses them with ``network.fuse_layers`` and
compares both on random inputs in the two memory layouts a layer meets (C-contiguous
``[N, C, H, W]`` and a convolution's channel-last buffer); a kept middle blob must stop the
fusion. ``test_fast_paths.py`` runs them as the cases of their override keys.
"""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines.layers import LAYERS, OVERRIDES, LayerContext, network
from pippin.spec._proto import NeuralNetwork_pb2

RNG = np.random.default_rng(13)
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _weights(message, values):
    message.floatValue.extend(np.asarray(values, np.float32).ravel().tolist())


def _proto(kind, name="l", inputs=("x",), outputs=("y",)):
    spec = NeuralNetwork_pb2.NeuralNetworkLayer(name=name, input=list(inputs), output=list(outputs))
    getattr(spec, kind).SetInParent()
    return spec, getattr(spec, kind)


def _batchnorm(c=4, name="bn", inputs=("x",), outputs=("y",)):
    spec, p = _proto("batchnorm", name, inputs, outputs)
    p.channels, p.epsilon = c, 1e-5
    for field, values in (("gamma", RNG.standard_normal(c)), ("beta", RNG.standard_normal(c)),
                          ("mean", RNG.standard_normal(c)), ("variance", RNG.uniform(0.5, 2.0, c))):
        _weights(getattr(p, field), values)
    return spec


def _activation(which="ReLU", name="act", inputs=("x",), outputs=("y",)):
    spec, p = _proto("activation", name, inputs, outputs)
    getattr(p, which).SetInParent()
    if which == "leakyReLU":
        p.leakyReLU.alpha = 0.1
    return spec


def _inputs(shape):
    """The same random ``[N, C, H, W]`` values, C-contiguous and as a channel-last buffer."""
    x = RNG.standard_normal(shape).astype(np.float32)
    return {"contiguous": x, "channel_last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)}


def _context():
    return LayerContext(where="m.mlmodel: neuralNetwork.layers[0](l)", exact_shapes=False, spec_version=4)


def _case_chain(specs, keep, shapes, fused_kind, *, unfused_keeps=()):
    reference = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4, fast=False)
    fused = network.fuse_layers(reference, keep)
    assert [layer.kind for layer in fused] == [fused_kind]
    for extra in unfused_keeps:  # the middle blob kept: nothing fused
        assert network.fuse_layers(reference, set(keep) | {extra}) == reference
    for shape in shapes:
        for x in _inputs(shape).values():
            got, want = network.run_layers(fused, {"x": x}), network.run_layers(reference, {"x": x})
            for name in keep:
                assert got[name].shape == want[name].shape
                np.testing.assert_allclose(got[name], want[name], **TOL)


def _case_swish():
    for order in (("x", "s"), ("s", "x")):
        mul, _ = _proto("multiply", "mul", order, ("y",))
        specs = [_activation("sigmoid", name="sig", inputs=("x",), outputs=("s",)), mul]
        _case_chain(specs, {"y"}, [(3, 4, 6, 7), (2, 5, 1, 9)], "fusedSwish", unfused_keeps=("s",))
    for x in _inputs((3, 4, 6, 7)).values():
        fused = network.fuse_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4,
                                                         fast=False), {"y"})
        xs = x * 40  # saturated sigmoid, large products
        got = network.run_layers(fused, {"x": xs})["y"]
        want = xs * (0.5 * (np.tanh(0.5 * xs.astype(np.float64)) + 1))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
        assert got.strides == xs.strides  # in the input's memory order
        strided = xs[:, :, ::2]  # not dense: a contiguous copy first
        np.testing.assert_allclose(network.run_layers(fused, {"x": strided})["y"],
                                   want[:, :, ::2], rtol=1e-6, atol=1e-5)


def _case_batchnorm_relu():
    specs = [_batchnorm(4, name="bn", outputs=("b",)), _activation("ReLU", name="relu", inputs=("b",), outputs=("y",))]
    _case_chain(specs, {"y"}, [(3, 4, 6, 7), (2, 4, 1, 5)], "fusedBatchnormRelu", unfused_keeps=("b",))


def _case_mvn():
    for across, variance, shape in ((True, True, (4, 5, 6, 7)), (False, True, (3, 4, 6, 5)),
                                    (True, False, (2, 3, 4, 5)), (True, True, (6, 128, 1, 1)),
                                    (False, False, (2, 2, 3, 4, 5))):
        spec, p = _proto("mvn")
        p.acrossChannels, p.normalizeVariance, p.epsilon = across, variance, 1e-5
        ref, fast = LAYERS["mvn"](spec, _context()), OVERRIDES[("mvn",)](spec, _context())
        x = (RNG.standard_normal(shape) * 3 + 2).astype(np.float32)
        for layout in (x, np.asfortranarray(x)):
            got, want = fast(layout), ref(layout)
            assert got[0].shape == want[0].shape and got[0].dtype == np.float32
            np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)


def _mvn_scale_specs(across, variance, shape_scale, has_bias):
    mvn, p = _proto("mvn", "mvn", ("x",), ("m",))
    p.acrossChannels, p.normalizeVariance, p.epsilon = across, variance, 1e-5
    scale, q = _proto("scale", "scale", ("m",), ("y",))
    q.shapeScale.extend(shape_scale)
    _weights(q.scale, RNG.standard_normal(int(np.prod(shape_scale))))
    if has_bias:
        q.hasBias = True
        q.shapeBias.extend(shape_scale)
        _weights(q.bias, RNG.standard_normal(int(np.prod(shape_scale))))
    return [mvn, scale]


def _case_mvn_scale():
    for across, variance, shape_scale, has_bias, shapes in (
            (False, True, (1, 1, 7), True, [(3, 5, 1, 7), (8, 2, 1, 7)]),  # coremltools' layer norm
            (True, True, (4, 6, 7), True, [(2, 4, 6, 7)]), (False, False, (4,), False, [(3, 4, 6, 5)]),
            (True, True, (1,), True, [(2, 3, 4, 5)])):
        specs = _mvn_scale_specs(across, variance, shape_scale, has_bias)
        _case_chain(specs, {"y"}, shapes, "fusedMvnScale", unfused_keeps=("m",))
    specs = _mvn_scale_specs(False, True, (1, 1, 7), True)  # a scale that does not broadcast: the layers' error
    fused = network.fuse_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4), {"y"})
    with pytest.raises(Exception) as fused_error:
        network.run_layers(fused, {"x": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)})
    with pytest.raises(Exception) as plain_error:
        network.run_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4, fast=False),
                           {"x": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)})
    assert type(fused_error.value) is type(plain_error.value)


def _inner_product(c_in, c_out, *, bias=True, inputs=("x",), outputs=("d",)):
    spec, p = _proto("innerProduct", "fc", inputs, outputs)
    p.inputChannels, p.outputChannels, p.hasBias = c_in, c_out, bias
    _weights(p.weights, RNG.standard_normal(c_in * c_out))
    if bias:
        _weights(p.bias, RNG.standard_normal(c_out))
    return spec


def _case_inner_product_relu():
    """innerProduct -> ReLU equals the reference layers (NaN kept where the reference's maximum keeps it)."""
    for c_in, c_out, bias, shape in ((6, 40, True, (4, 6)), (6, 5, False, (3, 2, 6)), (8, 33, True, (2, 1, 8, 1, 1)),
                                     (512, 512, True, (32, 1, 512))):  # the zoo MLP's layer
        specs = [_inner_product(c_in, c_out, bias=bias), _activation("ReLU", "relu", ("d",), ("y",))]
        reference = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4, fast=False)
        fast = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4)
        fused = network.fuse_layers(fast, {"y"})
        assert [layer.kind for layer in fused] == ["fusedInnerProductRelu"]
        assert network.fuse_layers(fast, {"y", "d"}) == fast  # the product kept: nothing fused
        x = RNG.standard_normal(shape).astype(np.float32)
        if shape == (3, 2, 6):
            x[:, 0, 0] = np.nan  # a NaN row per example: NaN after the ReLU, as the reference's maximum gives
        for layout in (x, np.asfortranarray(x)):
            with np.errstate(invalid="ignore"):
                got = network.run_layers(fused, {"x": layout})["y"]
                want = network.run_layers(reference, {"x": layout})["y"]
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, **TOL)  # NaN where the reference has NaN
    specs = [_inner_product(6, 5), _activation("sigmoid", "sig", ("d",), ("y",))]  # not a ReLU: not fused
    fast = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4)
    assert network.fuse_layers(fast, {"y"}) == fast
    specs = [_inner_product(6, 5), _activation("ReLU", "relu", ("d",), ("y",))]
    fused = network.fuse_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4), {"y"})
    with pytest.raises(Exception, match="inputChannels=6"):  # a wrong width is named by the product
        network.run_layers(fused, {"x": np.zeros((2, 4), np.float32)})


def _multiply(inputs=("x", "s")):
    spec, p = _proto("multiply", "mul", inputs, ("y",))
    return spec


def _case_multiply():
    """Squeeze-excitation's ``x [N, 1, C, H, W] * s [N, 1, C, 1, 1]`` (either order) bit-equal to the reference
    and in the channel-last order; other shapes and layouts through the reference."""
    ref, fast = LAYERS["multiply"](_multiply(), _context()), OVERRIDES[("multiply",)](_multiply(), _context())
    for shape in ((3, 1, 5, 6, 7), (2, 1, 40, 3, 1), (4, 6, 2, 5)):
        s = RNG.standard_normal(shape[:-2] + (1, 1)).astype(np.float32)
        for layout, x in _inputs((int(np.prod(shape[:-3])),) + shape[-3:]).items():
            x = x.reshape(shape)
            for args in ((x, s), (s, x)):
                got, want = fast(*args)[0], ref(*args)[0]
                assert got.shape == want.shape and got.dtype == np.float32
                np.testing.assert_array_equal(got, want)
                if layout == "channel_last":
                    assert np.moveaxis(got.reshape((-1,) + shape[-3:]), 1, -1).flags.c_contiguous
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    s_one = RNG.standard_normal((1, 3, 1, 1)).astype(np.float32)
    for args in ((x, s_one), (x,)):  # s broadcast over the batch; one input times alpha
        spec = _multiply(tuple("xs"[:len(args)]))
        np.testing.assert_array_equal(OVERRIDES[("multiply",)](spec, _context())(*args)[0],
                                      LAYERS["multiply"](spec, _context())(*args)[0])


def _concat(inputs, output):
    spec, _ = _proto("concat", f"cat_{output}", inputs, (output,))
    return spec


def _dense_block(n_layers):
    """``c_k = concat(c_{k-1}, new_k)`` and a batchnorm -> ReLU reading each ``c_k`` (DenseNet's pattern), plus a
    branch ``z = concat(c_1, new_1)`` after ``c_2`` extended ``c_1`` (must not overwrite ``c_2``'s channels)."""
    specs, prev = [], "x"
    for k in range(1, n_layers + 1):
        specs += [_concat((prev, f"new{k}"), f"c{k}"),
                  _batchnorm(4 + 2 * k, name=f"bn{k}", inputs=(f"c{k}",), outputs=(f"b{k}",)),
                  _activation("ReLU", f"relu{k}", (f"b{k}",), (f"r{k}",))]
        prev = f"c{k}"
    return specs + [_concat(("c1", "new1"), "z")]


def _case_concat():
    """A dense block of concatenations growing one buffer equals plain concatenation, run after run (the
    second run extends in place with the learned capacity), the earlier blobs untouched; other layouts,
    ranks and wrong shapes as the reference."""
    from pippin.pipelines.layers import fast_concat

    specs = _dense_block(4)
    names = [f"c{k}" for k in range(1, 5)] + [f"r{k}" for k in range(1, 5)] + ["z"]
    reference = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4, fast=False)
    fast = network.fuse_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4), set(names))
    assert sum(layer.kind == "fusedBatchnormRelu" for layer in fast) == 4
    for run, shape in enumerate(((3, 4, 5, 6), (3, 4, 5, 6), (2, 4, 3, 7), (3, 4, 5, 6))):
        feeds = {"x": _inputs(shape)["channel_last"]}
        for k in range(1, 5):
            feeds[f"new{k}"] = _inputs(shape[:1] + (2,) + shape[2:])["channel_last"]
        got = network.run_layers(fast, dict(feeds))
        want = network.run_layers(reference, dict(feeds))
        for name in names:
            assert got[name].shape == want[name].shape and got[name].dtype == np.float32
            np.testing.assert_allclose(got[name], want[name], **TOL)
        for k in range(1, 5):  # concatenations exactly equal, each a view of the block's buffer
            np.testing.assert_array_equal(got[f"c{k}"], want[f"c{k}"])
        if run:
            assert fast_concat.rows(got["c4"]) is not None and got["c4"].base is not None
            assert np.shares_memory(got["c1"], got["c4"])  # grown in place
            assert not np.shares_memory(got["z"], got["c2"])  # the branch got its own buffer
    x = _inputs((2, 3, 4, 5))
    for layout in ("contiguous", "channel_last"):  # NCHW stays NCHW; rank 5
        args = (x[layout], x[layout][:, :2])
        spec = _concat(("a", "b"), "y")
        got, want = OVERRIDES[("concat",)](spec, _context())(*args)[0], LAYERS["concat"](spec, _context())(*args)[0]
        np.testing.assert_array_equal(got, want)
        if layout == "contiguous":
            assert got.flags.c_contiguous
        five = tuple(a[:, None] for a in args)
        np.testing.assert_array_equal(OVERRIDES[("concat",)](spec, _context())(*five)[0],
                                      LAYERS["concat"](spec, _context())(*five)[0])
    bad = (x["channel_last"], x["channel_last"][:, :, :3])
    errors = []
    for layer in (OVERRIDES[("concat",)](_concat(("a", "b"), "y"), _context()),
                  LAYERS["concat"](_concat(("a", "b"), "y"), _context())):
        with pytest.raises(Exception) as caught:
            layer(*bad)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]


def _case_add_relu():
    """add -> ReLU (ResNet's block end) equals the two reference layers bit for bit (NaN kept), in place of the
    pair only when the sum is private."""
    add, _ = _proto("add", "add", ("x", "s"), ("t",))
    specs = [add, _activation("ReLU", "relu", ("t",), ("y",))]
    reference = network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4, fast=False)
    fused = network.fuse_layers(network.build_layers(specs, prefix="m", exact_shapes=False, spec_version=4), {"y"})
    assert [layer.kind for layer in fused] == ["fusedAddRelu"]
    assert [layer.kind for layer in network.fuse_layers(reference, {"y", "t"})] == ["add", "activation"]
    for shape in ((3, 4, 5, 6), (2, 3, 4, 5)):
        for layout, x in _inputs(shape).items():
            s_in = _inputs(shape)[layout]
            x[0, 0] = np.nan
            got = network.run_layers(fused, {"x": x, "s": s_in})["y"]
            want = network.run_layers(reference, {"x": x, "s": s_in})["y"]
            np.testing.assert_array_equal(got, want)
            assert got.strides == want.strides
        x = RNG.standard_normal((shape[0], 1) + shape[1:]).astype(np.float32)  # rank 5, per-channel operand
        s_in = RNG.standard_normal(x.shape[:-2] + (1, 1)).astype(np.float32)
        np.testing.assert_array_equal(network.run_layers(fused, {"x": x, "s": s_in})["y"],
                                      network.run_layers(reference, {"x": x, "s": s_in})["y"])


CHAIN_CASES = {
    ("activation", "multiply"): _case_swish,
    ("batchnorm", "activation"): _case_batchnorm_relu,
    ("mvn",): _case_mvn,
    ("mvn", "scale"): _case_mvn_scale,
    ("innerProduct", "activation"): _case_inner_product_relu,
    ("multiply",): _case_multiply,
    ("concat",): _case_concat,
    ("add", "activation"): _case_add_relu,
}
