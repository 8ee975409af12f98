"""Recurrent layers: simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM.

Inputs ``[x, h0 (, c0)]`` and outputs ``[y, h (, c)]`` as NeuralNetwork.proto defines
them; x is ``[N, Seq, inputVectorSize, 1, 1]`` (our batch first; under the ND mapping a
rank-5 example ``[Seq, 1, inputVectorSize, 1, 1]``), y is ``[N, Seq or 1, outputVectorSize, 1, 1]``
(the same layout as x). Missing initial states are zeros. The time
loop is inherent to recurrence; every step is vectorized over the batch. Gate
pre-activations are clipped to [-50, 50] as the spec says.
"""

from __future__ import annotations

import numpy as np

from .activation import ACTIVATIONS
from .base import Layer, register
from .common import weights_of

CLIP = 50.0


def activation_function(params, layer=None, field="activation"):
    """A callable for one ``ActivationParams`` (scalar alpha/beta kinds)."""
    which = params.WhichOneof("NonlinearityType")
    if which not in ACTIVATIONS or which in ("PReLU", "parametricSoftplus"):
        raise layer.error(f"activation {which!r} is not one a recurrent layer takes", field)
    q = getattr(params, which)
    alpha, beta = np.float32(getattr(q, "alpha", 0.0)), np.float32(getattr(q, "beta", 0.0))
    fn = ACTIVATIONS[which][0]
    return lambda x: np.asarray(fn(x, alpha, beta), dtype=np.float32)


def _clip(x):
    return np.clip(x, -CLIP, CLIP)


def _sequence(x: np.ndarray, n_in: int) -> np.ndarray:
    return x.reshape(x.shape[0], -1, n_in)


def _state(blob, n: int, size: int) -> np.ndarray:
    return np.zeros((n, size), np.float32) if blob is None else blob.reshape(n, size).astype(np.float32)


def _out(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """[N, S, H] back to the input's layout: its sequence axis (1) and vector axis (-3)
    replaced ([N, S, H, 1, 1] under rank-5; [N, S, 1, H, 1, 1] for a rank-5 example under ND)."""
    if like.ndim < 4:
        return y
    shape = list(like.shape)
    shape[1], shape[-3] = y.shape[1], y.shape[2]
    return y.reshape(shape)


def _gate_weights(layer, p, names, n_out, n_in, *, kind_prefix=""):
    return [weights_of(layer, f"{kind_prefix}{name}", getattr(p, name), shape=(n_out, n_in)) for name in names]


def simple_rnn(xs, h, w, r, b, act, *, reverse: bool):
    """``h_t = act(clip(W x_t + R h_{t-1} + b))`` over the sequence axis of ``xs`` [N, S, I]."""
    steps = range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])
    pre = xs @ w.T + b
    outs = [None] * xs.shape[1]
    for t in steps:
        h = act(_clip(pre[:, t] + h @ r.T))
        outs[t] = h
    return np.stack(outs, axis=1), h


@register
class SimpleRecurrent(Layer):
    """``y_t = f(clip(W x_t + R y_{t-1} + b))``."""

    kind = "simpleRecurrent"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.simpleRecurrent
        self.n_in, self.n_out = int(p.inputVectorSize), int(p.outputVectorSize)
        self.w = weights_of(self, "weightMatrix", p.weightMatrix, shape=(self.n_out, self.n_in))
        self.r = weights_of(self, "recursionMatrix", p.recursionMatrix, shape=(self.n_out, self.n_out))
        self.b = weights_of(self, "biasVector", p.biasVector, shape=(self.n_out,)) if p.hasBiasVector \
            else np.zeros(self.n_out, np.float32)
        self.act = activation_function(p.activation, self)

    def forward(self, x, h0=None):
        p = self.p
        xs = _sequence(x, self.n_in)
        ys, h = simple_rnn(xs, _state(h0, xs.shape[0], self.n_out), self.w, self.r, self.b, self.act,
                           reverse=p.reverseInput)
        y = ys if p.sequenceOutput else h[:, None]
        return (_out(y, x), _out(h[:, None], x))[: len(self.outputs)]


@register
class GRU(Layer):
    """``z = f(W_z x + R_z y + b_z)``, ``r = f(W_r x + R_r y + b_r)``,
    ``o = g(W_o x + R_o (r * y) + b_o)``, ``y' = (1 - z) * o + z * y``."""

    kind = "gru"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.gru
        self.n_in, self.n_out = int(p.inputVectorSize), int(p.outputVectorSize)
        h = self.n_out
        self.w = _gate_weights(self, p, ["updateGateWeightMatrix", "resetGateWeightMatrix",
                                         "outputGateWeightMatrix"], h, self.n_in)
        self.r = _gate_weights(self, p, ["updateGateRecursionMatrix", "resetGateRecursionMatrix",
                                         "outputGateRecursionMatrix"], h, h)
        if p.hasBiasVectors:
            self.b = [weights_of(self, n, getattr(p, n), shape=(h,)) for n in
                      ("updateGateBiasVector", "resetGateBiasVector", "outputGateBiasVector")]
        else:
            self.b = [np.zeros(h, np.float32)] * 3
        acts = list(p.activations)
        sigmoid = ACTIVATIONS["sigmoid"][0]
        self.f = activation_function(acts[0], self, "activations") if acts else (lambda v: sigmoid(v, 0, 0))
        self.g = activation_function(acts[1], self, "activations") if len(acts) > 1 else np.tanh

    def forward(self, x, h0=None):
        p = self.p
        xs = _sequence(x, self.n_in)
        y = _state(h0, xs.shape[0], self.n_out)
        pre = [xs @ w.T + b for w, b in zip(self.w, self.b)]
        steps = range(xs.shape[1] - 1, -1, -1) if p.reverseInput else range(xs.shape[1])
        outs = [None] * xs.shape[1]
        for t in steps:
            z = self.f(_clip(pre[0][:, t] + y @ self.r[0].T))
            r = self.f(_clip(pre[1][:, t] + y @ self.r[1].T))
            o = self.g(_clip(pre[2][:, t] + (r * y) @ self.r[2].T))
            y = ((1 - z) * o + z * y).astype(np.float32)
            outs[t] = y
        seq = np.stack(outs, axis=1) if p.sequenceOutput else y[:, None]
        return (_out(seq, x), _out(y[:, None], x))[: len(self.outputs)]


_LSTM_GATES = ("inputGate", "forgetGate", "blockInput", "outputGate")


class _LSTMWeights:
    """W, R, b (and peepholes) of one LSTM direction, gates in order i, f, z, o."""

    def __init__(self, layer, weights, params, n_in, n_out, prefix):
        self.w = [weights_of(layer, f"{prefix}{g}WeightMatrix", getattr(weights, f"{g}WeightMatrix"),
                             shape=(n_out, n_in)) for g in _LSTM_GATES]
        self.r = [weights_of(layer, f"{prefix}{g}RecursionMatrix", getattr(weights, f"{g}RecursionMatrix"),
                             shape=(n_out, n_out)) for g in _LSTM_GATES]
        if params.hasBiasVectors:
            self.b = [weights_of(layer, f"{prefix}{g}BiasVector", getattr(weights, f"{g}BiasVector"),
                                 shape=(n_out,)) for g in _LSTM_GATES]
        else:
            self.b = [np.zeros(n_out, np.float32) for _ in _LSTM_GATES]
        if params.forgetBias:
            self.b[1] = self.b[1] + 1
        self.p = None
        if params.hasPeepholeVectors:
            self.p = [weights_of(layer, f"{prefix}{g}PeepholeVector", getattr(weights, f"{g}PeepholeVector"),
                                 shape=(n_out,)) for g in ("inputGate", "forgetGate", "outputGate")]


def lstm(xs, y, c, weights: _LSTMWeights, acts, params, *, reverse: bool):
    """Run one LSTM direction over ``xs`` [N, S, I]; returns (outputs [N, S, H], y, c)."""
    f, g, h = acts
    clip_c = params.cellClipThreshold or 50.0
    pre = [xs @ w.T + b for w, b in zip(weights.w, weights.b)]
    zero = np.float32(0)
    peep = weights.p or [zero, zero, zero]
    outs = [None] * xs.shape[1]
    for t in (range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])):
        i_t = f(_clip(pre[0][:, t] + y @ weights.r[0].T + peep[0] * c))
        f_t = f(_clip(pre[1][:, t] + y @ weights.r[1].T + peep[1] * c))
        z_t = g(_clip(pre[2][:, t] + y @ weights.r[2].T))
        c = c * (1 - i_t) + i_t * z_t if params.coupledInputAndForgetGate else c * f_t + i_t * z_t
        c = np.clip(c, -clip_c, clip_c).astype(np.float32)
        o_t = f(_clip(pre[3][:, t] + y @ weights.r[3].T + peep[2] * c))
        y = (h(c) * o_t).astype(np.float32)
        outs[t] = y
    return np.stack(outs, axis=1), y, c


def _lstm_acts(acts, layer):
    defaults = ["sigmoid", "tanh", "tanh"]
    out = []
    for i, name in enumerate(defaults):
        if i < len(acts):
            out.append(activation_function(acts[i], layer, "activations"))
        else:
            out.append(lambda v, n=name: np.asarray(ACTIVATIONS[n][0](v, 0, 0), np.float32))
    return out


@register
class UniDirectionalLSTM(Layer):
    """LSTM with gates i, f, z (block input), o, optional peepholes, forget bias, coupled
    input-forget gate and cell clipping: ``c = f * c + i * z``, ``y = h(c) * o``."""

    kind = "uniDirectionalLSTM"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.uniDirectionalLSTM
        self.n_in, self.n_out = int(p.inputVectorSize), int(p.outputVectorSize)
        self.weights = _LSTMWeights(self, p.weightParams, p.params, self.n_in, self.n_out, "weightParams.")
        self.acts = _lstm_acts(list(p.activations), self)

    def forward(self, x, h0=None, c0=None):
        p = self.p
        xs = _sequence(x, self.n_in)
        n = xs.shape[0]
        ys, y, c = lstm(xs, _state(h0, n, self.n_out), _state(c0, n, self.n_out), self.weights, self.acts,
                        p.params, reverse=p.reverseInput)
        seq = ys if p.params.sequenceOutput else y[:, None]
        return (_out(seq, x), _out(y[:, None], x), _out(c[:, None], x))[: len(self.outputs)]


@register
class BiDirectionalLSTM(Layer):
    """A forward and a backward LSTM over the sequence; output at step t is
    ``[yf_t, yb_t]`` (2 * outputVectorSize), final states of both directions."""

    kind = "biDirectionalLSTM"

    def __init__(self, spec, context):
        super().__init__(spec, context)
        p = spec.biDirectionalLSTM
        self.n_in, self.n_out = int(p.inputVectorSize), int(p.outputVectorSize)
        if len(p.weightParams) != 2:
            raise self.error(f"weightParams has {len(p.weightParams)} entries, expected 2", "weightParams")
        self.weights = [_LSTMWeights(self, p.weightParams[i], p.params, self.n_in, self.n_out,
                                     f"weightParams[{i}].") for i in range(2)]
        self.acts = [_lstm_acts(list(p.activationsForwardLSTM), self),
                     _lstm_acts(list(p.activationsBackwardLSTM), self)]

    def forward(self, x, hf=None, cf=None, hb=None, cb=None):
        p = self.p
        xs = _sequence(x, self.n_in)
        n = xs.shape[0]
        forward = lstm(xs, _state(hf, n, self.n_out), _state(cf, n, self.n_out), self.weights[0],
                       self.acts[0], p.params, reverse=False)
        backward = lstm(xs, _state(hb, n, self.n_out), _state(cb, n, self.n_out), self.weights[1],
                        self.acts[1], p.params, reverse=True)
        return self.outputs_of(x, forward, backward)

    def outputs_of(self, x, forward: tuple, backward: tuple) -> tuple:
        """The layer's outputs from each direction's ``(sequence [N, T, H], last h [N, H], last c [N, H])``:
        the sequence (or the last step) of both directions side by side, then the four states."""
        (yf_seq, yf, cf), (yb_seq, yb, cb) = forward, backward
        if self.p.params.sequenceOutput:
            seq = np.concatenate([yf_seq, yb_seq], axis=-1)
        else:
            seq = np.concatenate([yf, yb], axis=-1)[:, None]
        states = [_out(s[:, None], x) for s in (yf, cf, yb, cb)]
        return (_out(seq, x), *states)[: len(self.outputs)]
