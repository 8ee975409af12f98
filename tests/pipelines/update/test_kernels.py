"""``update.kernels``: the fused batchnorm + ReLU passes equal their NumPy definitions, on any memory layout."""

import numpy as np
import pytest

from pippin.pipelines.update import kernels


def _arrays(seed, shape=(3, 5, 7, 6)):
    rng = np.random.default_rng(seed)
    g, y, x = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    return g, y, x


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_fused_passes_equal_numpy(layout):
    g, y, x = _arrays(0)
    if layout == "nchw":  # NCHW memory seen as NHWC: the kernels copy to rows first
        g, y, x = (np.ascontiguousarray(a.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1) for a in (g, y, x))
    c = x.shape[-1]
    rng = np.random.default_rng(1)
    scale, shift = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    np.testing.assert_allclose(kernels.bn_relu_forward(x, scale, shift), np.maximum(x * scale + shift, 0),
                               rtol=1e-6, atol=1e-6)
    gm = np.where(y > 0, g, 0).astype(np.float64)
    s_g, s_gx = kernels.relu_bn_grad_sums(g, y, x)
    np.testing.assert_allclose(s_g, gm.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s_gx, (gm * x).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    s_a, s_ab = kernels.channel_sums(g, x)
    np.testing.assert_allclose(s_a, g.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s_ab, (g.astype(np.float64) * x).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    a, b, cc = (rng.standard_normal(c) for _ in range(3))
    for masked in (True, False):
        gv = gm if masked else g
        want = gv * a + x * b + cc
        got = kernels.relu_bn_input_grad(g, y, x, a, b, cc, masked=masked)
        assert got.flags.c_contiguous and got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_sums_keep_float64_across_long_runs():
    x = np.full((1, 300, 100, 2), 0.1, dtype=np.float32)  # 30,000 rows: float32 alone drifts
    s, _ = kernels.channel_sums(x, x)
    np.testing.assert_allclose(s, 30000 * np.float64(np.float32(0.1)), rtol=1e-5)  # float32 alone: 2e-4
