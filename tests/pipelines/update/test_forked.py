"""``update.forked``: independent fits in forked children give what the same calls give inline."""

import os

import numpy as np
import pytest
from test_fit import _data, small_sound_net

from pippin.pipelines.errors import PipelineError
from pippin.pipelines.update import fit_network
from pippin.pipelines.update import forked


def _fit(seed):
    x, y = _data(24, seed=seed)
    spec, history = fit_network(small_sound_net(), x, y, epochs=2, batch_size=8, random_state=seed, n_jobs=1)
    return spec.SerializeToString(), history["loss"], os.getpid()


def test_forked_fits_equal_inline_fits_and_run_in_children():
    calls = [forked.ForkedCall(lambda s=s: _fit(s), forked=True) for s in (1, 2)]
    inline = [forked.ForkedCall(lambda s=s: _fit(s), forked=False).result() for s in (1, 2)]
    results = [c.result() for c in calls]
    for (spec, loss, pid), (spec0, loss0, pid0) in zip(results, inline):
        assert spec == spec0 and loss == loss0
        assert pid != os.getpid() and pid0 == os.getpid()
    assert calls[0].result() == results[0]  # a second call returns the kept value


def test_one_cpu_runs_inline(monkeypatch):
    monkeypatch.setattr(forked, "n_cpus", lambda: 1)
    assert forked.start(os.getpid).result() == os.getpid()
    assert forked.start(os.getpid, n_jobs=2).result() != os.getpid()


def test_a_failing_child_raises_in_the_parent():
    def boom():
        raise ValueError("bad fold")

    with pytest.raises(PipelineError, match="bad fold"):
        forked.ForkedCall(boom, forked=True).result()
    with pytest.raises(ValueError, match="bad fold"):
        forked.ForkedCall(boom, forked=False)


def test_a_child_that_dies_is_reported():
    with pytest.raises(PipelineError, match="stopped unexpectedly"):
        forked.ForkedCall(lambda: os._exit(3), forked=True).result()


def test_large_results_cross_the_pipe():
    value = forked.ForkedCall(lambda: np.arange(1_000_000, dtype=np.float32), forked=True).result()
    assert value.shape == (1_000_000,) and value[-1] == 999_999


def test_jobs_inside_a_forked_child_run_inline():
    """A forked child is daemonic (it may not fork again): its own jobs and sharded steps stay in it."""
    def inner():
        return forked.start(os.getpid, n_jobs=2).result() == os.getpid(), _fit(3)[0]

    inline, spec = forked.ForkedCall(inner, forked=True).result()
    assert inline and spec == _fit(3)[0]
