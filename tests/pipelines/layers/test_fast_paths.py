"""Every registered fast path (``OVERRIDES``) computes what its reference classes compute.

One case per override key, each run on random inputs in both memory layouts a layer
meets (C-contiguous ``[N, C, H, W]`` and the channel-last buffer a convolution writes,
which is what the numba kernels take). Single-kind overrides are compared with their
reference class on ``forward``, ``forward_train`` and ``backward``; chain overrides are
compared with the reference layers run one after the other.
"""

from __future__ import annotations

import numpy as np
import pytest

import pippin.pipelines as pp
from pippin.pipelines.layers import LAYERS, OVERRIDES, LayerContext
from pippin.pipelines.layers import _gelu_kernel, _kernels, _rnn_kernels, fast_softmax, network
from pippin.pipelines.runtime.neural_network import NeuralNetworkModel

from fast_recurrent_cases import RECURRENT_CASES  # noqa: E402  (the tests folder is on sys.path)
from fast_loop_cases import case_loop  # noqa: E402
from fast_chain_cases import CHAIN_CASES, _activation, _batchnorm, _proto, _weights  # noqa: E402

RNG = np.random.default_rng(11)
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _conv(c_in=3, c_out=4, kernel=(3, 3), stride=(1, 1), deconv=False, name="conv", inputs=("x",), outputs=("y",)):
    spec, p = _proto("convolution", name, inputs, outputs)
    p.outputChannels, p.kernelChannels, p.isDeconvolution = c_out, c_in, deconv
    p.kernelSize.extend(kernel)
    p.stride.extend(stride)
    p.valid.SetInParent()
    _weights(p.weights, RNG.standard_normal((c_in * c_out * kernel[0] * kernel[1],)) * 0.3)
    p.hasBias = True
    _weights(p.bias, RNG.standard_normal(c_out))
    return spec


def _pooling(type_=0, kernel=(2, 2), stride=(2, 2), is_global=False):
    spec, p = _proto("pooling")
    p.type, p.globalPooling = type_, is_global
    p.kernelSize.extend(kernel)
    p.stride.extend(stride)
    p.valid.SetInParent()
    return spec


def _inputs(shape):
    """The same random ``[N, C, H, W]`` values, C-contiguous and as a channel-last buffer."""
    x = RNG.standard_normal(shape).astype(np.float32)
    return {"contiguous": x, "channel_last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)}


def _context():
    return LayerContext(where="m.mlmodel: neuralNetwork.layers[0](l)", exact_shapes=False, spec_version=4)


def _assert_same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), **TOL)


def _compare_layer(kind, spec, shape, *, train=True, batch_statistics=False):
    """forward, forward_train and backward of ``OVERRIDES[(kind,)]`` against ``LAYERS[kind]``."""
    for layout, x in _inputs(shape).items():
        ref, fast = LAYERS[kind](spec, _context()), OVERRIDES[(kind,)](spec, _context())
        assert type(ref) is LAYERS[kind] and isinstance(fast, LAYERS[kind]) and type(fast) is not LAYERS[kind]
        _assert_same(fast(x), ref(x))
        if not train:
            continue
        ref.batch_statistics = fast.batch_statistics = batch_statistics
        (y_ref,), cache_ref = ref.forward_train(x)
        (y_fast,), cache_fast = fast.forward_train(x)
        _assert_same([y_fast], [y_ref])
        # the gradient arrives in the layout the next layer's backward writes it: channel-last here too
        gy = np.ascontiguousarray(RNG.standard_normal(y_ref.shape).astype(np.float32))
        if layout == "channel_last" and gy.ndim == 4:
            gy = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        gx_ref, grads_ref = ref.backward(cache_ref, gy)
        gx_fast, grads_fast = fast.backward(cache_fast, gy)
        _assert_same(gx_fast, gx_ref)
        assert grads_fast.keys() == grads_ref.keys()
        _assert_same([grads_fast[k] for k in sorted(grads_ref)], [grads_ref[k] for k in sorted(grads_ref)])
        for name, buffer in getattr(ref, "buffers", {}).items():  # running statistics follow the same rule
            np.testing.assert_allclose(fast.buffers[name], buffer, **TOL)


def _case_activation():
    _compare_layer("activation", _activation("ReLU"), (5, 4, 6, 7))
    _compare_layer("activation", _activation("leakyReLU"), (5, 4, 6, 7))  # no kernel: the reference itself
    _compare_layer("activation", _activation("sigmoid"), (5, 4, 6, 7))
    for x in _inputs((3, 4, 5, 6)).values():  # bit for bit, in the input's memory order
        spec = _activation("sigmoid")
        got = OVERRIDES[("activation",)](spec, _context())(x * 30)[0]
        assert np.array_equal(got, LAYERS["activation"](spec, _context())(x * 30)[0])
        assert got.strides == (x * 30).strides


def _case_batchnorm():
    _compare_layer("batchnorm", _batchnorm(), (6, 4, 5, 7), batch_statistics=True)
    _compare_layer("batchnorm", _batchnorm(), (6, 4, 5, 7), batch_statistics=False)


def _case_pooling():
    _compare_layer("pooling", _pooling(), (3, 4, 8, 6))  # the 2x2 max kernel
    _compare_layer("pooling", _pooling(), (3, 4, 7, 6))  # odd height: the reference path
    _compare_layer("pooling", _pooling(type_=1, kernel=(3, 3), stride=(1, 1)), (3, 4, 8, 6))
    _compare_layer("pooling", _pooling(is_global=True), (3, 4, 8, 6))
    _compare_layer("pooling", _pooling(type_=1, is_global=True), (3, 4, 8, 6))  # global average


def _case_convolution():
    _compare_layer("convolution", _conv(), (4, 3, 9, 8))
    _compare_layer("convolution", _conv(stride=(2, 2)), (4, 3, 9, 8))
    _compare_layer("convolution", _conv(c_in=3, c_out=2, stride=(2, 2), deconv=True), (2, 3, 5, 4), train=False)
    _compare_layer("convolution", _conv(c_in=3, c_out=5, kernel=(1, 1)), (4, 3, 6, 5))  # 1x1: no copy
    _compare_layer("convolution", _conv(c_in=6, c_out=4, kernel=(3, 2)), (3, 6, 7, 9))  # C_out < C_in: shifted runs
    _compare_layer("convolution", _grouped_conv(6, 5, 1, kernel=(3, 3), same=True), (2, 6, 8, 7))
    _compare_layer("convolution", _grouped_conv(8, 3, 1, kernel=(2, 3)), (2, 8, 6, 9))  # dilated, valid borders
    # training routes: one input channel (the reference's) and per-example patches (_conv_train), with
    # "same" padding, strides and dilation
    for c_in, c_out, stride, dilation in ((1, 5, (1, 1), (1, 1)), (1, 3, (2, 1), (1, 2)), (4, 6, (1, 1), (1, 1)),
                                          (5, 3, (2, 2), (2, 1))):
        spec = _conv(c_in=c_in, c_out=c_out, stride=stride)
        spec.convolution.same.SetInParent()
        spec.convolution.dilationFactor.extend(dilation)
        _compare_layer("convolution", spec, (3, c_in, 9, 8))
    for stride, same in (((1, 1), True), ((2, 2), True), ((2, 1), False)):  # depthwise: the numba kernel
        _compare_layer("convolution", _grouped_conv(6, 6, 6, stride=stride, same=same), (3, 6, 9, 8))
    _compare_layer("convolution", _grouped_conv(6, 4, 2, kernel=(3, 2)), (3, 6, 7, 8))  # batched groups
    _compare_layer("convolution", _grouped_conv(3, 6, 3), (2, 3, 7, 8))  # depth multiplier 2
    _case_conv_taps()
    _case_winograd()


def _case_winograd():
    """3x3 stride-1 convolutions with wide channels take ``_winograd.winograd_3x3`` (threshold lowered
    here for small shapes), alone and with a fused ReLU / clip; odd sizes leave partial tiles."""
    from pippin.pipelines.layers import _winograd, fast

    calls = []
    original, saved_min = _winograd.winograd_3x3, fast.WINOGRAD_MIN_CHANNELS
    _winograd.winograd_3x3 = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        spec = _grouped_conv(128, 128, 1, same=True)  # sums of 1152 terms: compared to their magnitude
        fast_layer, ref_layer = OVERRIDES[("convolution",)](spec, _context()), LAYERS["convolution"](spec, _context())
        for x in _inputs((2, 128, 5, 6)).values():
            got, want = fast_layer(x)[0], ref_layer(x)[0]
            assert got.shape == want.shape and np.abs(got - want).max() <= 2e-6 * np.abs(want).max()
        assert len(calls) == 2, "a 128-channel 3x3 convolution did not take Winograd"
        fast.WINOGRAD_MIN_CHANNELS = 4
        for spec, shape in ((_grouped_conv(6, 5, 1, same=True), (3, 6, 9, 7)), (_conv(c_in=4, c_out=7), (2, 4, 8, 5)),
                            (_grouped_conv(5, 4, 1, same=True), (1, 5, 1, 1)), (_conv(c_in=4, c_out=4), (2, 4, 3, 3))):
            before = len(calls)
            _compare_layer("convolution", spec, shape, train=False)
            assert len(calls) > before, "Winograd was not taken"
            for act in (_activation("ReLU", inputs=("y",), outputs=("z",)), _clip(-0.5, 0.7, ("y",), ("z",))):
                reference = network.build_layers([spec, act], prefix="m", exact_shapes=False, spec_version=4,
                                                 fast=False)
                fused = network.fuse_layers(network.build_layers([spec, act], prefix="m", exact_shapes=False,
                                                                 spec_version=4), {"z"})
                for x in _inputs(shape).values():
                    np.testing.assert_allclose(network.run_layers(fused, {"x": x})["z"],
                                               network.run_layers(reference, {"x": x})["z"], **TOL)
        before = len(calls)
        _compare_layer("convolution", _conv(c_in=4, c_out=4, stride=(2, 2)), (2, 4, 9, 8), train=False)
        assert len(calls) == before, "a strided convolution took Winograd"
    finally:
        _winograd.winograd_3x3, fast.WINOGRAD_MIN_CHANNELS = original, saved_min


def _case_conv_taps():
    """16+ input channels and enough pixels with BLAS on one thread: ``_conv_taps.conv_taps``
    (one product per tap, per phase); with two BLAS threads the same layer takes im2col."""
    from threadpoolctl import threadpool_limits

    from pippin.pipelines.layers import _conv_taps, fast

    calls = []
    original = _conv_taps.conv_taps
    spy = lambda *a, **k: calls.append(1) or original(*a, **k)  # noqa: E731
    fast.conv_taps, saved = spy, fast.conv_taps
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            _compare_layer("convolution", _grouped_conv(16, 5, 1, same=True), (3, 16, 20, 6), train=False)
            assert not calls, "conv_taps was taken with two BLAS threads"
        _conv_taps_cases(calls)
    finally:
        fast.conv_taps = saved


def _conv_taps_cases(calls):
    from threadpoolctl import threadpool_limits

    from pippin.pipelines.layers import _rnn_gemm

    packed_calls, packed = [], _rnn_gemm.matmul_packed
    _rnn_gemm.matmul_packed = lambda *a: packed_calls.append(1) or packed(*a)
    try:
        _conv_taps_shapes(calls, threadpool_limits)
    finally:
        _rnn_gemm.matmul_packed = packed
    assert packed_calls, "no tap product took the packed kernel"


def _conv_taps_shapes(calls, threadpool_limits):

    with threadpool_limits(limits=1, user_api="blas"):
        for spec, shape in ((_grouped_conv(16, 5, 1, same=True), (3, 16, 20, 6)),  # stride 1, whole-batch run
                            (_grouped_conv(16, 7, 1, stride=(2, 2), same=True), (2, 16, 9, 11)),  # four phases
                            (_grouped_conv(16, 4, 1, stride=(2, 1), same=True), (2, 16, 8, 7)),
                            (_grouped_conv(16, 6, 1, kernel=(2, 3)), (2, 16, 7, 9)),  # dilated, uneven borders
                            (_grouped_conv(16, 4, 1, kernel=(3, 3), stride=(2, 2)), (2, 16, 9, 9)),  # dilated, strided
                            (_grouped_conv(16, 12, 1, kernel=(1, 1), stride=(2, 2), same=True), (2, 16, 8, 8)),
                            (_grouped_conv(16, 20, 1, same=True), (2, 16, 16, 8)),  # C_out > C_in, many pixels
                            (_grouped_conv(16, 3, 1, kernel=(3, 3), same=True), (5, 16, 3, 3)),  # one run per image
                            # 32 outputs: the tap products through _rnn_gemm.matmul_packed
                            (_grouped_conv(40, 32, 1, same=True), (2, 40, 9, 7)),
                            (_grouped_conv(40, 32, 1, stride=(2, 2), same=True), (2, 40, 9, 11)),
                            (_grouped_conv(40, 32, 1, kernel=(3, 3), same=True), (5, 40, 3, 3))):
            before = len(calls)
            _compare_layer("convolution", spec, shape, train=False)
            assert len(calls) > before, "conv_taps was not taken"
            conv, act = spec, _activation("ReLU", inputs=("y",), outputs=("z",))
            reference = network.build_layers([conv, act], prefix="m", exact_shapes=False, spec_version=4, fast=False)
            fused = network.fuse_layers(reference, {"z"})
            for x in _inputs(shape).values():
                np.testing.assert_allclose(network.run_layers(fused, {"x": x})["z"],
                                           network.run_layers(reference, {"x": x})["z"], **TOL)


def _grouped_conv(c_in, c_out, groups, *, kernel=(3, 3), stride=(1, 1), same=False, inputs=("x",), outputs=("y",)):
    spec, p = _proto("convolution", "conv", inputs, outputs)
    p.outputChannels, p.kernelChannels, p.nGroups = c_out, c_in // groups, groups
    p.kernelSize.extend(kernel)
    p.stride.extend(stride)
    p.dilationFactor.extend((1, 2) if not same else (1, 1))
    if same:
        p.same.SetInParent()
    else:
        p.valid.paddingAmounts.borderAmounts.add(startEdgeSize=1, endEdgeSize=0)
        p.valid.paddingAmounts.borderAmounts.add(startEdgeSize=2, endEdgeSize=1)
    _weights(p.weights, RNG.standard_normal((c_out * (c_in // groups) * kernel[0] * kernel[1],)) * 0.3)
    p.hasBias = True
    _weights(p.bias, RNG.standard_normal(c_out))
    return spec


def _clip(lo, hi, inputs, outputs):
    spec, p = _proto("clip", "clip", inputs, outputs)
    p.minVal, p.maxVal = lo, hi
    return spec


def _case_conv_activation():
    for conv, shape in ((_grouped_conv(6, 6, 6, stride=(2, 2), same=True, outputs=("c",)), (3, 6, 9, 8)),
                        (_grouped_conv(6, 4, 2, outputs=("c",)), (3, 6, 9, 8)),
                        (_conv(c_in=3, c_out=4, name="conv", outputs=("c",)), (3, 3, 9, 8))):
        for act in (_activation("ReLU", inputs=("c",), outputs=("y",)), _clip(-0.5, 6.0, ("c",), ("y",))):
            reference = network.build_layers([conv, act], prefix="m.mlmodel: neuralNetwork", exact_shapes=False,
                                             spec_version=4, fast=False)
            fused = network.fuse_layers(reference, {"y"})
            assert len(fused) == 1 and type(fused[0]).__name__ == "FusedConvActivation"
            assert network.fuse_layers(reference, {"y", "c"}) == reference  # a kept blob is not fused away
            for x in _inputs(shape).values():
                np.testing.assert_allclose(network.run_layers(fused, {"x": x})["y"],
                                           network.run_layers(reference, {"x": x})["y"], **TOL)


def _case_fused_chain():
    specs = [_conv(c_in=3, c_out=4, name="conv", outputs=("c",)),
             _batchnorm(4, name="bn", inputs=("c",), outputs=("b",)),
             _activation("ReLU", name="relu", inputs=("b",), outputs=("y",))]
    reference = network.build_layers(specs, prefix="m.mlmodel: neuralNetwork", exact_shapes=False,
                                     spec_version=4, fast=False)
    for keep, n_fused in (({"y"}, 1), ({"y", "b"}, 2)):  # a kept blob ends the run before the ReLU
        fused = network.fuse_layers(reference, keep)
        assert type(fused[0]) is OVERRIDES[("convolution", "batchnorm")] and len(fused) == n_fused
        for x in _inputs((4, 3, 9, 8)).values():
            want = network.run_layers(reference, {"x": x})
            got = network.run_layers(fused, {"x": x})
            for name in keep:
                np.testing.assert_allclose(got[name], want[name], **TOL)
    # the convolution's output is kept: it stays, the batchnorm -> ReLU after it fuses on its own
    kept = network.fuse_layers(reference, {"y", "c"})
    assert kept[0] is reference[0] and [layer.kind for layer in kept] == ["convolution", "fusedBatchnormRelu"]


CASES = {
    ("activation",): _case_activation,
    ("batchnorm",): _case_batchnorm,
    ("pooling",): _case_pooling,
    ("convolution",): _case_convolution,
    ("convolution", "batchnorm"): _case_fused_chain,
    ("convolution", "activation"): _case_conv_activation,
    ("convolution", "clip"): _case_conv_activation,
    **RECURRENT_CASES,
}


def _case_inner_product():
    for c_in, c_out, shape in ((6, 5, (4, 6)), (6, 5, (4, 3, 6)), (6, 5, (4, 2, 6, 1, 1)), (1, 3, (4, 1, 1, 1))):
        spec, p = _proto("innerProduct")
        p.inputChannels, p.outputChannels, p.hasBias = c_in, c_out, True
        _weights(p.weights, RNG.standard_normal(c_in * c_out))
        _weights(p.bias, RNG.standard_normal(c_out))
        ref, fast = LAYERS["innerProduct"](spec, _context()), OVERRIDES[("innerProduct",)](spec, _context())
        x = RNG.standard_normal(shape).astype(np.float32)
        for layout in (x, np.asfortranarray(x)):
            got, want = fast(layout), ref(layout)
            assert got[0].shape == want[0].shape
            _assert_same(got, want)
    ref, fast = LAYERS["innerProduct"](spec, _context()), OVERRIDES[("innerProduct",)](spec, _context())
    for layer in (ref, fast):  # a wrong channel count is named the same way
        with pytest.raises(Exception, match="inputChannels=1"):
            layer(np.zeros((2, 3), np.float32))
    spec, p = _proto("innerProduct")  # 32+ outputs: the product takes a cached C-ordered W^T
    p.inputChannels, p.outputChannels = 6, 40
    _weights(p.weights, RNG.standard_normal(6 * 40))
    ref, fast = LAYERS["innerProduct"](spec, _context()), OVERRIDES[("innerProduct",)](spec, _context())
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    _assert_same(fast(x), ref(x))
    new = RNG.standard_normal((40, 6)).astype(np.float32)  # replaced weights (as training does): used
    fast.params["weights"], ref.params["weights"] = new, new.copy()
    _assert_same(fast(x), ref(x))
    with pytest.raises(ValueError):  # written in place: refused, never a stale transposed copy
        fast.params["weights"][0, 0] = 1.0
    for bias, shape in ((True, (5, 70)), (False, (3, 2, 70)), (True, (9, 1, 70, 1, 1)), (True, (1, 70))):
        spec, p = _proto("innerProduct")  # C_out a multiple of the packed kernel's panel: _rnn_gemm.matmul_packed
        p.inputChannels, p.outputChannels, p.hasBias = 70, 64, bias
        _weights(p.weights, RNG.standard_normal(70 * 64))
        if bias:
            _weights(p.bias, RNG.standard_normal(64))
        ref, fast = LAYERS["innerProduct"](spec, _context()), OVERRIDES[("innerProduct",)](spec, _context())
        x = RNG.standard_normal(shape).astype(np.float32)
        for layout in (x, np.asfortranarray(x)):
            _assert_same(fast(layout), ref(layout))
        assert fast._packed is not None, "the packed kernel was not taken"
        if bias:  # a replaced bias (as training does) is used; one written in place is refused
            new = RNG.standard_normal(64).astype(np.float32)
            fast.params["bias"], ref.params["bias"] = new, new.copy()
            _assert_same(fast(x), ref(x))
            with pytest.raises(ValueError):
                fast.params["bias"][0] = 1.0


def _case_gelu():
    for mode in (0, 1, 2):
        spec, p = _proto("gelu")
        p.mode = mode
        ref, fast = LAYERS["gelu"](spec, _context()), OVERRIDES[("gelu",)](spec, _context())
        x = RNG.standard_normal((3, 4, 5, 6)).astype(np.float32) * 4
        for layout in _inputs(x.shape).values():
            _assert_same(fast(layout * 4), ref(layout * 4))


def _case_copy():
    spec, _ = _proto("copy")
    for x in _inputs((3, 4, 5, 6)).values():
        got, want = OVERRIDES[("copy",)](spec, _context())(x), LAYERS["copy"](spec, _context())(x)
        assert np.array_equal(got[0], want[0]) and got[0].dtype == np.float32


def _case_softmax_nd():
    for axis, shape in ((-1, (3, 4, 5, 32)), (1, (3, 4, 5)), (-3, (2, 3, 4, 5, 6)), (0, (4, 7)), (-1, (5, 1))):
        spec, p = _proto("softmaxND")
        p.axis = axis
        ref, fast = LAYERS["softmaxND"](spec, _context()), OVERRIDES[("softmaxND",)](spec, _context())
        x = (RNG.standard_normal(shape) * 30).astype(np.float32)  # exponents down to about -200
        for layout in (x, np.asfortranarray(x)):
            got, want = fast(layout), ref(layout)
            assert got[0].shape == want[0].shape and got[0].dtype == np.float32
            np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-30)
            assert np.array_equal(got[0] == 0, want[0] == 0)  # the same underflows
    spec, p = _proto("softmaxND")
    p.axis = -1
    ref, fast = LAYERS["softmaxND"](spec, _context()), OVERRIDES[("softmaxND",)](spec, _context())
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    x[0, 2], x[1, 3], x[2, :] = np.nan, np.inf, -np.inf
    x[3, 1] = -np.inf
    with np.errstate(invalid="ignore"):
        got, want = fast(x)[0], ref(x)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[3], want[3], rtol=1e-6)


CASES[("softmaxND",)] = _case_softmax_nd
CASES[("copy",)] = _case_copy
CASES[("innerProduct",)] = _case_inner_product
CASES[("gelu",)] = _case_gelu
CASES[("loop",)] = case_loop


CASES.update(CHAIN_CASES)
#: single-kind overrides that are faster without a numba kernel (fewer NumPy calls)
KERNEL_FREE = {("innerProduct",), ("copy",), ("mvn",), ("concat",)}  # mvn: its compiled pass is in fast_chains.py


def test_every_override_has_a_case():
    assert set(OVERRIDES) == set(CASES), "add a case for each registered override"


@pytest.mark.parametrize("key", sorted(OVERRIDES), ids=lambda key: "+".join(key))
def test_override_equals_reference(key, monkeypatch):
    calls = []
    # count kernel calls, to see that the fast route was taken
    for module in (_kernels, _rnn_kernels, _gelu_kernel, fast_softmax):
        for name in module.__all__:
            fn = getattr(module, name)
            if name == "tanh32" or isinstance(fn, type):  # inlined into the compiled loops; layer classes
                continue
            monkeypatch.setattr(module, name, lambda *a, _fn=fn, _name=name, **k: calls.append(_name) or _fn(*a, **k))
    CASES[key]()
    if len(key) == 1 and key not in KERNEL_FREE:
        assert calls, f"the {key[0]!r} cases never reached a kernel"


def test_fast_false_builds_reference_classes_only():
    specs = [_conv(name="conv", outputs=("c",)), _batchnorm(name="bn", inputs=("c",), outputs=("y",))]
    kw = {"prefix": "m", "exact_shapes": False, "spec_version": 4}
    assert [type(layer) for layer in network.build_layers(specs, fast=False, **kw)] == [
        LAYERS["convolution"], LAYERS["batchnorm"]]
    assert [type(layer) for layer in network.build_layers(specs, **kw)] == [
        OVERRIDES[("convolution",)], OVERRIDES[("batchnorm",)]]


def test_reference_model_predicts_like_the_fast_model():
    from pippin.pipelines.build.network import NetworkBuilder

    b = NetworkBuilder(inputs=[("x", (1, 12, 10))], outputs=["probs"], mode="classifier",
                       class_labels=["a", "b", "c"], seed=3)
    b.add_conv("conv", "x", "c", n_out=4)
    b.add_batchnorm("bn", "c", "bnout")
    b.add_activation("relu", "bnout", "r")
    b.add_pooling("pool", "r", "p", type="max")
    b.add_flatten("flat", "p", "flat")
    b.add_dense("fc", "flat", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    x = RNG.standard_normal((24, 1, 12, 10)).astype(np.float32)
    fast, reference = pp.load(b.spec), NeuralNetworkModel(b.spec, fast=False)
    assert all(type(layer) is LAYERS[layer.kind] for layer in reference.layers)
    np.testing.assert_allclose(fast.predict_batch({"x": x})["probs"], reference.predict_batch({"x": x})["probs"],
                               **TOL)
