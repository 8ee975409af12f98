"""Faster variants of the recurrent layers: compiled step loops, or fewer, larger NumPy passes per step.

The reference classes (``recurrent.py``) take, per time step, one small product per gate
and a dozen fresh arrays. With the default activations (sigmoid gates, tanh) these variants
run ``_lstm_step.lstm_seq`` (input products a few steps at a time, then per step the recursion
product and the gates in one vector kernel) / ``_rnn_kernels.gru_seq``,
without Python in the loop; on two cores a bidirectional LSTM runs its directions on two threads
and the other layers the two halves of the batch. Otherwise the NumPy loops
``_kernels.lstm_sequence``, ``gru_sequence`` and ``rnn_sequence`` (recursion matrices side by
side, each activation applied once to the gates that share it, the [-50, 50] clip of the gate
pre-activations skipped where every gate activation saturates there anyway).
``tests/pipelines/layers/test_fast_paths.py`` checks each against its reference.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels, _lstm_step, _rnn_gemm, _rnn_kernels
from .activation import ACTIVATIONS
from ._blas import n_cpus as _cores  # a module global, so tests can pretend a core count
from .base import register_fast
from .recurrent import GRU, BiDirectionalLSTM, SimpleRecurrent, UniDirectionalLSTM, _out, _sequence, _state

__all__ = ["FastUniDirectionalLSTM", "FastBiDirectionalLSTM", "FastGRU", "FastSimpleRecurrent", "PARALLEL_MIN_WORK",
           "in_rows"]

#: multiply-adds (batch x steps x gates x H x (H + I)) above which a recurrent layer runs on two threads
#: (a bidirectional LSTM its two directions, the others the two halves of the batch): about 0.05 ms
#: of work, against a hand-off of ~10 us (measured round trip to the helper thread)
PARALLEL_MIN_WORK = 4_000_000
_HELPER: list = []
_HELPER_LOCK = threading.Lock()


def _spare_core() -> bool:
    """Whether another core looks free: the machine's 1-minute load average below its core count
    minus 0.5. With every core busy (measured at load 4-9 on 2 cores) the helper thread waits for
    one and the halves take longer than the whole; the results are the same either way (same
    kernels, same sums per row)."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except OSError:  # not available: assume idle
        return True


def _parallel(work: float) -> bool:
    """Whether ``work`` multiply-adds go to two threads (``PARALLEL_MIN_WORK``, two cores, one spare)."""
    return work >= PARALLEL_MIN_WORK and _cores() >= 2 and _spare_core()


def _helper() -> ThreadPoolExecutor:
    """One worker thread, made on first use: a bidirectional LSTM's second direction, or the second half
    of a recurrent layer's batch (``in_rows``)."""
    with _HELPER_LOCK:
        if not _HELPER:
            _HELPER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="pippin-rnn"))
        return _HELPER[0]


class _Act:
    """One ``ActivationParams`` as a float32 callable; ``saturates`` for sigmoid and tanh."""

    def __init__(self, which: str, alpha: float = 0.0, beta: float = 0.0):
        self.fn, self.alpha, self.beta = ACTIVATIONS[which][0], np.float32(alpha), np.float32(beta)
        self.which = which
        self.saturates = which in ("sigmoid", "tanh")

    def __call__(self, x):
        return np.asarray(self.fn(x, self.alpha, self.beta), dtype=np.float32)


def _defaults(acts, *names) -> bool:
    """Whether ``acts`` are exactly ``names`` (the compiled loops of ``_lstm_step``, ``_rnn_kernels`` assume them)."""
    return [a.which for a in acts] == list(names)


def _acts(activations, defaults) -> list[_Act]:
    out = []
    for i, name in enumerate(defaults):
        if i < len(activations):  # the reference's constructor already refused kinds it cannot run
            which = activations[i].WhichOneof("NonlinearityType")
            q = getattr(activations[i], which)
            out.append(_Act(which, getattr(q, "alpha", 0.0), getattr(q, "beta", 0.0)))
        else:
            out.append(_Act(name))
    return out


def _project(xs, w, b):
    """``xs @ w + b`` for ``xs`` ``[N, S, I]``: ``[N, S, G]``, the bias added in place (a second
    array of this size costs more in fresh pages than the product itself)."""
    pre = xs.reshape(-1, xs.shape[2]) @ w
    pre += b
    return pre.reshape(xs.shape[0], xs.shape[1], -1)


def in_rows(n: int, work: float, run) -> None:
    """``run(lo, hi)`` over the batch rows ``0:n``: in two halves, the second on the helper thread
    (``_both``), when ``_parallel(work)`` (rows of a recurrent layer are independent sequences; the
    compiled loops release the GIL)."""
    if n >= 2 and _parallel(work):
        half = n // 2
        _both(lambda: run(0, half), lambda: run(half, n))
    else:
        run(0, n)


def _both(first, second):
    """``(first(), second())``, the second on the helper thread; when the helper has not started it by
    the time the first is done (no free core: a loaded machine), the calling thread runs it itself."""
    pending = _helper().submit(second)
    one = first()
    return one, (second() if pending.cancel() else pending.result())


def _rows2d(xs):
    """``xs`` ``[N, S, I]`` as ``[N * S, I]`` float32 with unit-stride rows (a view when it already is)."""
    return np.ascontiguousarray(xs, np.float32).reshape(-1, xs.shape[2])


class _LSTMPlan:
    """One direction's weights laid out for ``_kernels.lstm_sequence`` and, packed, for ``_lstm_step.lstm_seq``."""

    def __init__(self, weights, activations):
        self.w = np.ascontiguousarray(np.concatenate(weights.w, axis=0).T)  # [I, 4H]
        self.b = np.concatenate(weights.b).astype(np.float32)
        self.r = np.ascontiguousarray(np.concatenate(weights.r, axis=0).T)  # [H, 4H]
        h = self.r.shape[0]  # compiled route: gate columns grouped per LANES units (_lstm_step.gate_layout)
        self.wp = self.bp = self.rp = None  # no units (a 0-wide layer): the plain route's shapes handle it
        if h:
            self.wp, self.bp = _rnn_gemm.pack(_lstm_step.gate_layout(self.w, h)), _lstm_step.gate_layout(self.b, h)
            self.rp = _lstm_step.pack_gates(self.r, h, rows=_lstm_step.hidden_padded(h))
        self.peep = None if weights.p is None else np.ascontiguousarray(np.stack(weights.p), dtype=np.float32)
        self.acts = _acts(activations, ("sigmoid", "tanh", "tanh"))

    def compiled(self, params) -> bool:
        """Whether ``run`` takes ``_lstm_step.lstm_seq`` (no peepholes, not coupled, default activations)."""
        return (self.rp is not None and self.peep is None and not params.coupledInputAndForgetGate
                and _defaults(self.acts, "sigmoid", "tanh", "tanh"))

    def run(self, xs, y0, c0, params, reverse, out=None, col=0):
        """``(outputs [N, S, H], last y [N, H], last c [N, H])``; the compiled route writes the outputs
        into columns ``col:col + H`` of ``out`` when given (both directions side by side) and returns it."""
        if not self.compiled(params):
            return _kernels.lstm_sequence(_project(xs, self.w, self.b), self.r, y0, c0, self.peep,
                                          coupled=bool(params.coupledInputAndForgetGate),
                                          clip_c=params.cellClipThreshold or 50.0, acts=self.acts, reverse=reverse)
        (n, s), h, hp = xs.shape[:2], y0.shape[1], self.rp.shape[1]
        y, c = np.zeros((n, hp), np.float32), np.zeros((n, hp), np.float32)  # padded units stay 0
        y[:, :h], c[:, :h] = y0, c0
        if out is None:
            out = np.empty((n, s, h), np.float32)
        _lstm_step.lstm_seq(np.ascontiguousarray(xs, np.float32), self.wp, self.bp, self.rp, y, c,
                            np.float32(params.cellClipThreshold or 50.0), bool(reverse), out, col, h)
        return out, y[:, :h], c[:, :h]

    def work(self, xs) -> float:
        return xs.shape[0] * xs.shape[1] * self.r.shape[1] * (self.r.shape[0] + self.w.shape[0])


@register_fast("uniDirectionalLSTM")
class FastUniDirectionalLSTM(UniDirectionalLSTM):
    """``uniDirectionalLSTM`` through ``_lstm_step.lstm_seq`` (default activations, no peepholes, not
    coupled: the batch in two halves on two threads when it pays, see ``in_rows``), else
    ``_kernels.lstm_sequence``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.plan = _LSTMPlan(self.weights, list(spec.uniDirectionalLSTM.activations))

    def forward(self, x, h0=None, c0=None):
        p, plan = self.p, self.plan
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        n, h = xs.shape[0], self.n_out
        y0, c0 = _state(h0, n, h), _state(c0, n, h)
        if plan.compiled(p.params):
            ys = np.empty((n, xs.shape[1], h), np.float32)
            y, c = np.empty((n, h), np.float32), np.empty((n, h), np.float32)

            def rows(lo, hi):
                _, y[lo:hi], c[lo:hi] = plan.run(xs[lo:hi], y0[lo:hi], c0[lo:hi], p.params, p.reverseInput, ys[lo:hi])

            in_rows(n, plan.work(xs), rows)
        else:
            ys, y, c = plan.run(xs, y0, c0, p.params, p.reverseInput)
        seq = ys if p.params.sequenceOutput else y[:, None]
        return (_out(seq, x), _out(y[:, None], x), _out(c[:, None], x))[: len(self.outputs)]


@register_fast("biDirectionalLSTM")
class FastBiDirectionalLSTM(BiDirectionalLSTM):
    """``biDirectionalLSTM`` through ``_lstm_step.lstm_seq`` or ``_kernels.lstm_sequence``, once per
    direction; with the compiled loops and a sequence output both directions write into one buffer,
    the backward one on a second thread when ``_parallel``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.biDirectionalLSTM
        self.plans = [_LSTMPlan(self.weights[0], list(p.activationsForwardLSTM)),
                      _LSTMPlan(self.weights[1], list(p.activationsBackwardLSTM))]

    def forward(self, x, hf=None, cf=None, hb=None, cb=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        n, h = xs.shape[0], self.n_out
        args = [(xs, _state(hf, n, h), _state(cf, n, h), p.params, False),
                (xs, _state(hb, n, h), _state(cb, n, h), p.params, True)]
        if not (p.params.sequenceOutput and all(plan.compiled(p.params) for plan in self.plans)):
            return self.outputs_of(x, *(plan.run(*a) for plan, a in zip(self.plans, args)))
        seq = np.empty((n, xs.shape[1], 2 * h), np.float32)  # both directions write their half in place
        runs = [lambda: self.plans[0].run(*args[0], out=seq, col=0),
                lambda: self.plans[1].run(*args[1], out=seq, col=h)]
        if _parallel(2 * self.plans[0].work(xs)):
            forward, backward = _both(*runs)
        else:
            forward, backward = runs[0](), runs[1]()
        return (_out(seq, x), *[_out(s[:, None], x) for s in (*forward[1:], *backward[1:])])[: len(self.outputs)]


@register_fast("gru")
class FastGRU(GRU):
    """``gru`` through ``_rnn_kernels.gru_seq`` (default activations; the batch in two halves on two
    threads when it pays, see ``in_rows``), else ``_kernels.gru_sequence``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.acts = _acts(list(spec.gru.activations), ("sigmoid", "tanh"))
        self.w_all = np.ascontiguousarray(np.concatenate(self.w, axis=0).T)  # [I, 3H]
        self.b_all = np.concatenate(self.b).astype(np.float32)
        self.rzr = np.ascontiguousarray(np.concatenate(self.r[:2], axis=0).T)  # [H, 2H]
        self.ro = np.ascontiguousarray(self.r[2].T)
        # packed: the update and reset gates in columns :2H, the output gate from column P2 = padded(2H)
        h, p2 = self.n_out, _rnn_gemm.padded(2 * self.n_out)
        w = np.zeros((self.n_in, p2 + _rnn_gemm.padded(h)), np.float32)
        w[:, :2 * h], w[:, p2:p2 + h] = self.w_all[:, :2 * h], self.w_all[:, 2 * h:]
        self.wp, self.bp = _rnn_gemm.pack(w), np.zeros(w.shape[1], np.float32)
        self.bp[:2 * h], self.bp[p2:p2 + h] = self.b_all[:2 * h], self.b_all[2 * h:]
        self.rzp, self.rop = _rnn_gemm.pack(self.rzr), _rnn_gemm.pack(self.ro)

    def forward(self, x, h0=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        n, s, h = xs.shape[0], xs.shape[1], self.n_out
        if _defaults(self.acts, "sigmoid", "tanh"):
            y0 = _state(h0, n, h)
            ys, y = np.empty((n, s, h), np.float32), np.array(y0, np.float32, order="C")

            def rows(lo, hi):
                pre = np.empty((hi - lo, s, self.bp.shape[0]), np.float32)
                _rnn_kernels.project(_rows2d(xs[lo:hi]), self.wp, self.bp, pre.reshape((hi - lo) * s, -1))
                _rnn_kernels.gru_seq(pre, self.rzp, self.rop, y[lo:hi], bool(p.reverseInput), ys[lo:hi])

            in_rows(n, n * s * 3 * h * (h + self.n_in), rows)
        else:
            ys, y = _kernels.gru_sequence(_project(xs, self.w_all, self.b_all), self.rzr, self.ro,
                                          _state(h0, n, h), acts=self.acts, reverse=bool(p.reverseInput))
        seq = ys if p.sequenceOutput else y[:, None]
        return (_out(seq, x), _out(y[:, None], x))[: len(self.outputs)]


@register_fast("simpleRecurrent")
class FastSimpleRecurrent(SimpleRecurrent):
    """``simpleRecurrent`` through ``_kernels.rnn_sequence``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.act = _acts([spec.simpleRecurrent.activation], ("tanh",))[0]
        self.rt = np.ascontiguousarray(self.r.T)

    def forward(self, x, h0=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        pre = _project(xs, self.w.T, self.b)
        ys, h = _kernels.rnn_sequence(np.ascontiguousarray(pre, np.float32), self.rt,
                                      _state(h0, xs.shape[0], self.n_out), act=self.act,
                                      reverse=bool(p.reverseInput))
        y = ys if p.sequenceOutput else h[:, None]
        return (_out(y, x), _out(h[:, None], x))[: len(self.outputs)]
