"""``FastLoop``: the loop coremltools writes for ``torch.nn.GRU`` runs as one compiled sequence
and leaves every blob as the reference loop does (``fast_loop_cases.py``), also on a GRU
converted by coremltools itself, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from fast_loop_cases import case_loop, compare, gru_loop_model
from nn_helpers import load

from pippin.pipelines.layers import _rnn_kernels
from pippin.pipelines.runtime.neural_network import NeuralNetworkModel


def test_gru_loop_variants_equal_reference():
    case_loop()


def test_recognized_loop_takes_the_compiled_sequence(monkeypatch):
    calls = []
    original = _rnn_kernels.gru_lbr_seq
    monkeypatch.setattr(_rnn_kernels, "gru_lbr_seq", lambda *a: calls.append(1) or original(*a))
    spec, weights = gru_loop_model(t=9)
    compare(spec, weights=weights)
    assert calls == [1]
    calls.clear()
    compare(gru_loop_model(t=9, extra=True)[0], recognized=False)
    assert calls == []


def test_recognized_loop_in_two_halves_on_two_threads(monkeypatch):
    """The batch rows in two halves (forced whatever the size and core count), also with the
    scatter's update mode: every blob as the reference loop leaves it."""
    from pippin.pipelines.layers import fast_recurrent

    calls = []
    original = _rnn_kernels.gru_lbr_seq
    monkeypatch.setattr(_rnn_kernels, "gru_lbr_seq", lambda *a: calls.append(a[5].shape[0]) or original(*a))
    monkeypatch.setattr(fast_recurrent, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(fast_recurrent, "_cores", lambda: 2)
    monkeypatch.setattr(fast_recurrent, "_spare_core", lambda: True)
    for mode in ("ADD", "UPDATE"):
        spec, weights = gru_loop_model(t=9, b=3, mode=mode)
        compare(spec, n=3, weights=weights, mode=mode)
        assert sorted(calls) == [4, 5]  # 3 examples x 3 rows = 9 state rows, split 4 + 5
        calls.clear()


def test_single_step_loop_runs_the_reference_body():
    spec, weights = gru_loop_model(t=1)
    compare(spec, weights=weights)


def test_one_example_and_inputs_left_unchanged():
    """One example (the state buffer's first step is then a view of the input): the input stays as it was."""
    spec, weights = gru_loop_model(t=6)
    compare(spec, n=1, weights=weights)
    fast = load(spec)
    x = np.random.default_rng(4).standard_normal((1, 6, 2, 5)).astype(np.float32)
    buf = np.random.default_rng(5).standard_normal((1, 7, 2, 6)).astype(np.float32)
    saved = buf.copy()
    fast.predict_batch({"x": x, "buf": buf})
    assert np.array_equal(buf, saved)


def test_coremltools_converted_gru_equals_torch():
    torch = pytest.importorskip("torch")
    ct = pytest.importorskip("coremltools")
    from pippin.spec import loads

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(5, 6, batch_first=True)

        def forward(self, x):
            return self.gru(x)[0]

    torch.manual_seed(3)
    net = Net().eval()
    x = np.random.default_rng(2).standard_normal((3, 11, 5)).astype(np.float32)
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.from_numpy(x[:1]))
        want = net(torch.from_numpy(x)).numpy()
    spec = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 11, 5))], convert_to="neuralnetwork").get_spec()
    spec = loads(spec.SerializeToString())
    fast, reference = load(spec), NeuralNetworkModel(spec, fast=False)
    (loop,) = [layer for layer in fast.layers if layer.kind == "loop"]
    assert loop.cell is not None
    name = spec.description.output[0].name
    got = fast.predict_batch({"x": x[:, None]})[name]
    np.testing.assert_allclose(got, reference.predict_batch({"x": x[:, None]})[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)
