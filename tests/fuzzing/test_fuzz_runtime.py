"""Issue 12: seeded mutants of every model kind Pippin writes (sound pipeline, recommender, k-NN,
a coremltools neural network) go through load, validate and predict, each in a forked child
with a 5 s and 2 GB limit: only Pippin errors, no hang, no kill, and no model that validates
and then fails to predict.

Bounded to about a minute (``PIPPIN_FUZZ_SECONDS``, default 60; CI may set less). The full
6,000-mutant check is ``python tests/fuzzing/fuzz_mutants.py --n 6000``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

N_MUTANTS = 600
SECONDS = float(os.environ.get("PIPPIN_FUZZ_SECONDS", "50"))
TOOL = Path(__file__).resolve().parent / "fuzz_mutants.py"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz runner forks one child per mutant")
def test_mutants_raise_only_pippin_errors_within_time_and_memory():
    # a fresh interpreter: the suite's process may already run OpenMP or BLAS thread pools,
    # which must not be forked
    proc = subprocess.run([sys.executable, str(TOOL), "--n", str(N_MUTANTS), "--seed", "12", "--budget",
                           str(SECONDS), "--time-limit", "5", "--memory-gb", "2", "--json"],
                          capture_output=True, text=True, timeout=SECONDS + 300)
    report = json.loads(proc.stdout)
    counts = report["counts"]
    assert report["failures"] == 0, (counts, report["examples"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["n"] >= 40, report  # the budget allowed a real sample
    # every path was exercised: unparsable files, models refused at load, models that ran
    assert counts.get("parse-rejected", 0) and counts.get("load-rejected", 0) and counts.get("run-ok", 0), counts
