"""Cases for ``test_fast_paths.py``: the faster recurrent layers (``fast_recurrent.py``)
compute what the reference classes compute.

Layer protos come from coremltools' builder; each case runs the override and the reference
class on the same random sequences and states, over the options the kernels handle
(reverse, sequence output, peepholes, coupled gates, cell clipping, saturating and
non-saturating activations: the gate clip is skipped only for the saturating ones).
``test_fast_paths.py`` runs them as the cases of the recurrent override keys.
"""

from __future__ import annotations

import contextlib

import numpy as np

from nn_helpers import rank5_builder

from pippin.pipelines.layers import LAYERS, OVERRIDES, LayerContext

RNG = np.random.default_rng(5)
N, S, I, H = 4, 7, 5, 6
TOL = {"rtol": 1e-5, "atol": 1e-5}


@contextlib.contextmanager
def _helper_forced(parallel: bool):
    """With ``parallel``, the two-thread routes of ``fast_recurrent`` whatever the size and core count;
    yields the list of jobs handed to the helper thread."""
    from pippin.pipelines.layers import fast_recurrent

    saved = fast_recurrent.PARALLEL_MIN_WORK, fast_recurrent._cores, fast_recurrent._helper, fast_recurrent._spare_core
    submitted = []

    def helper():
        pool = saved[2]()
        return type("Spy", (), {"submit": lambda self, fn, *a: submitted.append(fn) or pool.submit(fn, *a)})()
    # (the helper may start a job, or the caller run it itself when the helper has not: both must agree)

    if parallel:
        fast_recurrent.PARALLEL_MIN_WORK, fast_recurrent._cores, fast_recurrent._helper = 0, lambda: 2, helper
        fast_recurrent._spare_core = lambda: True
    try:
        yield submitted
    finally:
        (fast_recurrent.PARALLEL_MIN_WORK, fast_recurrent._cores, fast_recurrent._helper,
         fast_recurrent._spare_core) = saved


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.6).astype(np.float32)


def _layer(add):
    b = rank5_builder({"x": (I,)}, outputs=("y",))
    add(b)
    return b.spec.neuralNetwork.layers[0]


def _compare(kind, spec, n_states):
    context = LayerContext(where="m.mlmodel: neuralNetwork.layers[0](l)", exact_shapes=False, spec_version=4)
    ref, fast = LAYERS[kind](spec, context), OVERRIDES[(kind,)](spec, context)
    assert type(fast) is not LAYERS[kind] and isinstance(fast, LAYERS[kind])
    x = RNG.standard_normal((N, S, I, 1, 1)).astype(np.float32)
    x[0] *= 80  # gate pre-activations beyond the [-50, 50] clip
    for states in ([None] * n_states, [RNG.standard_normal((N, 1, H, 1, 1)).astype(np.float32)
                                       for _ in range(n_states)]):
        got, want = fast(x, *states), ref(x, *states)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == np.float32
            np.testing.assert_allclose(g, w, **TOL)


def case_simple_recurrent():
    for activation, reverse, output_all in (("TANH", False, True), ("RELU", True, False),
                                            ("SIGMOID", False, True)):
        spec = _layer(lambda b: b.add_simple_rnn(
            "rnn", W_h=_w(H, H), W_x=_w(H, I), b=_w(H), hidden_size=H, input_size=I, activation=activation,
            input_names=["x", "h0"], output_names=["y", "h"], output_all=output_all, reverse_input=reverse))
        _compare("simpleRecurrent", spec, 1)


def case_gru():
    """Every option on one thread, then again with the compiled one's batch halves forced onto two threads."""
    for parallel in (False, True):
        with _helper_forced(parallel) as submitted:
            _gru_options()
        assert len(submitted) == (2 if parallel else 0)  # the compiled option, with and without states


def _gru_options():
    for act, inner, reverse, output_all in (("TANH", "SIGMOID", False, True), ("TANH", "SIGMOID_HARD", True, False),
                                            ("RELU", "SIGMOID", False, True), ("SCALED_TANH", "LINEAR", False, True),
                                            ("softplus", "SIGMOID", False, True)):
        spec = _layer(lambda b: b.add_gru(
            "gru", W_h=[_w(H, H) for _ in range(3)], W_x=[_w(H, I) for _ in range(3)], b=[_w(H) for _ in range(3)],
            hidden_size=H, input_size=I, input_names=["x", "h0"], output_names=["y", "h"],
            activation=act if act != "softplus" else "TANH", inner_activation=inner, output_all=output_all,
            reverse_input=reverse))
        for params in spec.gru.activations:  # give the parametrized ones non-trivial values
            which = params.WhichOneof("NonlinearityType")
            if which in ("sigmoidHard", "scaledTanh", "linear"):
                getattr(params, which).alpha, getattr(params, which).beta = 0.7, 0.3
        if act == "softplus":  # not saturating: the gate pre-activations are clipped
            spec.gru.activations[1].softplus.SetInParent()
        _compare("gru", spec, 1)


def _lstm_weights():
    return [_w(H, I) for _ in range(4)], [_w(H, H) for _ in range(4)], [_w(H) for _ in range(4)]


def case_uni_lstm():
    """Every option on one thread, then again with the compiled ones' batch halves forced onto two threads."""
    options = [dict(), dict(reverse_input=True, output_all=False), dict(cell_clip_threshold=0.5),
               dict(peep=[_w(H) for _ in range(3)], coupled_input_forget_gate=True, cell_clip_threshold=0.7),
               dict(forget_bias=True, inner_activation="SIGMOID_HARD", cell_state_update_activation="RELU",
                    output_activation="LINEAR"),
               dict(output_activation="softplus")]  # one coremltools' builder does not offer
    for parallel in (False, True):
        with _helper_forced(parallel) as submitted:
            for extra in options:
                softplus = extra.get("output_activation") == "softplus"
                ws, rs, bs = _lstm_weights()
                kw = {"output_all": True, **({} if softplus else extra)}
                spec = _layer(lambda b: b.add_unilstm("lstm", W_h=rs, W_x=ws, b=bs, hidden_size=H, input_size=I,
                                                      input_names=["x", "h0", "c0"], output_names=["y", "h", "c"],
                                                      **kw))
                if softplus:
                    spec.uniDirectionalLSTM.activations[2].softplus.SetInParent()
                _compare("uniDirectionalLSTM", spec, 2)
        assert len(submitted) == (3 * 2 if parallel else 0)  # the three compiled options, with and without states


def case_bi_lstm():
    """Both routes of the compiled loops (one thread, and the backward direction on the helper thread,
    forced here whatever the size and core count), and the NumPy loops (peepholes)."""
    options = (dict(output_all=True), dict(output_all=True, cell_clip_threshold=0.8), dict(output_all=False),
               dict(output_all=False, peep=[_w(H) for _ in range(3)], peep_back=[_w(H) for _ in range(3)],
                    cell_clip_threshold=1.5))
    for parallel in (False, True):
        with _helper_forced(parallel) as submitted:
            for extra in options:
                fw, bw = _lstm_weights(), _lstm_weights()
                spec = _layer(lambda b: b.add_bidirlstm(
                    "bi", W_h=fw[1], W_x=fw[0], b=fw[2], W_h_back=bw[1], W_x_back=bw[0], b_back=bw[2],
                    hidden_size=H, input_size=I, input_names=["x", "hf", "cf", "hb", "cb"],
                    output_names=["y", "hf_out", "cf_out", "hb_out", "cb_out"], **extra))
                _compare("biDirectionalLSTM", spec, 4)
        assert len(submitted) == (2 * 2 if parallel else 0)  # two compiled options with a sequence, with/without states


RECURRENT_CASES = {
    ("simpleRecurrent",): case_simple_recurrent,
    ("gru",): case_gru,
    ("uniDirectionalLSTM",): case_uni_lstm,
    ("biDirectionalLSTM",): case_bi_lstm,
}
