"""Personalization of a sound classifier trained on the demo sounds (pippin.datasets)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pippin.audio.network import DENSE_UNITS
from pippin.pipelines import load
from pippin.pipelines.cli.main import main
from pippin.pipelines.personalize.sound import embedding_network, personalize_head, personalize_knn, sound_parts
from pippin.spec import io as spec_io

OLD, NEW = ("tone", "noise", "hum"), ("chirp", "clicks")
N_TRAIN, N_CLIPS = 10, 14  # old kinds: clips 0-9 train, 10-13 test; new kinds: clips 0-4 teach, 5-13 test


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    from pippin.audio import SoundClassifier
    from pippin.datasets import make_demo_sounds

    root = tmp_path_factory.mktemp("sounds")
    data = make_demo_sounds(root / "all", clips_per_kind=N_CLIPS, seconds=1.5, seed=3)
    split = {"train": [], "old_test": [], "teach": [], "new_test": []}
    for path, label in zip(data.paths, data.labels):
        i = int(path.stem.rsplit("_", 1)[1])
        part = ("train" if i < N_TRAIN else "old_test") if label in OLD else ("teach" if i < 5 else "new_test")
        (root / part / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / part / label / path.name)
        split[part].append((root / part / label / path.name, label))
    clf = SoundClassifier(feature_extractor="scratch", epochs=6, random_state=0, progress=False, validation_fraction=0.0).fit(root / "train")
    return {"root": root, "model": clf.export(root / "sound.mlmodel"), **split}


def windows(items):
    from pippin.audio.io import read_windows

    parts = [read_windows(path, warn_short=False)[1] for path, _ in items]
    return np.concatenate(parts), [label for part, (_, label) in zip(parts, items) for _ in range(len(part))]


def accuracy(model, items) -> float:
    from pippin.audio.inference import classify_files

    results, _ = classify_files(model, [p for p, _ in items])
    return float(np.mean([r["label"] == label for r, (_, label) in zip(results, items)]))


def test_embedding_network_is_the_classifier_cut_before_its_last_dense_layer(sounds):
    _, net, _ = sound_parts(spec_io.load(sounds["model"]))
    embed_spec, n_dims = embedding_network(net)
    kinds = [layer.WhichOneof("layer") for layer in embed_spec.neuralNetwork.layers]
    assert n_dims == DENSE_UNITS and kinds[-2:] == ["activation", "l2normalize"] and kinds.count("innerProduct") == 1
    x = np.random.default_rng(0).normal(size=(3, 1, 96, 64)).astype(np.float32)
    e = load(embed_spec).predict_batch({"preprocessedAudio": x})["embedding"]
    np.testing.assert_allclose(np.linalg.norm(np.asarray(e).reshape(3, -1), axis=1), 1.0, rtol=1e-5)
    assert not embed_spec.isUpdatable and not any(layer.isUpdatable for layer in embed_spec.neuralNetwork.layers)


def test_knn_personalization_learns_new_sounds_and_keeps_old_accuracy(sounds, tmp_path, capsys):
    out = tmp_path / "personal.mlmodel"
    code = main(["personalize", str(sounds["model"]), str(sounds["root"] / "teach"), "-o", str(out),
                 "--base-examples", str(sounds["root"] / "train"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["new_labels"] == sorted(NEW) and report["n_files"] == 10
    personal, original = load(out), load(sounds["model"])
    new_accuracy = accuracy(personal, sounds["new_test"])
    old_before, old_after = accuracy(original, sounds["old_test"]), accuracy(personal, sounds["old_test"])
    print(f"new sounds {new_accuracy:.3f}; old classes {old_before:.3f} -> {old_after:.3f}")
    assert new_accuracy >= 0.9
    assert old_after >= old_before - 0.02
    assert main(["validate", str(out)]) == 0
    ct = pytest.importorskip("coremltools")
    assert ct.models.utils.load_spec(str(out)).isUpdatable


def test_personalized_model_updates_with_more_examples(sounds, tmp_path):
    spec = personalize_knn(sounds["model"], windows(sounds["teach"][:1]), base_examples=windows(sounds["train"]))
    model = load(spec)
    more = windows([item for item in sounds["teach"] if item[1] == "clicks"])
    updated = model.update({"audioSamples": more[0], "classLabel": np.array(more[1], dtype=object)})
    assert accuracy(updated, [i for i in sounds["new_test"] if i[1] == "clicks"]) == 1.0


def test_dense_head_update_lowers_the_reported_loss(sounds):
    events = []
    spec = personalize_head(sounds["model"], windows(sounds["teach"]), base_examples=windows(sounds["train"]),
                            epochs=4, progress=events.append)
    losses = [e.loss for e in events if e.event == "epoch_end"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    _, net, _ = sound_parts(spec)
    assert list(net.neuralNetworkClassifier.stringClassLabels.vector)[-2:] == sorted(NEW)


def test_update_cli_on_the_sound_pipeline_lowers_loss_and_deltas_round_trip(sounds, tmp_path, capsys):
    updated, delta, rebuilt = tmp_path / "u.mlmodel", tmp_path / "u.mldelta", tmp_path / "r.mlmodel"
    assert main(["update", str(sounds["model"]), str(sounds["root"] / "old_test"), "-o", str(updated),
                 "--epochs", "3", "--json"]) == 0
    losses = json.loads(capsys.readouterr().out)["losses"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert main(["diff", str(sounds["model"]), str(updated), "-o", str(delta)]) == 0
    assert main(["apply", str(sounds["model"]), str(delta), "-o", str(rebuilt)]) == 0
    assert rebuilt.read_bytes() == updated.read_bytes()
    assert delta.stat().st_size < updated.stat().st_size / 3


def test_personalize_rejects_a_model_that_is_not_a_sound_classifier(tmp_path, capsys):
    from pippin.pipelines import KNearestNeighborsClassifier

    path = KNearestNeighborsClassifier(n_dimensions=2, default_label="?").save(tmp_path / "k.mlmodel")
    (tmp_path / "ex" / "a").mkdir(parents=True)
    assert main(["personalize", str(path), str(tmp_path / "ex"), "-o", str(tmp_path / "o.mlmodel")]) == 2
    assert "expected a sound classifier" in capsys.readouterr().err
