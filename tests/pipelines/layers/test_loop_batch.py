"""A while loop runs over the whole batch while its condition agrees and per example after:
the same results as running each example alone, with the condition network evaluated
exactly as often (a counter in the condition network would show any extra run)."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import NeuralNetworkBuilder, close, load, nd_builder

from pippin.pipelines.layers import control


def _while_model(max_iterations=0):
    """``while y < 10: y = 1.5 y + 1`` (at most ``max_iterations`` times when > 0), counting the
    condition's evaluations in ``count`` (the condition network increments it)."""
    b = nd_builder({"x": (1,), "zero": (1,)}, outputs=("y", "count"))
    b.add_copy("init", "x", "y")
    b.add_copy("init_count", "zero", "count")
    loop = b.add_loop("loop", condition="c", condition_network=None, body_network=None,
                      max_iterations=max_iterations)
    cond = NeuralNetworkBuilder(nn_spec=loop.loop.conditionNetwork, disable_rank5_shape_mapping=True)
    cond.add_activation("tick", "LINEAR", "count", "count1", params=[1.0, 1.0])
    cond.add_copy("set_count", "count1", "count")
    cond.add_less_than("lt", ["y"], "c", alpha=10.0)
    body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork, disable_rank5_shape_mapping=True)
    body.add_activation("grow", "LINEAR", "y", "y1", params=[1.5, 1.0])
    body.add_copy("set", "y1", "y")
    return load(b)


def _reference(v, max_iterations):
    count, iteration = 0, 0
    while True:
        count += 1
        if not v < 10 or (max_iterations and iteration >= max_iterations):
            return v, count
        iteration += 1
        v = np.float32(1.5) * np.float32(v) + np.float32(1)


@pytest.mark.parametrize("max_iterations", [0, 3])
@pytest.mark.parametrize("x", [[0.0, 2.0, 3.0, 8.5, 12.0, -0.5], [1.0, 1.0, 1.0], [20.0, 30.0]],
                         ids=["parting", "together", "none"])
def test_while_loop_batch_equals_examples_alone(x, max_iterations, monkeypatch):
    model = _while_model(max_iterations)
    x = np.array(x, np.float32)[:, None]
    zero = np.zeros_like(x)
    calls = []
    original = control.Loop._run_together
    monkeypatch.setattr(control.Loop, "_run_together", lambda self, *a: calls.append(1) or original(self, *a))
    got = model.predict_batch({"x": x, "zero": zero})
    assert calls, "the batch did not start together"
    want = [_reference(float(v), max_iterations) for v in x[:, 0]]
    close(got["y"], [[v] for v, _ in want])
    close(got["count"], [[c] for _, c in want])
    for i in range(len(x)):  # one example alone takes the plain loop
        alone = model.predict_batch({"x": x[i:i + 1], "zero": zero[i:i + 1]})
        close(alone["y"], got["y"][i:i + 1])
        close(alone["count"], got["count"][i:i + 1])
