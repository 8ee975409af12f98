"""The committed generated modules match what ``spec/regenerate.py`` makes of the ``.proto`` files."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_generated_modules_are_fresh(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) regenerates the modules")
    spec = importlib.util.spec_from_file_location("_regen", REPO / "spec" / "regenerate.py")
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    written = regen.generate(tmp_path)
    committed = sorted(p.name for p in (REPO / "spec" / "_proto").glob("*_pb2.py"))
    assert sorted(p.name for p in written) == committed
    stale = [p.name for p in written if p.read_text() != (REPO / "spec" / "_proto" / p.name).read_text()]
    assert not stale, f"stale generated modules {stale}: run python spec/regenerate.py"
