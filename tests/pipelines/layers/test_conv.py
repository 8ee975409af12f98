import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _same_pads(n, k, s, d, top_left_heavy=False):
    ek = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    small = total // 2
    return (total - small, small) if top_left_heavy else (small, total - small)


def _conv_net(c_in, c_out, k, *, stride=1, dilation=1, groups=1, border="valid", pads=(0, 0, 0, 0),
              mode="BOTTOM_RIGHT_HEAVY", exact=False, hw=(9, 8), seed=0, bias=True):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k[0], k[1], c_in // groups, c_out)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    nb = builder((c_in,) + hw, exact=exact)
    nb.add_convolution("conv", kernel_channels=c_in // groups, output_channels=c_out, height=k[0], width=k[1],
                       stride_height=stride, stride_width=stride, border_mode=border, groups=groups, W=w,
                       b=b if bias else None, has_bias=bias, input_name="x", output_name="y",
                       dilation_factors=[dilation, dilation], padding_top=pads[0], padding_bottom=pads[1],
                       padding_left=pads[2], padding_right=pads[3], same_padding_asymmetry_mode=mode)
    return nb, w, b


CASES = [
    dict(c_in=3, c_out=4, k=(3, 3)),
    dict(c_in=3, c_out=4, k=(3, 2), stride=2, pads=(1, 2, 0, 1)),
    dict(c_in=4, c_out=6, k=(3, 3), dilation=2, groups=2, pads=(2, 2, 2, 2)),
    dict(c_in=2, c_out=4, k=(3, 3), stride=2, border="same"),
    dict(c_in=2, c_out=4, k=(4, 4), stride=3, border="same", mode="TOP_LEFT_HEAVY"),
    dict(c_in=4, c_out=4, k=(3, 3), groups=4, border="same", bias=False),
]


def _torch_conv(x, w, b, case):
    k, s, d = case["k"], case.get("stride", 1), case.get("dilation", 1)
    if case.get("border") == "same":
        tl = case.get("mode") == "TOP_LEFT_HEAVY"
        (pt, pb), (pl, pr) = (_same_pads(x.shape[2], k[0], s, d, tl), _same_pads(x.shape[3], k[1], s, d, tl))
    else:
        pt, pb, pl, pr = case.get("pads", (0, 0, 0, 0))
    xt = F.pad(torch.from_numpy(x), (pl, pr, pt, pb))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    bt = torch.from_numpy(b) if case.get("bias", True) else None
    return F.conv2d(xt, wt, bt, stride=s, dilation=d, groups=case.get("groups", 1)).numpy()


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_convolution_matches_torch(case, exact):
    nb, w, b = _conv_net(**case, exact=exact)
    x = np.random.default_rng(5).standard_normal((3, case["c_in"], 9, 8)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    expected = _torch_conv(x, w, b, case)
    y = y if exact else y[:, 0]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES[1:4])
def test_convolution_gradients_finite_differences(case):
    nb, _, _ = _conv_net(**case, hw=(7, 6))
    layer = model_of(nb).layers[0]
    x = blob(np.random.default_rng(6).standard_normal((2, case["c_in"], 7, 6)), False)
    check_gradients(layer, [x], params=tuple(layer.params))


@pytest.mark.parametrize("case", CASES)
def test_convolution_gradients_match_torch(case):
    nb, w, b = _conv_net(**case)
    layer = model_of(nb).layers[0]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, case["c_in"], 9, 8)).astype(np.float32)
    (y,), cache = layer.forward_train(blob(x, False))
    g = rng.standard_normal(y.shape).astype(np.float32)
    (gx,), grads = layer.backward(cache, g)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    k, s, d = case["k"], case.get("stride", 1), case.get("dilation", 1)
    if case.get("border") == "same":
        tl = case.get("mode") == "TOP_LEFT_HEAVY"
        (pt, pb), (pl, pr) = _same_pads(9, k[0], s, d, tl), _same_pads(8, k[1], s, d, tl)
    else:
        pt, pb, pl, pr = case.get("pads", (0, 0, 0, 0))
    ty = F.conv2d(F.pad(tx, (pl, pr, pt, pb)), tw, tb if case.get("bias", True) else None, stride=s, dilation=d,
                  groups=case.get("groups", 1))
    ty.backward(torch.from_numpy(g[:, 0]))
    np.testing.assert_allclose(gx[:, 0], tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads["weights"], tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    if case.get("bias", True):
        np.testing.assert_allclose(grads["bias"], tb.grad.numpy(), rtol=1e-4, atol=1e-4)


DECONV = [
    dict(c_in=3, c_out=2, k=(3, 3), stride=2, groups=1, torch_pad=0, output_shape=None),
    dict(c_in=4, c_out=4, k=(3, 2), stride=2, groups=2, torch_pad=0, output_shape=None),
    dict(c_in=2, c_out=3, k=(3, 3), stride=2, groups=1, torch_pad=1, output_shape=None),
    dict(c_in=2, c_out=3, k=(3, 3), stride=2, groups=1, torch_pad=1, output_shape=(10, 8)),
]


@pytest.mark.parametrize("case", DECONV)
def test_deconvolution_matches_torch(case):
    rng = np.random.default_rng(8)
    c_in, c_out, k, s, g, p = case["c_in"], case["c_out"], case["k"], case["stride"], case["groups"], case["torch_pad"]
    w = rng.standard_normal((k[0], k[1], c_in, c_out // g)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    nb = builder((c_in, 5, 4))
    nb.add_convolution("deconv", kernel_channels=c_in, output_channels=c_out, height=k[0], width=k[1],
                       stride_height=s, stride_width=s, border_mode="valid", groups=g, W=w, b=b, has_bias=True,
                       is_deconv=True, output_shape=case["output_shape"], input_name="x", output_name="y",
                       padding_top=p, padding_bottom=p, padding_left=p, padding_right=p)
    x = rng.standard_normal((2, c_in, 5, 4)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1)))
    natural = ((5 - 1) * s + k[0] - 2 * p, (4 - 1) * s + k[1] - 2 * p)
    # an outputShape beyond the natural size keeps the rows the bottom/right padding would crop (torch's output_padding)
    extra = tuple(o - n for o, n in zip(case["output_shape"], natural)) if case["output_shape"] else 0
    expected = F.conv_transpose2d(torch.from_numpy(x), tw, torch.from_numpy(b), stride=s, padding=p,
                                  output_padding=extra, groups=g).numpy()
    np.testing.assert_allclose(y[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_convolution_wrong_channels_names_layer():
    nb, _, _ = _conv_net(3, 4, (3, 3))
    layer = model_of(nb).layers[0]
    with pytest.raises(Exception, match="conv"):
        layer.forward(np.ones((1, 1, 2, 9, 8), np.float32))
