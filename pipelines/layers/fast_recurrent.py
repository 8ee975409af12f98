"""Faster variants of the recurrent layers: fewer, larger NumPy passes per time step.

The reference classes (``recurrent.py``) take, per time step, one small product per gate
and a dozen fresh arrays. These variants put the recursion matrices side by side (one
product per step, written into a reused buffer), apply each activation once to all the
gates that share it and skip the [-50, 50] clip of the gate pre-activations where every
gate activation saturates there anyway (sigmoid, tanh); the step loops are
``_kernels.lstm_sequence``, ``gru_sequence`` and ``rnn_sequence``.
``tests/pipelines/layers/test_fast_paths.py`` checks each against its reference.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels, _rnn_kernels
from .activation import ACTIVATIONS
from .base import register_fast
from .recurrent import GRU, BiDirectionalLSTM, SimpleRecurrent, UniDirectionalLSTM, _out, _sequence, _state

__all__ = ["FastUniDirectionalLSTM", "FastBiDirectionalLSTM", "FastGRU", "FastSimpleRecurrent", "PARALLEL_MIN_WORK"]

#: multiply-adds (batch x steps x 4H x (H + I)) above which a bidirectional LSTM runs its two
#: directions on two threads: about 0.1 ms of work, against a hand-off of some 20-50 us
PARALLEL_MIN_WORK = 4_000_000
_HELPER: list = []
_HELPER_LOCK = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _helper() -> ThreadPoolExecutor:
    """One worker thread, made on first use, for the second direction of a bidirectional layer."""
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
    """Whether ``acts`` are exactly ``names`` (the compiled loops of ``_rnn_kernels`` hard-code them)."""
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


class _LSTMPlan:
    """One direction's weights laid out for ``_kernels.lstm_sequence``."""

    def __init__(self, weights, activations):
        self.w = np.ascontiguousarray(np.concatenate(weights.w, axis=0).T)  # [I, 4H]
        self.b = np.concatenate(weights.b).astype(np.float32)
        self.r = np.ascontiguousarray(np.concatenate(weights.r, axis=0).T)  # [H, 4H]
        self.peep = None if weights.p is None else np.ascontiguousarray(np.stack(weights.p), dtype=np.float32)
        self.acts = _acts(activations, ("sigmoid", "tanh", "tanh"))

    def compiled(self, params) -> bool:
        """Whether ``run`` takes ``_rnn_kernels.lstm_seq`` (no peepholes, not coupled, default activations)."""
        return (self.peep is None and not params.coupledInputAndForgetGate
                and _defaults(self.acts, "sigmoid", "tanh", "tanh"))

    def run(self, xs, y0, c0, params, reverse, out=None, col=0):
        """``(outputs [N, S, H], last y [N, H], last c [N, H])``; the compiled route writes the outputs
        into columns ``col:col + H`` of ``out`` when given (both directions side by side) and returns it."""
        pre = _project(xs, self.w, self.b)
        if self.compiled(params):
            y, c = np.array(y0, np.float32, order="C"), np.array(c0, np.float32, order="C")
            if out is None:
                out = np.empty(pre.shape[:2] + (y.shape[1],), np.float32)
            _rnn_kernels.lstm_seq(pre, self.r, y, c, np.float32(params.cellClipThreshold or 50.0), bool(reverse), out,
                                  col)
            return out, y, c
        return _kernels.lstm_sequence(pre, self.r, y0, c0, self.peep, coupled=bool(params.coupledInputAndForgetGate),
                                      clip_c=params.cellClipThreshold or 50.0, acts=self.acts, reverse=reverse)


@register_fast("uniDirectionalLSTM")
class FastUniDirectionalLSTM(UniDirectionalLSTM):
    """``uniDirectionalLSTM`` through ``_kernels.lstm_sequence``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.plan = _LSTMPlan(self.weights, list(spec.uniDirectionalLSTM.activations))

    def forward(self, x, h0=None, c0=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        n = xs.shape[0]
        ys, y, c = self.plan.run(xs, _state(h0, n, self.n_out), _state(c0, n, self.n_out), p.params, p.reverseInput)
        seq = ys if p.params.sequenceOutput else y[:, None]
        return (_out(seq, x), _out(y[:, None], x), _out(c[:, None], x))[: len(self.outputs)]


@register_fast("biDirectionalLSTM")
class FastBiDirectionalLSTM(BiDirectionalLSTM):
    """``biDirectionalLSTM`` through ``_kernels.lstm_sequence``, once per direction; with the compiled
    loops and a sequence output both directions write into one buffer, the backward one on a second
    thread when the process may use two cores and the work is large enough (``PARALLEL_MIN_WORK``)."""

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
        if n * xs.shape[1] * h * 4 * (h + self.n_in) >= PARALLEL_MIN_WORK and _cores() >= 2:
            backward = _helper().submit(runs[1])  # the compiled loops release the GIL
            forward = runs[0]()
            backward = backward.result()
        else:
            forward, backward = runs[0](), runs[1]()
        return (_out(seq, x), *[_out(s[:, None], x) for s in (*forward[1:], *backward[1:])])[: len(self.outputs)]


@register_fast("gru")
class FastGRU(GRU):
    """``gru`` through ``_kernels.gru_sequence``."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        self.acts = _acts(list(spec.gru.activations), ("sigmoid", "tanh"))
        self.w_all = np.ascontiguousarray(np.concatenate(self.w, axis=0).T)  # [I, 3H]
        self.b_all = np.concatenate(self.b).astype(np.float32)
        self.rzr = np.ascontiguousarray(np.concatenate(self.r[:2], axis=0).T)  # [H, 2H]
        self.ro = np.ascontiguousarray(self.r[2].T)

    def forward(self, x, h0=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        pre = _project(xs, self.w_all, self.b_all)
        if _defaults(self.acts, "sigmoid", "tanh"):
            y = np.array(_state(h0, xs.shape[0], self.n_out), np.float32, order="C")
            ys = np.empty(pre.shape[:2] + (self.n_out,), np.float32)
            _rnn_kernels.gru_seq(pre, self.rzr, self.ro, y, bool(p.reverseInput), ys)
        else:
            ys, y = _kernels.gru_sequence(pre, self.rzr, self.ro, _state(h0, xs.shape[0], self.n_out),
                                      acts=self.acts, reverse=bool(p.reverseInput))
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
