"""The ``pippin`` command picks one OpenBLAS thread for the commands whose work runs in forked
processes (``update``, ``personalize``), before NumPy loads, and leaves every other command and
the user's own choice alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import sys; sys.argv = {argv!r}; import pippin.pipelines.cli, os; "
         "from threadpoolctl import threadpool_info; "
         "print(os.environ.get('OPENBLAS_NUM_THREADS'), "
         "max([i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'] or [0]))")


def _probe(argv, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.parametrize("command", ["update", "personalize"])
def test_forking_commands_get_one_blas_thread(command):
    assert _probe(["/venv/bin/pippin", command, "m.mlmodel"]) == ("1", 1)


@pytest.mark.parametrize("argv", [["/venv/bin/pippin", "predict", "m.mlmodel"], ["/venv/bin/pippin"],
                                  ["-c", "update"], ["/venv/bin/other", "update"]])
def test_other_commands_and_programs_are_left_alone(argv):
    value, _ = _probe(argv)
    assert value == "None"


def test_the_users_choice_wins():
    assert _probe(["/venv/bin/pippin", "update", "m.mlmodel"], OPENBLAS_NUM_THREADS="2")[0] == "2"


def test_the_pipelines_package_loads_numpy_only_when_used():
    code = ("import sys; import pippin.pipelines.errors; a = 'numpy' in sys.modules; "
            "from pippin.pipelines import load, Pipeline; print(a, 'numpy' in sys.modules, callable(load))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]
