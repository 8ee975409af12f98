"""Issue 12.5: every per-file audio problem is named, counted and skipped, and the good files'
results are kept (predict and train sound); file names need not be UTF-8."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from pippin.audio.errors import AudioError
from pippin.audio.io import read_audio
from pippin.pipelines.cli.main import main

BAD_NAME = os.fsdecode(b"bad\xff.wav")  # not UTF-8: a surrogate escape in Python


def _tone(path, freq=440.0, n=16000):
    t = np.arange(n) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


@pytest.fixture()
def folder(tmp_path):
    """good.wav, a non-UTF-8 name, and one of each problem."""
    d = tmp_path / "clips"
    d.mkdir()
    _tone(d / "good.wav")
    _tone(os.path.join(os.fsencode(d), os.fsencode(BAD_NAME)))
    (d / "folder.wav").mkdir()
    os.symlink("loop.wav", d / "loop.wav")
    os.symlink("nothere.wav", d / "dangling.wav")
    os.mkfifo(d / "fifo.wav")
    sf.write(d / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    return d


PROBLEMS = {
    "folder.wav": "is a folder",
    "loop.wav": "symlink loop",
    "dangling.wav": "symlink to a missing file",
    "fifo.wav": "not a regular file",
    "nan.wav": "NaN or infinite",
    "missing.wav": "no such audio file",
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_each_problem_is_named(folder, name):
    with pytest.raises(AudioError, match=PROBLEMS[name]) as info:
        read_audio(folder / name)
    assert name in str(info.value)


def test_a_file_name_that_is_not_utf8_is_read(folder):
    assert read_audio(folder / BAD_NAME).shape == (16000,)


@pytest.fixture(scope="module")
def sound_model(tmp_path_factory):
    from pippin.audio.network import build_network, export_pipeline
    from pippin.spec import io as spec_io

    net = build_network(["a", "b"], seed=0, learning_rate=1e-3, batch_size=8, epochs=1)
    return spec_io.save(export_pipeline(net, metadata={}), tmp_path_factory.mktemp("m") / "m.mlmodel")


def test_predict_keeps_the_good_files_and_names_each_bad_one(folder, sound_model, capsys):
    files = sorted(str(p) for p in folder.iterdir()) + [str(folder / "missing.wav")]
    code = main(["predict", str(sound_model)] + files)
    out, err = capsys.readouterr()
    assert code == 2  # some files were skipped
    assert "good.wav: " in out and "bad\\udcff.wav: " in out  # both good files predicted, the odd name escaped
    for name, reason in PROBLEMS.items():
        assert any(name in line and reason in line for line in err.splitlines()), (name, err)
    assert err.count("pippin: error: ") == len(PROBLEMS)


def test_a_folder_listing_names_what_only_looks_like_audio(folder, tmp_path):
    from pippin.datasets.sound import load_sound_folder

    (tmp_path / "data").mkdir()
    os.rename(folder, tmp_path / "data" / "dog")
    data = load_sound_folder(tmp_path / "data")
    names = {os.path.basename(str(p)) for p in data.paths}
    assert {"good.wav", BAD_NAME, "folder.wav", "loop.wav", "dangling.wav"} <= names


def test_train_sound_skips_and_names_bad_files_and_keeps_the_good(tmp_path, capsys):
    data = tmp_path / "data"
    for label, freq in (("low", 300.0), ("high", 2000.0)):
        (data / label).mkdir(parents=True)
        for i in range(3):
            _tone(data / label / f"{label}{i}.wav", freq * (1 + 0.05 * i))
    _tone(os.path.join(os.fsencode(data / "low"), os.fsencode(BAD_NAME)), 310.0)
    (data / "high" / "folder.wav").mkdir()
    os.symlink("loop.wav", data / "high" / "loop.wav")
    out_path = tmp_path / "m.mlmodel"
    code = main(["train", "sound", str(data), "-o", str(out_path), "--epochs", "1",
                 "--feature-extractor", "scratch"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "folder.wav: is a folder" in err and "loop.wav: symlink loop" in err
    assert out_path.exists() and "7 files" in out + err, out + err


def test_undecodable_files_read_beside_good_ones_on_threads_never_break_them(tmp_path):
    """A failed open must not close a descriptor twice: another thread may have reused the number for a good
    file, whose close then failed with libsndfile's "No error defined" (an internal error in ``train sound``)."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(6):
        _tone(tmp_path / f"good{i}.wav", freq=200.0 + 50 * i, n=4000)
    (tmp_path / "broken.wav").write_text("not audio")
    paths = sorted(tmp_path.glob("*.wav"))

    def read(path):
        try:
            return len(read_audio(path))
        except AudioError:
            return None

    with ThreadPoolExecutor(2) as pool:
        for _ in range(200):  # the race showed within ~100 rounds before the fix
            assert [n is None for n in pool.map(read, paths)] == [p.name == "broken.wav" for p in paths]
