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

import numpy as np

from . import _kernels, _rnn_kernels
from .activation import ACTIVATIONS
from .base import register_fast
from .recurrent import GRU, BiDirectionalLSTM, SimpleRecurrent, UniDirectionalLSTM, _out, _sequence, _state

__all__ = ["FastUniDirectionalLSTM", "FastBiDirectionalLSTM", "FastGRU", "FastSimpleRecurrent"]


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

    def run(self, xs, y0, c0, params, reverse):
        pre = _project(xs, self.w, self.b)
        plain = self.peep is None and not params.coupledInputAndForgetGate
        if plain and _defaults(self.acts, "sigmoid", "tanh", "tanh"):
            y, c = np.array(y0, np.float32, order="C"), np.array(c0, np.float32, order="C")
            out = np.empty(pre.shape[:2] + (y.shape[1],), np.float32)
            _rnn_kernels.lstm_seq(pre, self.r, y, c, np.float32(params.cellClipThreshold or 50.0), bool(reverse), out)
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
    """``biDirectionalLSTM`` through ``_kernels.lstm_sequence``, once per direction."""

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.biDirectionalLSTM
        self.plans = [_LSTMPlan(self.weights[0], list(p.activationsForwardLSTM)),
                      _LSTMPlan(self.weights[1], list(p.activationsBackwardLSTM))]

    def forward(self, x, hf=None, cf=None, hb=None, cb=None):
        p = self.p
        xs = _sequence(np.asarray(x, np.float32), self.n_in)
        n, h = xs.shape[0], self.n_out
        forward = self.plans[0].run(xs, _state(hf, n, h), _state(cf, n, h), p.params, False)
        backward = self.plans[1].run(xs, _state(hb, n, h), _state(cb, n, h), p.params, True)
        return self.outputs_of(x, forward, backward)


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
