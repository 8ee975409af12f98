"""``fast_recurrent._both``: the second job runs on the helper thread, or on the caller when the
helper has not started it (no free core) -- never twice, never lost; ``_parallel`` wants a spare core."""

from __future__ import annotations

import threading

from pippin.pipelines.layers import fast_recurrent


def test_second_job_runs_on_the_helper_thread():
    second_started = threading.Event()
    where = []

    def second():
        where.append(threading.current_thread().name)
        second_started.set()
        return 2

    got = fast_recurrent._both(lambda: second_started.wait(10) and 1, second)
    assert got == (1, 2) and len(where) == 1 and where[0].startswith("pippin-rnn")


def test_caller_runs_the_second_job_when_the_helper_is_busy():
    release = threading.Event()
    started = threading.Event()
    busy = fast_recurrent._helper().submit(lambda: started.set() or release.wait(10))
    started.wait(10)
    where = []
    try:
        got = fast_recurrent._both(lambda: "a", lambda: where.append(threading.current_thread()) or "b")
    finally:
        release.set()
    busy.result()
    assert got == ("a", "b") and where == [threading.current_thread()]


def test_no_second_thread_without_a_spare_core(monkeypatch):
    monkeypatch.setattr(fast_recurrent, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(fast_recurrent, "_cores", lambda: 2)
    monkeypatch.setattr(fast_recurrent.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(fast_recurrent.os, "getloadavg", lambda: (1.7, 1.0, 1.0))
    assert not fast_recurrent._parallel(1.0)
    monkeypatch.setattr(fast_recurrent.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert fast_recurrent._parallel(1.0)
    monkeypatch.setattr(fast_recurrent, "_cores", lambda: 1)  # the process may use one core only
    assert not fast_recurrent._parallel(1.0)
