"""load/save: golden bytes, atomic writes, clear errors, unknown fields kept."""

import os

import pytest

import pippin.spec as spec
from pippin.spec import Model, SpecError


def _vggish_model():
    model = Model()
    model.specificationVersion = 4
    model.soundAnalysisPreprocessing.vggish.SetInParent()
    return model


def test_golden_bytes():
    assert _vggish_model().SerializeToString() == bytes.fromhex("08049a7d03a20100")


def test_save_load_round_trip(tmp_path):
    path = spec.save(_vggish_model(), tmp_path / "m.mlmodel")
    assert path.read_bytes() == bytes.fromhex("08049a7d03a20100")
    assert spec.load(path) == _vggish_model()


def test_unknown_fields_survive_round_trip(tmp_path):
    # field 9999, wire type 2 (length-delimited), 3 bytes: not part of the format
    unknown = bytes.fromhex("08049a7d03a20100") + bytes([0xFA, 0xE0, 0x04, 0x03]) + b"abc"
    path = tmp_path / "u.mlmodel"
    path.write_bytes(unknown)
    out = spec.save(spec.load(path), tmp_path / "v.mlmodel")
    assert out.read_bytes() == unknown


@pytest.mark.parametrize(
    "content, match",
    [(b"", "empty"), (b"\xff\xff\xff\xff", "not a Core ML model"), (b"hello world, not protobuf", "not a Core ML model")],
)
def test_load_bad_files_raise_spec_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.mlmodel"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=match) as info:
        spec.load(path)
    assert str(path) in str(info.value)


def test_load_truncated_file(tmp_path):
    data = _vggish_model().SerializeToString()
    path = tmp_path / "t.mlmodel"
    path.write_bytes(data[:-3])
    with pytest.raises(SpecError, match="t.mlmodel"):
        spec.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        spec.load(tmp_path / "missing.mlmodel")


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = spec.save(_vggish_model(), tmp_path / "m.mlmodel")
    before = path.read_bytes()

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    bigger = _vggish_model()
    bigger.description.metadata.author = "x" * 10000
    with pytest.raises(KeyboardInterrupt):
        spec.save(bigger, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.mlmodel"]
