"""``pippin personalize`` does not depend on the working directory (issue 13, item 1).

The issue's reproduction, on the generated demo sounds: a model trained from inside
``work/`` on a relative folder (``sounds2/``), personalized from the parent directory,
and again with the training folder moved away. The model carries its old classes'
embedding memory (``pippin.memory``), so the k-NN personalization is the same from
anywhere; without that memory and without the recordings the command stops (exit 2,
naming the paths it tried) instead of silently falling back to synthesized prototypes.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pippin.pipelines import load
from pippin.pipelines.cli.main import main
from pippin.spec import io as spec_io

OLD, NEW = ("tone", "noise", "hum"), ("chirp", "clicks")
N_TRAIN, N_CLIPS = 10, 14  # old kinds: clips 0-9 train, 10-13 test; new kinds: clips 0-4 teach, 5-13 test


def _split(root):
    from pippin.datasets import make_demo_sounds

    data = make_demo_sounds(root / "all", clips_per_kind=N_CLIPS, seconds=1.5, seed=3)
    work = root / "work"
    split = {"sounds2": [], "test_old": [], "my-sounds": [], "test_new": []}
    for path, label in zip(data.paths, data.labels):
        i = int(path.stem.rsplit("_", 1)[1])
        part = ("sounds2" if i < N_TRAIN else "test_old") if label in OLD else ("my-sounds" if i < 5 else "test_new")
        (work / part / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, work / part / label / path.name)
        split[part].append((work / part / label / path.name, label))
    shutil.rmtree(root / "all")
    return work, split


def accuracy(model_path, items) -> float:
    from pippin.audio.inference import classify_files

    results, _ = classify_files(load(model_path), [p for p, _ in items])
    return float(np.mean([r["label"] == label for r, (_, label) in zip(results, items)]))


def _train(root, monkeypatch, extractor: str, epochs: str):
    work, split = _split(root)
    monkeypatch.chdir(work)  # as the issue: cd work && pippin train sound sounds2/ -o sounds.mlmodel
    assert main(["train", "sound", "sounds2", "-o", "sounds.mlmodel", "--feature-extractor", extractor,
                 "--epochs", epochs, "--validation-fraction", "0", "--seed", "0", "--json"]) == 0
    return work, split


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        yield _train(tmp_path_factory.mktemp("scratch"), monkeypatch, "scratch", "6")
    finally:
        monkeypatch.undo()


def _personalize(capsys, *argv):
    capsys.readouterr()  # whatever was printed before
    code = main(["personalize", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err


def test_scratch_model_carries_its_memory_and_the_absolute_training_path(scratch):
    work, _ = scratch
    meta = spec_io.load(work / "sounds.mlmodel").description.metadata.userDefined
    memory = json.loads(meta["pippin.memory"])
    assert sorted(set(memory["labels"])) == sorted(OLD) and memory["shape"][0] <= 20 * len(OLD)
    assert json.loads(meta["training_data"])["source_path"] == str((work / "sounds2").resolve())


def test_personalize_from_another_directory_with_the_training_folder_moved(scratch, monkeypatch, capsys):
    work, split = scratch
    monkeypatch.chdir(work)
    code, here, err = _personalize(capsys, "sounds.mlmodel", "my-sounds", "-o", "p_here.mlmodel")
    assert code == 0, err
    monkeypatch.chdir(work.parent)  # cd .. && pippin personalize work/sounds.mlmodel work/my-sounds -o work/p.mlmodel
    moved = work.parent / "elsewhere"
    shutil.move(str(work / "sounds2"), str(moved))
    try:
        code, there, err = _personalize(capsys, "work/sounds.mlmodel", "work/my-sounds", "-o", "work/p.mlmodel")
    finally:
        shutil.move(str(moved), str(work / "sounds2"))
    assert code == 0, err
    assert here["base_examples"] == there["base_examples"] == "the model's embedding memory"
    assert "warning" not in err
    old_here, old_there = accuracy(work / "p_here.mlmodel", split["test_old"]), accuracy(work / "p.mlmodel",
                                                                                       split["test_old"])
    old_before = accuracy(work / "sounds.mlmodel", split["test_old"])
    print(f"old classes: original {old_before:.3f}, personalized here {old_here:.3f}, elsewhere {old_there:.3f}")
    assert abs(old_here - old_there) <= 0.01 and old_there >= old_before - 0.02
    assert accuracy(work / "p.mlmodel", split["test_new"]) >= 0.9
    assert load(work / "p.mlmodel").spec.description.metadata.userDefined["pippin.examples_seen"] == str(
        there["n_windows"])


def _without_memory(work, tmp_path):
    spec = spec_io.load(work / "sounds.mlmodel")
    del spec.description.metadata.userDefined["pippin.memory"]  # as a model trained before the memory existed
    return spec_io.save(spec, tmp_path / "old-style.mlmodel")


def test_without_memory_a_relative_source_resolves_against_the_model_folder(scratch, tmp_path, monkeypatch, capsys):
    work, _ = scratch
    spec = spec_io.load(work / "sounds.mlmodel")
    del spec.description.metadata.userDefined["pippin.memory"]
    summary = json.loads(spec.description.metadata.userDefined["training_data"])
    summary.pop("source_path")  # only "source": "sounds2", as today's models record it
    spec.description.metadata.userDefined["training_data"] = json.dumps(summary)
    model = spec_io.save(spec, work / "relative.mlmodel")
    monkeypatch.chdir(tmp_path)
    code, report, err = _personalize(capsys, model, work / "my-sounds", "-o", tmp_path / "p.mlmodel")
    assert code == 0, err
    assert report["base_examples"] == str(work / "sounds2")


@pytest.mark.parametrize("head", [False, True], ids=["knn", "head"])
def test_no_memory_and_no_recordings_exits_2_naming_the_missing_path(scratch, tmp_path, monkeypatch, capsys, head):
    work, _ = scratch
    model = _without_memory(work, tmp_path)
    monkeypatch.chdir(tmp_path)
    moved = work.parent / "elsewhere"
    shutil.move(str(work / "sounds2"), str(moved))
    try:
        extra = ["--head", "--epochs", "1"] if head else []
        code, report, err = _personalize(capsys, model, work / "my-sounds", "-o", tmp_path / "p.mlmodel", *extra)
        assert code == 2 and not (tmp_path / "p.mlmodel").exists()
        assert report["error"]["message"].count("sounds2") >= 1 and str(work / "sounds2") in report["error"]["message"]
        assert "--base-examples" in report["error"]["hint"]
        code, report, err = _personalize(capsys, model, work / "my-sounds", "-o", tmp_path / "p.mlmodel",
                                         "--without-old-examples", *extra)
        assert code == 0 and report["base_examples"] is None and err.count("may lose accuracy") == 1
    finally:
        shutil.move(str(moved), str(work / "sounds2"))


def test_memory_is_ignored_once_the_embedding_layers_change(scratch, tmp_path, monkeypatch, capsys):
    """``pippin update`` retrains dense1 of the scratch model: the stored embeddings are stale then."""
    from pippin.pipelines.personalize.memory import memory_of

    work, _ = scratch
    assert memory_of(spec_io.load(work / "sounds.mlmodel")) is not None
    assert main(["update", str(work / "sounds.mlmodel"), str(work / "test_old"), "-o", str(tmp_path / "u.mlmodel"),
                 "--epochs", "1"]) == 0
    assert memory_of(spec_io.load(tmp_path / "u.mlmodel")) is None


def test_backbone_model_personalizes_from_its_memory(tmp_path_factory, monkeypatch, capsys):
    """A pretrained-backbone pipeline (``--feature-extractor speech``) carries its memory too."""
    root = tmp_path_factory.mktemp("speech")
    work, split = _train(root, monkeypatch, "speech", "20")
    capsys.readouterr()
    moved = root / "elsewhere"
    shutil.move(str(work / "sounds2"), str(moved))
    monkeypatch.chdir(root)
    code, report, err = _personalize(capsys, "work/sounds.mlmodel", "work/my-sounds", "-o", "work/p.mlmodel")
    assert code == 0, err
    assert report["base_examples"] == "the model's embedding memory"
    shutil.move(str(moved), str(work / "sounds2"))
    code, with_recordings, err = _personalize(capsys, "work/sounds.mlmodel", "work/my-sounds", "-o", "work/r.mlmodel",
                                              "--base-examples", "work/sounds2")
    assert code == 0, err
    old_memory, old_recordings = (accuracy(work / name, split["test_old"]) for name in ("p.mlmodel", "r.mlmodel"))
    print(f"old classes: from memory {old_memory:.3f}, from the recordings {old_recordings:.3f}")
    assert old_memory >= old_recordings - 0.01
    # --head needs recordings: found from another directory through the recorded absolute path ...
    code, head, err = _personalize(capsys, "work/sounds.mlmodel", "work/my-sounds", "-o", "work/h.mlmodel", "--head",
                                   "--epochs", "2")
    assert code == 0 and head["base_examples"] == str((work / "sounds2").resolve()), err
    # ... and, with the folder moved away, refused naming it
    shutil.move(str(work / "sounds2"), str(moved))
    try:
        code, head, err = _personalize(capsys, "work/sounds.mlmodel", "work/my-sounds", "-o", "work/h2.mlmodel",
                                       "--head", "--epochs", "2")
    finally:
        shutil.move(str(moved), str(work / "sounds2"))
    assert code == 2 and str((work / "sounds2").resolve()) in head["error"]["message"]


def test_an_old_class_missing_from_the_memory_keeps_a_prototype(scratch, tmp_path, capsys):
    """A class none of whose training windows the model got right has no centroid: it is not dropped."""
    import base64

    work, _ = scratch
    spec = spec_io.load(work / "sounds.mlmodel")
    entry = json.loads(spec.description.metadata.userDefined["pippin.memory"])
    rows = np.frombuffer(base64.b64decode(entry["data"]), dtype="<f2").reshape(entry["shape"])
    keep = [i for i, label in enumerate(entry["labels"]) if label != "hum"]
    entry.update(labels=[entry["labels"][i] for i in keep], shape=[len(keep), rows.shape[1]],
                 data=base64.b64encode(rows[keep].tobytes()).decode())
    spec.description.metadata.userDefined["pippin.memory"] = json.dumps(entry)
    model = spec_io.save(spec, tmp_path / "no-hum.mlmodel")
    code, report, err = _personalize(capsys, model, work / "my-sounds", "-o", tmp_path / "p.mlmodel")
    assert code == 0, err
    assert "synthesized prototypes for ['hum']" in report["memory"]
    knn = load(tmp_path / "p.mlmodel").spec.pipelineClassifier.pipeline.models[2].kNearestNeighborsClassifier
    assert "hum" in list(knn.stringClassLabels.vector)


def test_head_personalization_reads_a_flat_training_folder_with_the_recorded_label_regex(tmp_path, capsys):
    """Trained with --label-from-name on a flat folder: --head finds the old recordings and labels them by the
    same regex (recorded in the training summary), instead of failing on a folder without label sub-folders."""
    from pippin.datasets import make_demo_sounds

    data = make_demo_sounds(tmp_path / "kinds", clips_per_kind=4, seconds=1.2, seed=5)
    flat, mine = tmp_path / "flat", tmp_path / "mine" / "clicks"
    flat.mkdir()
    mine.mkdir(parents=True)
    for path, label in zip(data.paths, data.labels):
        shutil.copy(path, (mine if label == "clicks" else flat) / path.name)  # tone_0.wav: label in the name
    model = tmp_path / "flat.mlmodel"
    assert main(["train", "sound", str(flat), "--label-from-name", r"^([a-z]+)_\d+\.wav$", "-o", str(model),
                 "--feature-extractor", "speech", "--epochs", "3", "--seed", "0", "--json"]) == 0
    summary = json.loads(spec_io.load(model).description.metadata.userDefined["training_data"])
    assert summary["label_from_name"] == r"^([a-z]+)_\d+\.wav$"
    code, payload, err = _personalize(capsys, model, tmp_path / "mine", "-o", tmp_path / "p.mlmodel", "--head",
                                      "--epochs", "3")
    assert code == 0, err
    assert payload["base_examples"] == str(flat.resolve()) and payload["new_labels"] == ["clicks"]
    assert sorted(load(tmp_path / "p.mlmodel").class_labels) == ["chirp", "clicks", "hum", "noise", "tone"]
