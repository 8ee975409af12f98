"""simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM against PyTorch / NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, rank5_builder, run

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(20)
N, S, I, H = 3, 5, 4, 6


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def _x():
    return RNG.standard_normal((N, S, I)).astype(np.float32)


def _builder(n_states, outputs):
    names = {"x": (I,)}
    b = rank5_builder(names, outputs=outputs)
    return b


def _feed(x):
    return {"x": x.reshape(N, S, I)}


def _rank5_input(b):
    # the input is a sequence: declare it [S, 1, I, 1, 1] (rank 5 with B = 1)
    inp = b.spec.description.input[0]
    del inp.type.multiArrayType.shape[:]
    inp.type.multiArrayType.shape.extend([S, 1, I, 1, 1])


@pytest.mark.parametrize("output_all", [False, True])
def test_simple_rnn(output_all):
    w, r, bias = _w(H, I), _w(H, H), _w(H)
    b = _builder(1, ("y", "h"))
    b.add_simple_rnn("rnn", W_h=r, W_x=w, b=bias, hidden_size=H, input_size=I, activation="TANH",
                     input_names=["x"], output_names=["y", "h"], output_all=output_all)
    _rank5_input(b)
    x = _x()
    y, h = run(b, {"x": x.reshape(N, S, 1, I, 1, 1)}, outputs=("y", "h"))
    rnn = torch.nn.RNN(I, H, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(w)), rnn.weight_hh_l0.copy_(torch.from_numpy(r))
        rnn.bias_ih_l0.copy_(torch.from_numpy(bias)), rnn.bias_hh_l0.zero_()
        ref, hn = rnn(torch.from_numpy(x.astype(np.float64)))
    close(y.reshape(N, -1, H), ref.numpy() if output_all else hn.numpy()[0][:, None], atol=1e-5)
    close(h.reshape(N, H), hn.numpy()[0], atol=1e-5)


def test_gru_against_definition():
    wz, wr, wo = _w(H, I), _w(H, I), _w(H, I)
    rz, rr, ro = _w(H, H), _w(H, H), _w(H, H)
    bz, br, bo = _w(H), _w(H), _w(H)
    b = _builder(1, ("y", "h"))
    b.add_gru("gru", W_h=[rz, rr, ro], W_x=[wz, wr, wo], b=[bz, br, bo], hidden_size=H, input_size=I,
              input_names=["x"], output_names=["y", "h"], activation="TANH", inner_activation="SIGMOID",
              output_all=True)
    _rank5_input(b)
    x = _x()
    y, h = run(b, {"x": x.reshape(N, S, 1, I, 1, 1)}, outputs=("y", "h"))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    state = np.zeros((N, H))
    outs = []
    for t in range(S):
        xt = x[:, t].astype(np.float64)
        z = sig(xt @ wz.T + state @ rz.T + bz)
        r = sig(xt @ wr.T + state @ rr.T + br)
        o = np.tanh(xt @ wo.T + (r * state) @ ro.T + bo)
        state = (1 - z) * o + z * state
        outs.append(state)
    close(y.reshape(N, S, H), np.stack(outs, 1), atol=1e-5)
    close(h.reshape(N, H), state, atol=1e-5)


def _torch_lstm(x, ws, rs, bs, *, bidirectional=False, back=None):
    lstm = torch.nn.LSTM(I, H, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():
        for suffix, (w, r, b) in [("", (ws, rs, bs))] + ([("_reverse", back)] if bidirectional else []):
            # pippin/coremltools order i, f, o, z; torch order i, f, g(z), o
            order = [0, 1, 3, 2]
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(np.concatenate([w[k] for k in order])))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(np.concatenate([r[k] for k in order])))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(np.concatenate([b[k] for k in order])))
            getattr(lstm, f"bias_hh_l0{suffix}").zero_()
        return lstm(torch.from_numpy(x.astype(np.float64)))


def test_unidirectional_lstm():
    ws, rs, bs = [_w(H, I) for _ in range(4)], [_w(H, H) for _ in range(4)], [_w(H) for _ in range(4)]
    b = _builder(2, ("y", "h", "c"))
    b.add_unilstm("lstm", W_h=rs, W_x=ws, b=bs, hidden_size=H, input_size=I, input_names=["x"],
                  output_names=["y", "h", "c"], output_all=True)
    _rank5_input(b)
    x = _x()
    y, h, c = run(b, {"x": x.reshape(N, S, 1, I, 1, 1)}, outputs=("y", "h", "c"))
    ref, (hn, cn) = _torch_lstm(x, ws, rs, bs)
    close(y.reshape(N, S, H), ref.numpy(), atol=1e-5)
    close(h.reshape(N, H), hn.numpy()[0], atol=1e-5)
    close(c.reshape(N, H), cn.numpy()[0], atol=1e-5)


def test_bidirectional_lstm():
    fw = ([_w(H, I) for _ in range(4)], [_w(H, H) for _ in range(4)], [_w(H) for _ in range(4)])
    bw = ([_w(H, I) for _ in range(4)], [_w(H, H) for _ in range(4)], [_w(H) for _ in range(4)])
    b = _builder(4, ("y", "hf", "cf", "hb", "cb"))
    b.add_bidirlstm("bi", W_h=fw[1], W_x=fw[0], b=fw[2], W_h_back=bw[1], W_x_back=bw[0], b_back=bw[2],
                    hidden_size=H, input_size=I, input_names=["x"], output_names=["y", "hf", "cf", "hb", "cb"],
                    output_all=True)
    _rank5_input(b)
    x = _x()
    y, hf, cf, hb, cb = run(b, {"x": x.reshape(N, S, 1, I, 1, 1)}, outputs=("y", "hf", "cf", "hb", "cb"))
    ref, (hn, cn) = _torch_lstm(x, *fw, bidirectional=True, back=bw)
    close(y.reshape(N, S, 2 * H), ref.numpy(), atol=1e-5)
    close(hf.reshape(N, H), hn.numpy()[0], atol=1e-5)
    close(hb.reshape(N, H), hn.numpy()[1], atol=1e-5)
    close(cb.reshape(N, H), cn.numpy()[1], atol=1e-5)
