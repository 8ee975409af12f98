"""Fixtures shared by the whole suite: the real datasets beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def _shared(sub: str) -> Path:
    path = SHARED_DATASETS / sub
    if path.exists():
        return path
    reason = f"shared dataset {path} is absent (it lives beside the repo, in ../shared/datasets)"
    if os.environ.get("PIPPIN_REQUIRE_SHARED") == "1":
        pytest.fail(reason + " and PIPPIN_REQUIRE_SHARED=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The Free Spoken Digit Dataset's ``recordings/`` folder."""
    return _shared("fsdd/recordings")


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The MovieLens 100K folder (``u.data``, ``u.item``, ...)."""
    return _shared("movielens-100k")
