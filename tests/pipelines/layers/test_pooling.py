import numpy as np
import pytest

from train_helpers import blob, builder, check_gradients, forward, model_of


def _reference(x, kind, k, s, pads, out_hw, exclude):
    """Pooling written from Core ML's definition, one window at a time (float64)."""
    n, c, h, w = x.shape
    pt, pb, pl, pr = pads
    y = np.zeros((n, c) + tuple(out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            r0, c0 = i * s[0] - pt, j * s[1] - pl
            rows = [r for r in range(r0, r0 + k[0]) if 0 <= r < h]
            cols = [q for q in range(c0, c0 + k[1]) if 0 <= q < w]
            win = x[:, :, rows][:, :, :, cols].astype(np.float64)
            if kind == "MAX":
                y[:, :, i, j] = win.max(axis=(2, 3))
            elif kind == "L2":
                y[:, :, i, j] = np.sqrt((win ** 2).sum(axis=(2, 3)))
            else:
                if exclude:
                    count = len(rows) * len(cols)
                else:
                    in_r = [r for r in range(r0, r0 + k[0]) if -pt <= r < h + pb]
                    in_c = [q for q in range(c0, c0 + k[1]) if -pl <= q < w + pr]
                    count = len(in_r) * len(in_c)
                y[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return y


def _geometry(padding, h, w, k, s, pads, mode):
    if padding == "VALID":
        pt, pb, pl, pr = pads
        return (pt, pb, pl, pr), ((h + pt + pb - k[0]) // s[0] + 1, (w + pl + pr - k[1]) // s[1] + 1)
    if padding == "SAME":
        out, p = [], []
        for n, kk, ss in zip((h, w), k, s):
            o = -(-n // ss)
            total = max((o - 1) * ss + kk - n, 0)
            small = total // 2
            p += [total - small, small] if mode == "TOP_LEFT_HEAVY" else [small, total - small]
            out.append(o)
        return tuple(p), tuple(out)
    pt, pl = pads[0], pads[2]
    out = []
    for n, kk, ss, pp in zip((h, w), k, s, (pt, pl)):
        o = -(-(n + 2 * pp - kk) // ss) + 1
        if pp and (o - 1) * ss >= n + pp:
            o -= 1
        out.append(o)
    return (pt, pt, pl, pl), tuple(out)


CASES = [
    ("MAX", "VALID", (2, 2), (2, 2), (0, 0, 0, 0), True),
    ("MAX", "VALID", (3, 3), (2, 1), (1, 1, 0, 2), True),
    ("AVERAGE", "VALID", (3, 2), (2, 2), (1, 0, 1, 1), True),
    ("AVERAGE", "VALID", (3, 3), (2, 2), (1, 1, 1, 1), False),
    ("L2", "VALID", (2, 3), (1, 2), (0, 0, 0, 0), True),
    ("MAX", "SAME", (3, 3), (2, 2), (0, 0, 0, 0), True),
    ("AVERAGE", "SAME", (4, 3), (3, 2), (0, 0, 0, 0), True),
    ("AVERAGE", "SAME", (4, 3), (3, 2), (0, 0, 0, 0), False),
    ("MAX", "INCLUDE_LAST_PIXEL", (3, 3), (2, 2), (0, 0, 0, 0), True),
    ("AVERAGE", "INCLUDE_LAST_PIXEL", (3, 3), (2, 2), (1, 1, 1, 1), False),
    ("AVERAGE", "INCLUDE_LAST_PIXEL", (2, 2), (2, 2), (0, 0, 0, 0), True),
]


def _net(kind, padding, k, s, pads, exclude, shape=(3, 9, 8), mode="BOTTOM_RIGHT_HEAVY", exact=False):
    nb = builder(shape, exact=exact)
    nb.add_pooling("pool", height=k[0], width=k[1], stride_height=s[0], stride_width=s[1], layer_type=kind,
                   padding_type=padding, input_name="x", output_name="y", exclude_pad_area=exclude,
                   padding_top=pads[0], padding_bottom=pads[1], padding_left=pads[2], padding_right=pads[3],
                   same_padding_asymmetry_mode=mode)
    return nb


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_pooling_matches_definition(case, exact):
    kind, padding, k, s, pads, exclude = case
    nb = _net(*case, exact=exact)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    full_pads, out_hw = _geometry(padding, 9, 8, k, s, pads, "BOTTOM_RIGHT_HEAVY")
    expected = _reference(x, kind, k, s, full_pads, out_hw, exclude)
    np.testing.assert_allclose(y if exact else y[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_same_padding_top_left_heavy():
    nb = _net("AVERAGE", "SAME", (4, 4), (3, 3), (0, 0, 0, 0), False, mode="TOP_LEFT_HEAVY")
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    full_pads, out_hw = _geometry("SAME", 9, 8, (4, 4), (3, 3), None, "TOP_LEFT_HEAVY")
    np.testing.assert_allclose(y[:, 0], _reference(x, "AVERAGE", (4, 4), (3, 3), full_pads, out_hw, False),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["MAX", "AVERAGE", "L2"])
def test_global_pooling(kind):
    nb = builder((3, 5, 4))
    nb.add_pooling("g", height=1, width=1, stride_height=1, stride_width=1, layer_type=kind, padding_type="VALID",
                   input_name="x", output_name="y", is_global=True)
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4)).astype(np.float32)
    y, _ = forward(nb, {"x": x})
    x64 = x.astype(np.float64)
    expected = {"MAX": x64.max(axis=(2, 3)), "AVERAGE": x64.mean(axis=(2, 3)),
                "L2": np.sqrt((x64 ** 2).sum(axis=(2, 3)))}[kind]
    np.testing.assert_allclose(y.reshape(2, 3), expected, rtol=1e-5, atol=1e-6)
    layer = model_of(nb).layers[0]
    check_gradients(layer, [blob(x, False)], eps=1e-3)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_pooling_gradients_finite_differences(case):
    layer = model_of(_net(*case)).layers[0]
    # distinct values so that a small step never changes which pixel is the maximum
    x = np.random.default_rng(3).permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float32) / 10
    check_gradients(layer, [blob(x, False)], eps=1e-2, n_probe=20)


def test_max_pooling_gradient_goes_to_first_maximum():
    nb = _net("MAX", "VALID", (2, 2), (2, 2), (0, 0, 0, 0), True, shape=(1, 2, 2))
    layer = model_of(nb).layers[0]
    x = np.ones((1, 1, 1, 2, 2), np.float32)
    (y,), cache = layer.forward_train(x)
    (gx,), _ = layer.backward(cache, np.ones_like(y))
    np.testing.assert_array_equal(gx.reshape(4), [1, 0, 0, 0])
