"""Issue 12.8: saves keep permissions, clean their own stale temp files, and fail in one line
naming the path; the train commands check the output path before training."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from pippin.pipelines.cli.main import main
from pippin.spec import Model, SpecError
from pippin.spec import io as spec_io


def _model(n: int = 1) -> Model:
    m = Model()
    m.specificationVersion = 4
    m.description.metadata.shortDescription = "x" * n
    m.identity.SetInParent()
    return m


def _temps(folder, name="m.mlmodel"):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def test_a_0644_model_stays_0644(tmp_path):
    path = spec_io.save(_model(), tmp_path / "m.mlmodel")
    os.chmod(path, 0o644)
    spec_io.save(_model(2), path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    os.chmod(path, 0o664)
    spec_io.save(_model(3), path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o664)


def test_a_new_model_gets_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = spec_io.save(_model(), tmp_path / "m.mlmodel")
    finally:
        os.umask(old)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640)


def test_stale_temps_of_dead_savers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".m.mlmodel.{dead.pid}.abc123.tmp").write_bytes(b"half")
    live = tmp_path / f".m.mlmodel.{os.getppid()}.def456.tmp"  # a running process: maybe mid-save
    live.write_bytes(b"half")
    legacy = tmp_path / ".m.mlmodel.k2j3h4g5.tmp"  # the old naming, an hour old
    legacy.write_bytes(b"half")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / f".other.mlmodel.{dead.pid}.abc.tmp"  # another model's temp: not ours to touch
    other.write_bytes(b"half")
    spec_io.save(_model(), tmp_path / "m.mlmodel")
    assert _temps(tmp_path) == [live.name]
    assert other.exists()


def test_a_save_killed_mid_write_is_cleaned_by_the_next_save(tmp_path):
    path = tmp_path / "m.mlmodel"
    spec_io.save(_model(), path)
    code = (
        "import os, time, sys\n"
        "from pippin.spec import io, Model\n"
        "os.replace = lambda a, b: time.sleep(60)\n"  # stop between the temp and the rename
        "m = Model(); m.specificationVersion = 4; m.identity.SetInParent()\n"
        "m.description.metadata.shortDescription = 'new' * 1000\n"
        f"io.save(m, {str(path)!r})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not _temps(tmp_path) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(_temps(tmp_path)) == 1
    assert spec_io.load(path).description.metadata.shortDescription == "x"  # the old model, complete
    spec_io.save(_model(5), path)
    assert _temps(tmp_path) == []


def test_disk_full_is_one_line_naming_the_path(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpecError, match="No space left on device") as info:
        spec_io.save(_model(), tmp_path / "m.mlmodel")
    assert str(tmp_path / "m.mlmodel") in str(info.value)
    assert _temps(tmp_path) == [] and not (tmp_path / "m.mlmodel").exists()


def test_read_only_folder_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(spec_io.tempfile, "mkstemp", refuse)
    with pytest.raises(SpecError, match="Permission denied") as info:
        spec_io.save(_model(), tmp_path / "m.mlmodel")
    assert str(tmp_path / "m.mlmodel") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused_before_writing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SpecError, match="not writable"):
            spec_io.save(_model(), folder / "m.mlmodel")
    finally:
        folder.chmod(0o755)


def test_an_existing_folder_as_the_path_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(SpecError, match="is a folder"):
        spec_io.save(_model(), tmp_path / "out")


@pytest.mark.parametrize("output, match", [("missing/m.mlmodel", "folder does not exist"),
                                           ("out", "is a folder")])
def test_train_recommender_checks_the_output_before_training(tmp_path, capsys, monkeypatch, output, match):
    (tmp_path / "out").mkdir()
    from pippin.recommend import ItemSimilarityRecommender

    def never(*args, **kwargs):
        raise AssertionError("training started before the output path was checked")

    monkeypatch.setattr(ItemSimilarityRecommender, "fit", never)
    code = main(["train", "recommender", "--demo", "-o", str(tmp_path / output)])
    _, err = capsys.readouterr()
    assert code == 2 and match in err and err.count("\n") == 1, err


def test_train_sound_checks_the_output_before_reading_data(tmp_path, capsys):
    code = main(["train", "sound", str(tmp_path / "no-such-data"), "-o", str(tmp_path / "missing" / "m.mlmodel")])
    _, err = capsys.readouterr()
    assert code == 2 and "folder does not exist" in err and err.count("\n") == 1, err
