"""Convolution without im2col: one accumulating BLAS product per kernel tap.

In a zero-padded channel-last input flattened to ``[rows, C_in]`` (rows = pixels in order),
the pixels kernel tap ``(i, j)`` reads for the outputs of a whole row band form one
contiguous run, shifted by the tap's offset, when the stride is 1. For stride ``s`` the same
holds in each of the ``s x s`` phase images ``buf[:, a::s, b::s]`` (tap ``(i, j)`` reads phase
``(i d mod s, j d mod s)`` at offset ``(i d div s, j d div s)``). So the convolution is
``sum_ij run_ij @ W_ij`` computed on a ``H_out x W_phase`` grid (the extra columns are
dropped at the end), and ``sgemm`` with ``beta = 1`` (``_sgemm.gemm_rows``: the GIL released, so
the parts of a split batch run their products at the same time) adds each tap's product into the same
buffer: no ``kH kW``-times larger patch matrix, no temporary per tap. The runs of all images
are one run when the rows between images waste little (else one product per image).
Called by ``fast.conv_infer``; ``test_fast_paths.py`` compares it with ``conv2d_forward``.
"""

from __future__ import annotations

import numpy as np

from . import _rnn_gemm
from ._sgemm import gemm_rows
from .conv import _padded_nhwc

__all__ = ["conv_taps"]

#: whole-batch runs while the rows between images are at most this share of the rows computed
WASTE = 0.15
#: up to this many output channels (a multiple of ``_rnn_gemm.PANEL``) the tap products take
#: ``_rnn_gemm.matmul_packed``: for ``[13456, 128] @ [128, 32]`` (DenseNet's 3x3 growth convolutions)
#: 0.76 ms against OpenBLAS's 0.88 per tap; from 128 outputs OpenBLAS is faster
PACKED_MAX_OUT = 32


def conv_taps(x4, weights, bias, pads, stride, dilation, out_hw, clip=None) -> np.ndarray:
    """``[N, C_in, H, W]`` -> ``[N, C_out, H_out, W_out]`` (a transposed channel-last buffer), then
    ``clip(lo, hi)`` when given; ``weights`` ``[C_out, C_in, kH, kW]`` (one group)."""
    c_out, c_in, kh, kw = weights.shape
    (sh, sw), (dh, dw) = stride, dilation
    n = x4.shape[0]
    h_out, w_out = out_hw
    (pt, pb), (pl, pr) = pads
    hp, wp = x4.shape[2] + pt + pb, x4.shape[3] + pl + pr
    # round the padded size up to whole phases, plus one phase row the last run overhangs into
    extra_h, extra_w = (-hp) % sh + sh, (-wp) % sw
    buf = _padded_nhwc(x4, pads, extra=(extra_h, extra_w))
    hph, wph = buf.shape[1] // sh, buf.shape[2] // sw
    taps = np.ascontiguousarray(weights.transpose(2, 3, 1, 0))  # [kH, kW, C_in, C_out]
    plan: dict[tuple, list] = {}
    for i in range(kh):
        for j in range(kw):
            plan.setdefault(((i * dh) % sh, (j * dw) % sw), []).append((i, j, (i * dh) // sh, (j * dw) // sw))
    per_image = hph * wph
    length = h_out * wph
    whole = (per_image - length) <= WASTE * per_image
    acc = np.empty((n * per_image, c_out), np.float32)
    packed = c_out % _rnn_gemm.PANEL == 0 and c_out <= PACKED_MAX_OUT
    zeros = np.zeros(c_out, np.float32)
    first = True
    for (a, b), tap_list in plan.items():
        phase = buf if (sh, sw) == (1, 1) else np.ascontiguousarray(buf[:, a::sh, b::sw])
        flat = phase.reshape(n * per_image, c_in)
        for i, j, oi, oj in tap_list:
            w_tap = _rnn_gemm.pack(taps[i, j]) if packed else taps[i, j]  # [C_in, C_out], C order
            start = oi * wph + oj
            spans = [(0, (n - 1) * per_image + length)] if whole else [(k * per_image, length) for k in range(n)]
            for base, count in spans:
                rows, out = flat[base + start:base + start + count], acc[base:base + count]
                if packed:  # the sums start from zero, then from the rows' own partial sums
                    _rnn_gemm.matmul_packed(rows, w_tap, out, zeros if first else out, 0, 0 if first else c_out)
                else:
                    gemm_rows(rows, w_tap, out, 0.0 if first else 1.0)
            first = False
    view = acc.reshape(n, hph, wph, c_out)[:, :h_out, :w_out]
    out = np.empty((n, h_out, w_out, c_out), np.float32)
    if bias is not None:
        np.add(view, bias, out=out)
    else:
        np.copyto(out, view)
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out.transpose(0, 3, 1, 2)
