"""A ``loop`` that runs a PyTorch GRU (as coremltools converts one) as one compiled sequence.

coremltools writes ``torch.nn.GRU`` (whose reset gate multiplies the recursion product,
which Core ML's ``gru`` layer does not do) as a while loop over a step counter: the body
gathers step ``t`` of the input and of an output buffer, runs about thirty small layers
(six inner products, the gate sigmoids, the tanh, the blend ``(1 - z) * n + z * h``) and
scatters the new state into the buffer at ``t + 1``. Run layer by layer that is thirty
Python calls per step. ``FastLoop`` recognizes that body at load, by its data flow (not its
layer order or names; every body layer must be part of the cell, or it keeps the plain
loop), and at predict runs all steps but the last through ``_rnn_kernels.gru_lbr_seq``:
one product for the input projections of every step, then one product and one fused gate
pass per step. The last iteration and the final condition run through the reference
``Loop``, so every blob the body writes ends as the plain loop leaves it. Anything the
recognized form does not cover at run time (counters that differ across the batch or are
not integers, indices out of range, other shapes) runs the reference loop, which also
names any error. ``tests/pipelines/layers/test_fast_loop.py`` compares it with the reference.
"""

from __future__ import annotations

import math

import numpy as np

from . import _rnn_gemm, _rnn_kernels
from .base import register_fast
from .control import Loop
from .fast_recurrent import in_rows

__all__ = ["FastLoop", "GRUCell", "match_gru_loop"]


class _NoMatch(Exception):
    pass


class _Body:
    """The body's data flow: the one layer writing each blob; ``used`` collects matched layers."""

    def __init__(self, layers):
        self.layers = layers
        self.position = {id(layer): i for i, layer in enumerate(layers)}
        self.writer: dict[str, object] = {}
        for layer in layers:
            for name in layer.outputs:
                if name in self.writer:
                    raise _NoMatch  # a blob written twice: order-dependent, not a plain cell
                self.writer[name] = layer
        self.used: set[int] = set()

    def take(self, blob: str, kind: str, n_inputs: int):
        layer = self.writer.get(blob)
        if layer is None or layer.kind != kind or len(layer.inputs) != n_inputs or len(layer.outputs) != 1:
            raise _NoMatch
        self.used.add(id(layer))
        return layer

    def either(self, layer, left, right):
        """``(left(a), right(b))`` for the two inputs of a commutative layer, in either order."""
        a, b = layer.inputs
        for p, q in ((a, b), (b, a)):
            saved = set(self.used)
            try:
                return left(p), right(q)
            except _NoMatch:
                self.used = saved
        raise _NoMatch


def _is(condition: bool) -> None:
    if not condition:
        raise _NoMatch


class GRUCell:
    """The recognized loop: blob names, the limit and the weights laid out for ``gru_lbr_seq``."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _step_of(body: _Body, blob: str, source: str, counter: str) -> str:
    """``squeeze(gather(source, counter), axes=[0])`` producing ``blob``; returns ``source``."""
    sq = body.take(blob, "squeeze", 1)
    _is(not sq.p.squeezeAll and list(sq.p.axes) == [0])
    ga = body.take(sq.inputs[0], "gather", 2)
    _is(ga.inputs[1] == counter and int(ga.p.axis) == 0 and (source is None or ga.inputs[0] == source))
    return ga.inputs[0]


def _product(body: _Body, blob: str, src: str):
    ip = body.take(blob, "innerProduct", 1)
    _is(ip.inputs[0] == src and "weights" in ip.params)
    w = np.asarray(ip.params["weights"], np.float32)
    bias = ip.params.get("bias")
    return w, (np.zeros(w.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1))


def _activation(body: _Body, blob: str, which: str):
    layer = body.take(blob, "activation", 1)
    _is(layer.which == which)
    return layer


def _gate(body: _Body, blob: str, which: str, xs: str, hx: str):
    """``which(IP(xs) + IP(hx))``: ``((W_x, b_x), (W_h, b_h))``."""
    add = body.take(_activation(body, blob, which).inputs[0], "add", 2)
    return body.either(add, lambda a: _product(body, a, xs), lambda b: _product(body, b, hx))


def _match(loop: Loop) -> GRUCell:
    _is(not loop.inputs and not loop.signals and loop.condition is not None and len(loop.condition) == 2)
    const, less = loop.condition
    _is(const.kind == "loadConstantND" and const.value.size == 1 and less.kind == "lessThan")
    _is(list(less.inputs)[1:] == list(const.outputs) and list(less.outputs) == [loop.condition_var])
    counter, limit = less.inputs[0], float(const.value.reshape(-1)[0])
    body = _Body(loop.body)
    copies = [layer for layer in loop.body if layer.kind == "copy"]
    _is(len(copies) == 2)
    count_copy = body.take(counter, "copy", 1)
    (buf_copy,) = [c for c in copies if c is not count_copy]
    buffer = buf_copy.outputs[0]
    body.take(buffer, "copy", 1)
    inc = body.take(count_copy.inputs[0], "add", 1)
    _is(inc.inputs[0] == counter and float(inc.p.alpha) == 1.0)
    scatter = body.take(buf_copy.inputs[0], "scatter", 3)
    _is(list(scatter.inputs[:2]) == [buffer, inc.outputs[0]] and int(scatter.p.axis) == 0
        and int(scatter.p.mode) in (0, 1))  # SCATTER or SCATTER_ADD
    expand = body.take(scatter.inputs[2], "expandDims", 1)
    _is(list(expand.p.axes) == [0])
    # h_new = (1 - z) * n + z * h
    cell = {}

    def hx_of(blob):
        _step_of(body, blob, buffer, counter)
        cell.setdefault("hx", blob)
        _is(cell["hx"] == blob)
        return blob

    def one_minus(blob):
        sub = body.take(blob, "add", 2)

        def neg(b):
            layer = _activation(body, b, "linear")
            _is(float(layer.alpha) == -1.0 and float(layer.beta) == 0.0)
            return layer.inputs[0]

        def one(b):
            c = body.take(b, "loadConstantND", 0)
            _is(c.value.size == 1 and float(c.value.reshape(-1)[0]) == 1.0)

        return body.either(sub, neg, one)[0]

    def candidate(blob):  # tanh(IP(xs) + r * IP(hx)); r = sigmoid(IP(xs) + IP(hx))
        add = body.take(_activation(body, blob, "tanh").inputs[0], "add", 2)

        def reset_times(b):
            mul = body.take(b, "multiply", 2)
            return body.either(mul, lambda r: _gate(body, r, "sigmoid", cell["xs"], cell["hx"]),
                               lambda a: _product(body, a, cell["hx"]))

        return body.either(add, lambda a: _product(body, a, cell["xs"]), reset_times)

    def blend(first, second):  # first = (1 - z) * n, second = z * h
        z = body.either(body.take(second, "multiply", 2), lambda b: b, hx_of)[0]
        mul = body.take(first, "multiply", 2)
        return body.either(mul, lambda b: _is(one_minus(b) == z), candidate)[1], z

    top = body.take(expand.inputs[0], "add", 2)
    # the input step: the one squeeze(gather(X, counter)) whose X the body does not write
    saved, sources = set(body.used), []
    for layer in loop.body:
        if layer.kind == "squeeze":
            try:
                source = _step_of(body, layer.outputs[0], None, counter)
            except _NoMatch:
                continue
            if source != buffer and source not in body.writer:
                sources.append((layer.outputs[0], source))
    body.used = saved
    _is(len(sources) == 1)
    (cell["xs"], cell["x"]), = sources
    _step_of(body, cell["xs"], cell["x"], counter)
    ((w_n, b_n), (((w_r, b_r), (u_r, c_r)), (u_n, c_n))), z = _blend_either(body, top, blend)
    (w_z, b_z), (u_z, c_z) = _gate(body, z, "sigmoid", cell["xs"], cell["hx"])
    _is(len(body.used) == len(loop.body))
    _check_order(loop, body, counter, buffer)
    hs, n_in = w_r.shape
    _is(all(m.shape == (hs, hs) for m in (u_r, u_z, u_n)) and all(m.shape == (hs, n_in) for m in (w_z, w_n)))
    _is(all(v.shape == (hs,) for v in (b_r, b_z, b_n, c_r, c_z, c_n)))
    w = np.ascontiguousarray(np.concatenate([w_r, w_z, w_n]).T)  # [I, 3H], gates r, z, n
    b = np.concatenate([b_r, b_z, b_n])
    u = np.ascontiguousarray(np.concatenate([u_r, u_z, u_n]).T)  # [H, 3H]
    bu = np.ascontiguousarray(np.concatenate([c_r, c_z, c_n]))
    return GRUCell(
        counter=counter, buffer=buffer, x=cell["x"], limit=limit, scatter_add=int(scatter.p.mode) == 1,
        w=w, b=b, u=u, bu=bu, hidden=hs,  # and packed / padded for gru_lbr_seq:
        wp=_rnn_gemm.pack(w), bp=_rnn_gemm.pad(b), up=_rnn_gemm.pack(u), bup=_rnn_gemm.pad(bu))


def _blend_either(body: _Body, top, blend):
    """``blend(first, second)`` over the two inputs of the top ``add`` in either order."""
    a, b = top.inputs
    for p, q in ((a, b), (b, a)):
        saved = set(body.used)
        try:
            return blend(p, q)
        except _NoMatch:
            body.used = saved
    raise _NoMatch


def _check_order(loop: Loop, body: _Body, counter: str, buffer: str) -> None:
    """Every blob is written before it is read, except the counter and buffer, read before their copies."""
    for layer in loop.body:
        here = body.position[id(layer)]
        for name in layer.inputs:
            writer = body.writer.get(name)
            if writer is None:
                continue
            if name in (counter, buffer):
                _is(body.position[id(writer)] > here)
            else:
                _is(body.position[id(writer)] < here)


def match_gru_loop(loop: Loop) -> GRUCell | None:
    """The GRU cell of ``loop`` as coremltools writes ``torch.nn.GRU``, or None for any other loop."""
    try:
        return _match(loop)
    except (_NoMatch, ValueError, AttributeError):
        return None


@register_fast("loop")
class FastLoop(Loop):
    """``loop``; a recognized PyTorch GRU body runs as one compiled sequence (see the module docstring)."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.cell = match_gru_loop(self)

    def run_control(self, blobs: dict, *, optional=frozenset()) -> None:
        if self.cell is not None:
            self._run_cell(blobs)
        super().run_control(blobs, optional=optional)

    def _run_cell(self, blobs: dict) -> None:
        """All iterations but the last, in place on ``blobs``; nothing when the form does not hold."""
        g = self.cell
        counter, x, buf = blobs.get(g.counter), blobs.get(g.x), blobs.get(g.buffer)
        if counter is None or x is None or buf is None or counter.ndim != 2 or counter.shape[1] != 1:
            return
        if x.dtype != np.float32 or buf.dtype != np.float32 or x.ndim < 3 or x.shape[0] != buf.shape[0]:
            return
        if counter.shape[0] != x.shape[0] or x.shape[2:-1] != buf.shape[2:-1]:
            return
        if x.shape[-1] != g.w.shape[0] or buf.shape[-1] != g.hidden:
            return
        c0 = float(counter[0, 0])
        if not (np.all(counter == c0) and c0 == int(c0) and c0 >= 0):
            return
        c0 = int(c0)
        steps = max(0, math.ceil(g.limit - c0))
        if int(self.p.maxLoopIterations) and int(self.p.maxLoopIterations) < steps:
            return
        if c0 + steps > x.shape[1] or c0 + steps >= buf.shape[1]:
            return
        s = steps - 1  # the last iteration runs through the reference body
        if s < 1:
            return
        n, rows = x.shape[0], int(np.prod(x.shape[2:-1], dtype=np.int64)) * x.shape[0]
        xs = np.ascontiguousarray(np.moveaxis(x[:, c0:c0 + s], 1, 0), dtype=np.float32).reshape(s, rows, -1)
        y = np.array(buf[:, c0].reshape(rows, g.hidden), dtype=np.float32, order="C")  # a copy: updated in place
        base = np.ascontiguousarray(np.moveaxis(buf[:, c0 + 1:c0 + 1 + s], 1, 0)).reshape(s, rows, g.hidden) \
            if g.scatter_add else np.empty((1, 1, 1), np.float32)
        out = np.empty((s, rows, g.hidden), np.float32)

        def part(lo, hi):  # rows are independent sequences: two halves on two threads when it pays
            whole = hi - lo == rows  # a part gets C-ordered copies: the kernel's loops vectorize on those only
            o = out if whole else np.empty((s, hi - lo, g.hidden), np.float32)
            _rnn_kernels.gru_lbr_seq(xs if whole else np.ascontiguousarray(xs[:, lo:hi]), g.wp, g.bp, g.up, g.bup,
                                     y[lo:hi], np.ascontiguousarray(base[:, lo:hi]) if g.scatter_add and not whole
                                     else base, g.scatter_add, o)
            if not whole:
                out[:, lo:hi] = o

        in_rows(rows, s * rows * 3 * g.hidden * (g.hidden + g.w.shape[0]), part)
        new = np.array(buf, dtype=np.float32)
        new[:, c0 + 1:c0 + 1 + s] = np.moveaxis(out.reshape((s, n) + buf.shape[2:]), 0, 1)
        blobs[g.buffer] = new
        blobs[g.counter] = (counter + np.float32(s)).astype(np.float32)
