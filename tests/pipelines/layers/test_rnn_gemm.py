"""The recurrent layers' compiled kernels against float64 NumPy: ``_rnn_gemm.matmul_packed`` (packed
product with an added row or array) and ``_lstm_step.lstm_seq`` (product and gates fused per step).

Shapes cover the row blocks and their remainders (1 .. 2 * ROWS + 1 rows), column counts that are
not a multiple of the panel, an empty inner dimension, hidden sizes that are not a multiple of the
vector width (padded units must stay 0), cell clipping, reverse order and a column offset.
"""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines.layers import _lstm_step, _rnn_gemm

RNG = np.random.default_rng(11)


def _f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("n,k,g", [(16, 128, 512), (1, 128, 512), (7, 37, 100), (9, 5, 33), (17, 64, 96),
                                   (3, 0, 40), (0, 8, 32)])
def test_matmul_packed_adds_a_bias_row(n, k, g):
    y, r, bias = _f32(n, k), _f32(k, g), _f32(g)
    a = np.full((n, _rnn_gemm.padded(g)), np.nan, np.float32)
    _rnn_gemm.matmul_packed(y, _rnn_gemm.pack(r), a, _rnn_gemm.pad(bias), 0, 0)
    want = y.astype(np.float64) @ r + bias
    scale = np.sqrt(max(k, 1)) * 4
    np.testing.assert_allclose(a[:, :g], want, rtol=0, atol=2e-6 * scale)
    assert np.all(a[:, g:] == 0)  # padded columns: zero weights, zero bias


def test_matmul_packed_reads_a_strided_array_and_accumulates_in_place():
    n, k, g, s = 11, 20, 64, 3
    y, r = _f32(n, k), _f32(k, g)
    pre = _f32(n, s, g)
    a = np.empty((n, g), np.float32)
    rp = _rnn_gemm.pack(r)
    _rnn_gemm.matmul_packed(y, rp, a, pre, 1 * g, s * g)  # a = pre[:, 1] + y R
    want = pre[:, 1].astype(np.float64) + y.astype(np.float64) @ r
    np.testing.assert_allclose(a, want, rtol=0, atol=5e-5)
    _rnn_gemm.matmul_packed(y, rp, a, a, 0, g)  # a += y R
    np.testing.assert_allclose(a, want + y.astype(np.float64) @ r, rtol=0, atol=1e-4)


def test_strided_rows_are_refused():
    y, r = _f32(4, 64), _f32(32, 32)
    with pytest.raises(ValueError, match="unit-stride"):
        _rnn_gemm.matmul_packed(y[:, ::2], _rnn_gemm.pack(r), np.empty((4, 32), np.float32), np.zeros(32, np.float32),
                                0, 0)


def test_pack_and_gate_layout_keep_every_value():
    r = _f32(6, 4 * 5)
    packed = _rnn_gemm.pack(r)
    assert packed.shape == (_rnn_gemm.padded(20) // _rnn_gemm.PANEL, 6, _rnn_gemm.PANEL)
    np.testing.assert_array_equal(packed.transpose(1, 0, 2).reshape(6, -1)[:, :20], r)
    lanes, hp = _rnn_gemm.LANES, _lstm_step.hidden_padded(5)
    grouped = _lstm_step.gate_layout(r, 5)
    panels = _lstm_step.pack_gates(r, 5, rows=8)
    assert panels.shape == (hp // lanes, 8, 4 * lanes)
    np.testing.assert_array_equal(panels.transpose(1, 0, 2).reshape(8, -1)[:6], grouped)
    assert not panels[:, 6:].any()
    assert grouped.shape == (6, 4 * hp)
    for gate, scale in enumerate((0.5, 0.5, 1.0, 0.5)):  # the sigmoid gates halved
        for unit in range(5):
            g, u = divmod(unit, lanes)
            np.testing.assert_array_equal(grouped[:, g * 4 * lanes + gate * lanes + u], r[:, gate * 5 + unit] * scale)
    assert np.count_nonzero(grouped) == np.count_nonzero(r)


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _reference(xs, w, r, b, y, c, clip, reverse):
    """float64 LSTM (gates i, f, z, o), ``w`` ``[I, 4H]``, ``r`` ``[H, 4H]``: outputs ``[N, S, H]``, y, c."""
    h = y.shape[1]
    xs, w, r, b, y, c = (v.astype(np.float64) for v in (xs, w, r, b, y, c))
    out = np.empty(xs.shape[:2] + (h,))
    for t in (range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])):
        a = xs[:, t] @ w + y @ r + b
        i, f, z, o = _sigmoid(a[:, :h]), _sigmoid(a[:, h:2 * h]), np.tanh(a[:, 2 * h:3 * h]), _sigmoid(a[:, 3 * h:])
        c = np.clip(f * c + i * z, -clip, clip)
        y = o * np.tanh(c)
        out[:, t] = y
    return out, y, c


@pytest.mark.parametrize("n,s,i,h,clip,reverse", [(16, 12, 64, 128, 50.0, False), (16, 13, 64, 128, 50.0, True),
                                                 (5, 7, 5, 6, 0.7, True),
                                                 (1, 4, 3, 20, 50.0, False), (9, 6, 8, 33, 1.5, True),
                                                 (2 * _lstm_step.ROWS + 1, 5, 4, 16, 50.0, False)])
def test_lstm_seq_equals_a_float64_lstm(n, s, i, h, clip, reverse):
    xs, w, r, b = _f32(n, s, i, scale=2.0), _f32(i, 4 * h, scale=0.4), _f32(h, 4 * h, scale=0.4), _f32(4 * h)
    xs[0] *= 30  # saturated gates
    y0, c0 = _f32(n, h), _f32(n, h)
    hp = _lstm_step.hidden_padded(h)
    y, c = np.zeros((n, hp), np.float32), np.zeros((n, hp), np.float32)
    y[:, :h], c[:, :h] = y0, c0
    out = np.full((n, s, h + 3), np.nan, np.float32)
    _lstm_step.lstm_seq(xs, _rnn_gemm.pack(_lstm_step.gate_layout(w, h)), _lstm_step.gate_layout(b, h),
                        _lstm_step.pack_gates(r, h, rows=hp), y, c, np.float32(clip), reverse, out, 2, h)
    want_out, want_y, want_c = _reference(xs, w, r, b, y0, c0, clip, reverse)
    tol = {"rtol": 0, "atol": 2e-5}  # measured up to 6e-6 (float32 sums over 12 steps)
    np.testing.assert_allclose(out[:, :, 2:2 + h], want_out, **tol)
    np.testing.assert_allclose(y[:, :h], want_y, **tol)
    np.testing.assert_allclose(c[:, :h], want_c, **tol)
    assert np.isnan(out[:, :, :2]).all() and np.isnan(out[:, :, 2 + h:]).all()  # other columns untouched
    assert np.all(y[:, h:] == 0) and np.all(c[:, h:] == 0)  # padded units stay 0
    assert np.abs(c).max() <= clip


_OTHER_WIDTH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("pippin.pipelines.layers._simd", sys.argv[1])
simd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(simd)
simd.LANES = {lanes}
sys.modules[spec.name] = simd  # before the package imports it: every kernel is built for this width
import pytest
from pippin.pipelines.layers import _lstm_step, _rnn_gemm
assert _rnn_gemm.LANES == _lstm_step.LANES == {lanes}
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[2], "-k", "not other_vector_width"]))
"""


def test_kernels_at_the_other_vector_width(tmp_path):
    """The layouts and kernels for the lane count this host does not use (8 with AVX-512, 16 without),
    in a subprocess with its own numba cache (the cache does not key on ``LANES``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pippin.pipelines.layers import _simd

    lanes = 8 if _simd.LANES == 16 else 16
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _OTHER_WIDTH.format(lanes=lanes), _simd.__file__, str(Path(__file__))],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
