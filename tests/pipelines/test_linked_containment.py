"""Issue 12.1: a linked model resolves only to a regular file inside its folder (or a folder the
caller allows), of bounded size, with no cycle and a bounded depth; ``validate`` reports the same."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, load
from pippin.pipelines.cli.main import main
from pippin.spec import Model, SpecError, validate
from pippin.spec import io as spec_io
from pippin.spec import links


def linked_spec(file_name, search_path="", *, template):
    spec = Model()
    spec.specificationVersion = 4
    spec.description.CopyFrom(template.description)
    spec.description.ClearField("trainingInput")
    spec.linkedModel.linkedModelFile.linkedModelFileName.defaultValue = file_name
    spec.linkedModel.linkedModelFile.linkedModelSearchPath.defaultValue = search_path
    return spec


@pytest.fixture()
def knn_spec():
    knn = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1, updatable=False)
    return knn.add_samples([[0, 0], [5, 5]], ["near", "far"]).to_spec()


def _both_refuse(path, match):
    """load raises a SpecError matching ``match`` and validate(path=...) reports it."""
    with pytest.raises(SpecError, match=match):
        load(path)
    problems = validate(spec_io.load(path), path=path)
    assert problems and any(__import__("re").search(match, p.message) for p in problems), problems
    return problems


def test_a_link_inside_the_folder_still_runs(tmp_path, knn_spec):
    spec_io.save(knn_spec, tmp_path / "knn.mlmodel")
    path = spec_io.save(linked_spec("knn.mlmodel", template=knn_spec), tmp_path / "link.mlmodel")
    assert validate(spec_io.load(path), path=path) == []
    assert list(load(path).predict_batch({"features": np.array([[4.0, 4.0]])})["label"]) == ["far"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_links_to_devices_are_refused(tmp_path, knn_spec, device):
    path = spec_io.save(linked_spec(device, template=knn_spec), tmp_path / "link.mlmodel")
    _both_refuse(path, "outside the linking model's folder")
    # a symlink inside the folder to the device: the resolved path is checked
    os.symlink(device, tmp_path / "dev.mlmodel")
    path = spec_io.save(linked_spec("dev.mlmodel", template=knn_spec), tmp_path / "link2.mlmodel")
    _both_refuse(path, "outside the linking model's folder")
    # allowed explicitly, the device is still no regular file
    path = spec_io.save(linked_spec(os.path.basename(device), "/dev", template=knn_spec), tmp_path / "l3.mlmodel")
    with pytest.raises(SpecError, match="is a device"):
        load(path, allowed_paths=["/dev"])
    assert any("is a device" in p.message for p in validate(spec_io.load(path), path=path, allowed_paths=["/dev"]))


def test_a_fifo_is_refused_without_hanging(tmp_path, knn_spec):
    os.mkfifo(tmp_path / "pipe.mlmodel")
    path = spec_io.save(linked_spec("pipe.mlmodel", template=knn_spec), tmp_path / "link.mlmodel")
    result = {}

    def run():
        try:
            load(path)
        except SpecError as exc:
            result["error"] = str(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "loading a link to a FIFO hung"
    assert "is a FIFO" in result["error"]
    assert any("is a FIFO" in p.message for p in validate(spec_io.load(path), path=path))


def test_dot_dot_and_absolute_paths_are_refused(tmp_path, knn_spec):
    (tmp_path / "inner").mkdir()
    spec_io.save(knn_spec, tmp_path / "other.mlmodel")
    path = spec_io.save(linked_spec("../other.mlmodel", template=knn_spec), tmp_path / "inner" / "link.mlmodel")
    _both_refuse(path, "outside the linking model's folder")
    path = spec_io.save(linked_spec("other.mlmodel", "..", template=knn_spec), tmp_path / "inner" / "l2.mlmodel")
    _both_refuse(path, "outside the linking model's folder")
    path = spec_io.save(linked_spec(str(tmp_path / "other.mlmodel"), template=knn_spec),
                        tmp_path / "inner" / "l3.mlmodel")
    _both_refuse(path, "outside the linking model's folder")
    # an explicitly allowed search path is followed
    assert load(path, allowed_paths=[tmp_path]).kind == "linkedModel"
    assert validate(spec_io.load(path), path=path, allowed_paths=[tmp_path]) == []


def test_self_link_and_mutual_links_name_the_cycle(tmp_path, knn_spec):
    path = spec_io.save(linked_spec("self.mlmodel", template=knn_spec), tmp_path / "self.mlmodel")
    _both_refuse(path, r"cycle: self.mlmodel -> self.mlmodel")
    spec_io.save(linked_spec("b.mlmodel", template=knn_spec), tmp_path / "a.mlmodel")
    spec_io.save(linked_spec("a.mlmodel", template=knn_spec), tmp_path / "b.mlmodel")
    _both_refuse(tmp_path / "a.mlmodel", r"cycle: a.mlmodel -> b.mlmodel -> a.mlmodel")


def test_the_chain_depth_is_bounded(tmp_path, knn_spec):
    spec_io.save(knn_spec, tmp_path / "m0.mlmodel")
    for i in range(1, links.MAX_LINK_DEPTH + 2):
        spec_io.save(linked_spec(f"m{i - 1}.mlmodel", template=knn_spec), tmp_path / f"m{i}.mlmodel")
    assert load(tmp_path / f"m{links.MAX_LINK_DEPTH - 1}.mlmodel").kind == "linkedModel"
    _both_refuse(tmp_path / f"m{links.MAX_LINK_DEPTH + 1}.mlmodel", "nested more than")


def test_the_size_cap_is_checked_before_reading(tmp_path, knn_spec, monkeypatch):
    target = spec_io.save(knn_spec, tmp_path / "knn.mlmodel")
    path = spec_io.save(linked_spec("knn.mlmodel", template=knn_spec), tmp_path / "link.mlmodel")
    link = spec_io.load(path)
    cap = path.stat().st_size + 1
    assert target.stat().st_size > cap
    monkeypatch.setattr(links, "MAX_MODEL_BYTES", cap)
    _both_refuse(path, f"more than the {cap} bytes")
    assert any(f"more than the {cap} bytes" in p.message for p in validate(link, path=path))


def test_pippin_validate_and_load_on_devices_fail_in_one_line(tmp_path, knn_spec, capsys):
    path = spec_io.save(linked_spec("/dev/zero", template=knn_spec), tmp_path / "link.mlmodel")
    assert main(["validate", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert "outside the linking model's folder" in out
    assert main(["validate", "/dev/zero"]) == 2  # the file itself: refused before reading
    _, err = capsys.readouterr()
    assert "is a device" in err and err.count("\n") == 1
