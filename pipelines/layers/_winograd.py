"""3x3 stride-1 convolution by Winograd's F(2x2, 3x3): 16 products of a quarter of the pixels.

Each 2x2 block of outputs ("tile") depends on a 4x4 block of the padded input. With the
input transform ``V = B^T d B``, the weight transform ``U = G g G^T`` and the output transform
``Y = A^T M A`` (Lavin and Gray's F(2x2, 3x3) matrices: ``B^T`` rows (1, 0, -1, 0), (0, 1, 1, 0),
(0, -1, 1, 0), (0, 1, 0, -1), written out in ``_input_transform``; ``G`` below; ``A^T`` rows
(1, 1, 1, 0), (0, 1, -1, -1), written out in ``_output_transform``), the convolution is ``M[p] = V[p] @ U[p]``
for the 16 transform points ``p``: 16 products of ``[tiles, C_in] x [C_in, C_out]``, so per
tile of 4 outputs 16 multiply-adds per channel pair where the direct convolution takes 36
(2.25 times fewer). The transforms are compiled passes over channel-last data
(the channel loop innermost, vectorized); the weight transform is made once per weights array.
Rounding: the transforms add and subtract at most 4 values with coefficients 1 and 1/2, so the
result stays within a few float32 ulps of the direct sum's magnitude (``test_fast_paths.py``
compares it with ``conv2d_forward``). Called by ``fast.conv_infer`` under ``WINOGRAD_MIN_CHANNELS``.
"""

from __future__ import annotations

import numba
import numpy as np

from .conv import _padded_nhwc

__all__ = ["winograd_3x3", "weight_transform"]

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def weight_transform(weights: np.ndarray) -> np.ndarray:
    """``[C_out, C_in, 3, 3]`` -> ``U`` ``[16, C_in, C_out]`` (``G g G^T`` per channel pair, float64 then float32)."""
    g = weights.astype(np.float64)
    u = np.einsum("ai,ocij,bj->abco", _G, g, _G)  # [4, 4, C_in, C_out]
    return np.ascontiguousarray(u.reshape(16, g.shape[1], g.shape[0]), dtype=np.float32)


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _input_transform(buf, th, tw, v):
    """``buf`` ``[N, >= 2 th + 2, >= 2 tw + 2, C]`` -> ``v`` ``[N * th * tw, 16, C]`` (a tile's 16 rows together)."""
    n_img, _, _, c = buf.shape
    for n in range(n_img):
        for ti in range(th):
            for tj in range(tw):
                t = (n * th + ti) * tw + tj
                r, q = 2 * ti, 2 * tj
                for ch in range(c):
                    d00, d01, d02, d03 = (buf[n, r, q, ch], buf[n, r, q + 1, ch], buf[n, r, q + 2, ch],
                                          buf[n, r, q + 3, ch])
                    d10, d11, d12, d13 = (buf[n, r + 1, q, ch], buf[n, r + 1, q + 1, ch], buf[n, r + 1, q + 2, ch],
                                          buf[n, r + 1, q + 3, ch])
                    d20, d21, d22, d23 = (buf[n, r + 2, q, ch], buf[n, r + 2, q + 1, ch], buf[n, r + 2, q + 2, ch],
                                          buf[n, r + 2, q + 3, ch])
                    d30, d31, d32, d33 = (buf[n, r + 3, q, ch], buf[n, r + 3, q + 1, ch], buf[n, r + 3, q + 2, ch],
                                          buf[n, r + 3, q + 3, ch])
                    # rows: B^T d
                    a0, a1, a2, a3 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
                    b0, b1, b2, b3 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
                    e0, e1, e2, e3 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
                    f0, f1, f2, f3 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
                    # columns: (B^T d) B
                    v[t, 0, ch], v[t, 1, ch], v[t, 2, ch], v[t, 3, ch] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                    v[t, 4, ch], v[t, 5, ch], v[t, 6, ch], v[t, 7, ch] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
                    v[t, 8, ch], v[t, 9, ch], v[t, 10, ch], v[t, 11, ch] = e0 - e2, e1 + e2, e2 - e1, e1 - e3
                    v[t, 12, ch], v[t, 13, ch], v[t, 14, ch], v[t, 15, ch] = f0 - f2, f1 + f2, f2 - f1, f1 - f3


@numba.njit(cache=True, nogil=True, inline="always")
def _clamp(y, lo, hi):
    """``y`` within ``[lo, hi]``; NaN stays NaN (as ``np.clip``)."""
    y = lo if y < lo else y
    return hi if y > hi else y


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _output_transform(m, th, tw, bias, lo, hi, out):
    """``m`` ``[16, N * th * tw, K]`` -> ``out`` ``[N, H_out, W_out, K]`` (``A^T M A + bias``, clipped)."""
    n_img, h_out, w_out, k = out.shape
    for n in range(n_img):
        for ti in range(th):
            for tj in range(tw):
                t = (n * th + ti) * tw + tj
                r, q = 2 * ti, 2 * tj
                for ch in range(k):
                    # rows: A^T M
                    p0 = m[0, t, ch] + m[4, t, ch] + m[8, t, ch]
                    p1 = m[1, t, ch] + m[5, t, ch] + m[9, t, ch]
                    p2 = m[2, t, ch] + m[6, t, ch] + m[10, t, ch]
                    p3 = m[3, t, ch] + m[7, t, ch] + m[11, t, ch]
                    s0 = m[4, t, ch] - m[8, t, ch] - m[12, t, ch]
                    s1 = m[5, t, ch] - m[9, t, ch] - m[13, t, ch]
                    s2 = m[6, t, ch] - m[10, t, ch] - m[14, t, ch]
                    s3 = m[7, t, ch] - m[11, t, ch] - m[15, t, ch]
                    y00 = _clamp(p0 + p1 + p2 + bias[ch], lo, hi)
                    y01 = _clamp(p1 - p2 - p3 + bias[ch], lo, hi)
                    y10 = _clamp(s0 + s1 + s2 + bias[ch], lo, hi)
                    y11 = _clamp(s1 - s2 - s3 + bias[ch], lo, hi)
                    out[n, r, q, ch] = y00
                    if q + 1 < w_out:
                        out[n, r, q + 1, ch] = y01
                    if r + 1 < h_out:
                        out[n, r + 1, q, ch] = y10
                        if q + 1 < w_out:
                            out[n, r + 1, q + 1, ch] = y11


def winograd_3x3(x4: np.ndarray, u: np.ndarray, bias, pads, out_hw, clip=None) -> np.ndarray:
    """``[N, C_in, H, W]`` -> ``[N, C_out, H_out, W_out]`` (a transposed channel-last buffer) for a 3x3,
    stride-1, undilated, ungrouped convolution whose transformed weights are ``u`` ``[16, C_in, C_out]``."""
    n = x4.shape[0]
    h_out, w_out = out_hw
    th, tw = (h_out + 1) // 2, (w_out + 1) // 2
    (pt, pb), (pl, pr) = pads
    hp, wp = x4.shape[2] + pt + pb, x4.shape[3] + pl + pr
    buf = _padded_nhwc(x4, pads, extra=(max(0, 2 * th + 2 - hp), max(0, 2 * tw + 2 - wp)))
    c_in, c_out = u.shape[1], u.shape[2]
    v = np.empty((n * th * tw, 16, c_in), np.float32)
    _input_transform(buf, th, tw, v)
    m = np.matmul(v.transpose(1, 0, 2), u)  # [16, tiles, C_out]; each v[:, p] a strided, BLAS-ready matrix
    b = np.zeros(c_out, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    lo, hi = clip if clip is not None else (-np.inf, np.inf)
    out = np.empty((n, h_out, w_out, c_out), np.float32)
    _output_transform(m, th, tw, b, np.float32(lo), np.float32(hi), out)
    return out.transpose(0, 3, 1, 2)
