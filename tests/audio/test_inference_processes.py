"""``classify_files`` splits many files over forked processes: the same rows as one process, in order."""

import os

import pytest

from pippin.audio import SoundClassifier, inference
from pippin.audio.parallel import one_blas_thread
from pippin.datasets import make_demo_sounds
from pippin.pipelines import load


@pytest.fixture(scope="module")
def model_and_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    demo = make_demo_sounds(folder, clips_per_kind=3, seconds=1.2, seed=4)
    clf = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=0, progress=False).fit(demo)
    path = clf.export(tmp_path_factory.mktemp("model") / "m.mlmodel")
    files = sorted(str(p) for p in folder.rglob("*.wav"))
    (folder / "broken.wav").write_bytes(b"not audio")
    return load(path), files[:5] + [str(folder / "broken.wav")] + files[5:]


def test_forked_parts_give_the_serial_rows(model_and_files, monkeypatch):
    model, files = model_and_files
    monkeypatch.setattr(inference, "_n_cpus", lambda: 1)
    with one_blas_thread():  # as on one core (multi-threaded BLAS moves the last bits of a probability)
        serial = inference.classify_files(model, files)
    monkeypatch.setattr(inference, "_n_cpus", lambda: 3)
    monkeypatch.setattr(inference, "_FILES_PER_PROCESS", 2)
    seen = []
    original = inference._classify

    def spy(*args):
        seen.append(os.getpid())
        return original(*args)

    monkeypatch.setattr(inference, "_classify", spy)
    forked = inference.classify_files(model, files)
    assert [s["path"] for s in forked[1]] == [s["path"] for s in serial[1]]  # the skipped file
    assert len(forked[0]) == len(serial[0])
    for got, want in zip(forked[0], serial[0]):  # same rows in input order; probabilities to rounding (a part's
        # batches differ in size, and the runtime may pick another kernel for another batch size)
        assert got["path"] == want["path"] and got["label"] == want["label"]
        assert [w["label"] for w in got["windows"]] == [w["label"] for w in want["windows"]]
        assert got["probabilities"] == pytest.approx(want["probabilities"], rel=1e-5, abs=1e-6)
        assert [w["probability"] for w in got["windows"]] == pytest.approx(
            [w["probability"] for w in want["windows"]], rel=1e-5, abs=1e-6)
    assert [r["path"] for r in forked[0]] == [f for f in files if not f.endswith("broken.wav")]
    assert len(forked[1]) == 1 and forked[1][0]["path"].endswith("broken.wav")
    assert seen == [os.getpid()]  # this process ran one part; the two others ran in children
