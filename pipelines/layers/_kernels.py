"""Fused one-pass kernels for the training hot spots of channel-last activations.

Why by hand: NumPy runs each elementwise step as its own pass over memory, and
batchnorm statistics and gradients, the ReLU mask, max pooling that remembers
its argmax and the col2im scatter of a convolution's input gradient take several
passes each (a dozen for pooling); no well-kept library
offers these fused steps on NumPy arrays (PyTorch is only a test oracle here).
numba (already a dependency) compiles each into a single pass; measured 3 to 20
times faster than the NumPy sequence on this project's CNN. They are serial:
numba's parallel loops cost more than they save on 2 cores. They release the GIL
(``nogil``), so the training engine's threads (``pipelines.update.shards``) run
them on every core at once.
Every kernel takes C-contiguous arrays whose last axis is the channel: a
convolution's ``[N, C, H, W]`` output is such an array seen through a transpose
(see ``conv.py``). Only the faster layer variants of ``fast.py`` and
``fast_recurrent.py`` call them (the reference classes stay plain NumPy), and they fall
back to the reference code for any other memory layout. Inference adds the depthwise
convolution and the exact GELU; the recurrent step loops at the end are plain NumPy
(see the note there).
"""

from __future__ import annotations


import numba
import numpy as np

__all__ = ["channel_last", "channel_sums", "affine", "bn_input_grad", "relu", "relu_grad", "col2im_nhwc",
           "maxpool2_train", "maxpool2_grad", "depthwise_nhwc", "scale_channels", "lstm_sequence", "gru_sequence",
           "rnn_sequence"]


def channel_last(x4: np.ndarray) -> np.ndarray | None:
    """The ``[N, H, W, C]`` C-contiguous array behind ``x4`` ``[N, C, H, W]``, or None."""
    view = x4.transpose(0, 2, 3, 1)
    return view if view.flags.c_contiguous else None


@numba.njit(cache=True, nogil=True, fastmath=True)
def _sums(a, b):
    m, c = a.shape
    s1, s2 = np.zeros(c, np.float64), np.zeros(c, np.float64)
    blk1, blk2 = np.zeros(c, np.float32), np.zeros(c, np.float32)
    for i in range(m):
        for j in range(c):
            blk1[j] += a[i, j]
            blk2[j] += a[i, j] * b[i, j]
        if (i & 255) == 255:  # float32 over 256 rows, float64 across blocks
            for j in range(c):
                s1[j] += blk1[j]
                s2[j] += blk2[j]
                blk1[j] = 0
                blk2[j] = 0
    for j in range(c):
        s1[j] += blk1[j]
        s2[j] += blk2[j]
    return s1, s2


def channel_sums(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(sum(a), sum(a * b))`` of ``[M, C]`` float32 arrays, as float64."""
    return _sums(a, b)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _affine(x, scale, shift, out):
    m, c = x.shape
    for i in range(m):
        for j in range(c):
            out[i, j] = x[i, j] * scale[j] + shift[j]


def affine(x2: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x2 * scale + shift`` per channel, ``[M, C]``."""
    out = np.empty_like(x2)
    _affine(x2, np.ascontiguousarray(scale, np.float32), np.ascontiguousarray(shift, np.float32), out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _bn_grad(g, x, a, b, c0, out):
    m, c = g.shape
    for i in range(m):
        for j in range(c):
            out[i, j] = g[i, j] * a[j] + x[i, j] * b[j] + c0[j]


def bn_input_grad(g2, x2, a, b, c):
    """``g * a + x * b + c`` per channel, ``[M, C]``."""
    out = np.empty_like(g2)
    f32 = np.float32
    _bn_grad(g2, x2, a.astype(f32), b.astype(f32), c.astype(f32), out)
    return out


@numba.njit(cache=True, nogil=True)
def _relu_grad(g, y, out):
    for i in range(g.size):
        out[i] = g[i] if y[i] > 0 else np.float32(0)


@numba.njit(cache=True, nogil=True)
def _relu(x, out):
    for i in range(x.size):
        out[i] = x[i] if x[i] > 0 else np.float32(0)


def relu(x: np.ndarray) -> np.ndarray | None:
    """``max(x, 0)`` in ``x``'s own dense memory order, or None for other arrays."""
    return relu_grad(x, x, _unary=True)


def relu_grad(g: np.ndarray, y: np.ndarray, *, _unary: bool = False) -> np.ndarray | None:
    """``g * (y > 0)`` when both are float32 in the same dense memory order; else None."""
    if g.dtype != np.float32 or y.dtype != np.float32 or g.shape != y.shape or g.size == 0:
        return None
    squeezed = tuple(d for d in g.shape if d != 1)  # unit axes carry arbitrary strides
    gv, yv = g.reshape(squeezed), y.reshape(squeezed)
    if gv.strides != yv.strides:
        return None
    perm = np.argsort([-s for s in gv.strides], kind="stable")
    gp, yp = gv.transpose(perm), yv.transpose(perm)
    if not (gp.flags.c_contiguous and yp.flags.c_contiguous):
        return None
    out = np.empty_like(gp)
    if _unary:
        _relu(gp.reshape(-1), out.reshape(-1))
    else:
        _relu_grad(gp.reshape(-1), yp.reshape(-1), out.reshape(-1))
    return out.transpose(np.argsort(perm)).reshape(g.shape)


@numba.njit(cache=True, nogil=True)
def col2im_nhwc(cols, buf, stride_h, stride_w, dil_h, dil_w):
    """``buf[n, r*s + i*d, q*s + j*d, c] += cols[n, r, q, i, j, c]`` (the transpose of im2col)."""
    n, ho, wo, kh, kw, c = cols.shape
    for b in range(n):
        for r in range(ho):
            for q in range(wo):
                for i in range(kh):
                    row = r * stride_h + i * dil_h
                    for j in range(kw):
                        col = q * stride_w + j * dil_w
                        for ch in range(c):
                            buf[b, row, col, ch] += cols[b, r, q, i, j, ch]


@numba.njit(cache=True, nogil=True)
def _maxpool2(x, y, idx):
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    for p in range(n * ho):
        b, i = p // ho, p % ho
        for j in range(wo):
            for ch in range(c):
                best = x[b, 2 * i, 2 * j, ch]
                arg = 0
                v = x[b, 2 * i, 2 * j + 1, ch]
                if v > best:
                    best, arg = v, 1
                v = x[b, 2 * i + 1, 2 * j, ch]
                if v > best:
                    best, arg = v, 2
                v = x[b, 2 * i + 1, 2 * j + 1, ch]
                if v > best:
                    best, arg = v, 3
                y[b, i, j, ch] = best
                idx[b, i, j, ch] = arg


def maxpool2_train(x_nhwc: np.ndarray):
    """2x2/stride-2 max pooling of ``[N, H, W, C]`` (even H, W): ``(y, argmax in 0..3)``; first maximum wins."""
    n, h, w, c = x_nhwc.shape
    y = np.empty((n, h // 2, w // 2, c), dtype=np.float32)
    idx = np.empty((n, h // 2, w // 2, c), dtype=np.uint8)
    _maxpool2(x_nhwc, y, idx)
    return y, idx


@numba.njit(cache=True, nogil=True)
def _maxpool2_grad(g, idx, out):
    n, ho, wo, c = g.shape
    for p in range(n * ho):
        b, i = p // ho, p % ho
        for j in range(wo):
            for ch in range(c):
                a = idx[b, i, j, ch]
                v = g[b, i, j, ch]
                out[b, 2 * i, 2 * j, ch] = v if a == 0 else np.float32(0)
                out[b, 2 * i, 2 * j + 1, ch] = v if a == 1 else np.float32(0)
                out[b, 2 * i + 1, 2 * j, ch] = v if a == 2 else np.float32(0)
                out[b, 2 * i + 1, 2 * j + 1, ch] = v if a == 3 else np.float32(0)


def maxpool2_grad(g_nhwc: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Gradient of ``maxpool2_train``: ``[N, H, W, C]`` from ``[N, H/2, W/2, C]``."""
    n, ho, wo, c = g_nhwc.shape
    out = np.empty((n, 2 * ho, 2 * wo, c), dtype=np.float32)
    _maxpool2_grad(np.ascontiguousarray(g_nhwc), idx, out)
    return out


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _depthwise(x, w, b, sh, sw, dh, dw, pt, pl, lo, hi, acc, out):
    """One output row at a time into ``acc`` ``[W_out, C]`` (stays in L1): per tap a pass over the
    row's pixels whose inner loop runs along the contiguous channels; taps outside the image skipped
    (the zero padding adds nothing), so the input is read in place, unpadded."""
    n, h, wi, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    for bi in range(n):
        for r in range(ho):
            acc[:] = 0
            for i in range(kh):
                y = r * sh + i * dh - pt
                if y < 0 or y >= h:
                    continue
                xrow = x[bi, y]
                for j in range(kw):
                    wr = w[i, j]
                    for q in range(wo):
                        col = q * sw + j * dw - pl
                        if col < 0 or col >= wi:
                            continue
                        a, xv = acc[q], xrow[col]
                        for ch in range(c):
                            a[ch] += xv[ch] * wr[ch]
            orow = out[bi, r]
            for q in range(wo):
                a, o = acc[q], orow[q]
                for ch in range(c):
                    o[ch] = min(max(a[ch] + b[ch], lo), hi)


def depthwise_nhwc(x_cl: np.ndarray, w: np.ndarray, bias: np.ndarray, pads, out_hw, stride, dilation,
                   clip=(-np.inf, np.inf)) -> np.ndarray:
    """Depthwise 2-D cross-correlation of a channel-last ``[N, H, W, C]`` input, zero-padded by ``pads``.

    ``out[n, r, q, c] = clip(sum_ij xp[n, r*s + i*d, q*s + j*d, c] * w[i, j, c] + bias[c])``
    with ``xp`` the padded input (never built) and ``w`` ``[kH, kW, C]``; returns
    ``[N, H_out, W_out, C]`` (the clip bounds fold a following ReLU or clip into the same pass).
    Against the padded copy plus kernel it replaces (CPU ms, one thread, batch 4, 3x3): 96 channels
    112 -> 56 at stride 2 2.75 -> 1.6, 144 channels at 56x56 2.0 -> 1.8 (EfficientNet-B0 101 -> 94).
    """
    x_cl = np.ascontiguousarray(x_cl, np.float32)
    n, c = x_cl.shape[0], x_cl.shape[3]
    out = np.empty((n, out_hw[0], out_hw[1], c), dtype=np.float32)
    acc = np.empty((out_hw[1], c), dtype=np.float32)
    _depthwise(x_cl, np.ascontiguousarray(w, np.float32), np.ascontiguousarray(bias, np.float32), stride[0],
               stride[1], dilation[0], dilation[1], pads[0][0], pads[1][0], np.float32(clip[0]),
               np.float32(clip[1]), acc, out)
    return out


@numba.njit(cache=True, nogil=True)
def _scale_channels(x, s, out):
    n, p, c = x.shape
    for b in range(n):
        sv = s[b]
        for i in range(p):
            xr, o = x[b, i], out[b, i]
            for ch in range(c):
                o[ch] = xr[ch] * sv[ch]


def scale_channels(x_cl: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``x_cl[n, h, w, c] * s[n, c]`` for a channel-last ``[N, H, W, C]`` buffer (squeeze-excitation's
    product; NumPy's broadcast loop over 1 x C rows took 1.5x as long); returns ``[N, H, W, C]``."""
    n, h, w, c = x_cl.shape
    out = np.empty((n, h, w, c), np.float32)
    _scale_channels(x_cl.reshape(n, h * w, c), np.ascontiguousarray(s, np.float32).reshape(n, c),
                    out.reshape(n, h * w, c))
    return out


# -- recurrent sequences --------------------------------------------------------------------
# Plain NumPy on purpose: per step one product with the recursion matrices side by side and a
# dozen in-place passes over [N, gates * H]. A numba loop over the steps was measured 15-25x
# slower (its scalar tanh/exp against NumPy's SIMD ones), and the Python cost per step is a few us.

def _saturating(*fns) -> bool:
    return all(getattr(fn, "saturates", False) for fn in fns)


def lstm_sequence(pre, r, y0, c0, peep, *, coupled, clip_c, acts, reverse):
    """One LSTM direction over ``pre`` ``[N, S, 4H]`` (``x W^T + b``, gates i, f, z, o), with
    ``r`` ``[H, 4H]`` (the recursion matrices transposed, side by side), ``peep`` ``[3, H]`` or
    None and ``acts = (f, g, h)``: ``(outputs [N, S, H], y [N, H], c [N, H])``.

    The gate pre-activations are clipped to [-50, 50] unless every gate activation saturates
    there anyway (sigmoid, tanh: the clip cannot change a float32 result).
    """
    f, g, h = acts
    n, s, h4 = pre.shape
    hs = h4 // 4
    clip_gates = not _saturating(f, g)
    y, c = np.array(y0, np.float32), np.array(c0, np.float32)
    out = np.empty((n, s, hs), np.float32)
    a = np.empty((n, h4), np.float32)
    lo, hi, clip_c = np.float32(-50), np.float32(50), np.float32(clip_c)
    for t in (range(s - 1, -1, -1) if reverse else range(s)):
        np.matmul(y, r, out=a)
        a += pre[:, t]
        if peep is not None:
            a[:, :hs] += peep[0] * c
            a[:, hs:2 * hs] += peep[1] * c
        if clip_gates:
            np.clip(a, lo, hi, out=a)
        i_f = f(a[:, :2 * hs])
        z = g(a[:, 2 * hs:3 * hs])
        if coupled:
            c = c * (1 - i_f[:, :hs]) + i_f[:, :hs] * z
        else:
            c = c * i_f[:, hs:] + i_f[:, :hs] * z
        np.clip(c, -clip_c, clip_c, out=c)
        o = a[:, 3 * hs:]
        if peep is not None:
            o = o + peep[2] * c
            if clip_gates:
                np.clip(o, lo, hi, out=o)
        y = h(c) * f(o)
        out[:, t] = y
    return out, y, c


def gru_sequence(pre, rzr, ro, y0, *, acts, reverse):
    """A GRU over ``pre`` ``[N, S, 3H]`` (gates z, r, o) with ``rzr`` ``[H, 2H]`` (update and reset
    recursion matrices, transposed) and ``ro`` ``[H, H]``: ``(outputs [N, S, H], y [N, H])``."""
    f, g = acts
    n, s, h3 = pre.shape
    hs = h3 // 3
    clip_gates = not _saturating(f, g)
    y = np.array(y0, np.float32)
    out = np.empty((n, s, hs), np.float32)
    a = np.empty((n, 2 * hs), np.float32)
    b = np.empty((n, hs), np.float32)
    lo, hi = np.float32(-50), np.float32(50)
    for t in (range(s - 1, -1, -1) if reverse else range(s)):
        np.matmul(y, rzr, out=a)
        a += pre[:, t, :2 * hs]
        if clip_gates:
            np.clip(a, lo, hi, out=a)
        zr = f(a)
        np.matmul(zr[:, hs:] * y, ro, out=b)
        b += pre[:, t, 2 * hs:]
        if clip_gates:
            np.clip(b, lo, hi, out=b)
        z = zr[:, :hs]
        y = ((1 - z) * g(b) + z * y).astype(np.float32)
        out[:, t] = y
    return out, y


def rnn_sequence(pre, r, y0, *, act, reverse):
    """``h_t = act(clip(pre_t + h_{t-1} r))`` over ``pre`` ``[N, S, H]``: ``(outputs, h)``."""
    n, s, hs = pre.shape
    clip_gates = not _saturating(act)
    y = np.array(y0, np.float32)
    out = np.empty((n, s, hs), np.float32)
    a = np.empty((n, hs), np.float32)
    for t in (range(s - 1, -1, -1) if reverse else range(s)):
        np.matmul(y, r, out=a)
        a += pre[:, t]
        if clip_gates:
            np.clip(a, np.float32(-50), np.float32(50), out=a)
        y = act(a)
        out[:, t] = y
    return out, y
