"""Issue 12: seeded mutants of every model kind Pippin writes (sound pipeline, recommender, k-NN,
a coremltools neural network) go through load, validate and predict, each in a forked child
with a 5 s and 2 GB limit: only Pippin errors, no hang, no kill, and no model that validates
and then fails to predict.

Bounded to about a minute (``PIPPIN_FUZZ_SECONDS``, default 60; CI may set less). The full
6,000-mutant check is ``python tests/fuzzing/fuzz_mutants.py --n 6000``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_mutants  # noqa: E402

N_MUTANTS = 600
SECONDS = float(os.environ.get("PIPPIN_FUZZ_SECONDS", "50"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fuzz runner forks one child per mutant")
def test_mutants_raise_only_pippin_errors_within_time_and_memory():
    report = fuzz_mutants.run(N_MUTANTS, seed=12, time_limit=5.0, memory=2 << 30, budget=SECONDS)
    counts = report["counts"]
    assert report["failures"] == 0, (counts, report["examples"])
    assert report["n"] >= 40, report  # the budget allowed a real sample
    # every path was exercised: unparsable files, models refused at load, models that ran
    assert counts.get("parse-rejected", 0) and counts.get("load-rejected", 0) and counts.get("run-ok", 0), counts
