"""``pippin train sound``, ``pippin predict`` and ``pippin evaluate`` on the generated demo sounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pippin.audio.io import read_windows
from pippin.datasets import make_demo_sounds
from pippin.pipelines import load
from pippin.pipelines.cli.main import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sounds")
    make_demo_sounds(root, clips_per_kind=3, seconds=1.2, seed=2)
    return root


@pytest.fixture(scope="module")
def model_path(demo_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "demo.mlmodel"
    assert main(["train", "sound", str(demo_dir), "-o", str(path), "--feature-extractor", "scratch", "--epochs", "4", "--seed", "1",
                 "--validation-fraction", "0.3", "--batch-size", "16", "--json"]) == 0
    return path


def test_train_prints_a_line_per_epoch(demo_dir, tmp_path, capsys):
    code, out, err = _run(capsys, "train", "sound", str(demo_dir), "-o", str(tmp_path / "m.mlmodel"),
                          "--feature-extractor", "scratch", "--epochs", "2", "--seed", "3", "--learning-rate", "0.003", "--overlap", "0.25")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "loss" in lines[0] and "train accuracy" in lines[0]
    assert "validation accuracy" in lines[0]
    assert "wrote" in out and (tmp_path / "m.mlmodel").exists()


def test_train_json(demo_dir, tmp_path, capsys):
    code, out, _ = _run(capsys, "train", "sound", str(demo_dir), "-o", str(tmp_path / "j.mlmodel"),
                        "--feature-extractor", "scratch", "--epochs", "1", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["ok"]
    assert payload["labels"] == ["chirp", "clicks", "hum", "noise", "tone"]
    assert payload["training_data"]["n_files"] == 15 and len(payload["history"]) == 1


def test_predict_json_matches_runtime(model_path, demo_dir, capsys):
    files = sorted(demo_dir.glob("*/*_0.wav"))
    code, out, _ = _run(capsys, "predict", str(model_path), *map(str, files), "--json")
    assert code == 0
    predictions = json.loads(out)["predictions"]
    model = load(model_path)
    labels = [str(x) for x in model.class_labels]
    for file, pred in zip(files, predictions):
        assert pred["path"] == str(file)
        _, windows = read_windows(file, warn_short=False)
        probs = model.predict_batch({"audioSamples": windows})["classLabelProbs"]
        np.testing.assert_allclose([pred["probabilities"][k] for k in labels], probs.mean(axis=0), rtol=1e-6)
        assert [w["label"] for w in pred["windows"]] == [labels[i] for i in probs.argmax(axis=1)]
        assert pred["windows"][0]["start"] == 0.0 and pred["windows"][0]["end"] == pytest.approx(0.975)


def test_predict_text_and_bad_file(model_path, demo_dir, tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"nope")
    good = next(demo_dir.glob("hum/*.wav"))
    code, out, err = _run(capsys, "predict", str(model_path), str(good), str(bad))
    assert code == 2
    assert out.startswith(f"{good}: ") and "broken.wav" in err


def test_evaluate_json_and_plot(model_path, demo_dir, tmp_path, capsys):
    plot = tmp_path / "confusion.png"
    code, out, _ = _run(capsys, "evaluate", str(model_path), str(demo_dir), "--json", "--plot", str(plot))
    report = json.loads(out)
    assert code == 0 and report["ok"]
    for key in ("accuracy", "labels", "per_class", "confusion_matrix", "skipped"):
        assert key in report
    assert np.asarray(report["confusion_matrix"]).sum() == 15
    assert report["accuracy"] == pytest.approx(np.trace(report["confusion_matrix"]) / 15)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_table_and_validate(model_path, demo_dir, tmp_path, capsys):
    table = tmp_path / "labels.csv"
    rows = [f"{p.relative_to(demo_dir.parent)},{p.parent.name}" for p in sorted(demo_dir.glob("*/*.wav"))[:5]]
    table.write_text("path,label\n" + "\n".join(rows) + "\n")
    table.rename(demo_dir.parent / "labels.csv")
    code, out, _ = _run(capsys, "evaluate", str(model_path), str(demo_dir.parent / "labels.csv"))
    assert code == 0 and out.startswith("accuracy ") and "on 5 clips" in out
    code, out, _ = _run(capsys, "validate", str(model_path))
    assert code == 0


def test_errors_are_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "train", "sound", str(tmp_path / "missing"), "-o", str(tmp_path / "m.mlmodel"))
    assert code == 2 and err.strip().count("\n") == 0 and "missing" in err


def test_predict_with_a_model_that_is_not_a_classifier(tmp_path, capsys):
    from pippin.audio.preprocessing_spec import preprocessing_spec
    from pippin.spec import save

    save(preprocessing_spec(), tmp_path / "pre.mlmodel")
    wav = tmp_path / "a.wav"
    import soundfile

    soundfile.write(str(wav), np.zeros(16000), 16000)
    code, _, err = _run(capsys, "predict", str(tmp_path / "pre.mlmodel"), str(wav))
    assert code == 2 and "not a sound classifier" in err and "pre.mlmodel" in err


def test_train_sound_defaults_are_the_classifiers_defaults():
    """The CLI spells its defaults out (so --help shows them); they must not drift from the API's."""
    import inspect

    from pippin.audio import SoundClassifier
    from pippin.pipelines.cli.main import build_parser

    args = build_parser().parse_args(["train", "sound", "DATA", "-o", "m.mlmodel"])
    api = {k: p.default for k, p in inspect.signature(SoundClassifier).parameters.items()}
    cli = {"feature_extractor": args.feature_extractor, "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
           "validation_fraction": args.validation_fraction, "early_stopping_patience": args.patience,
           "overlap": args.overlap, "augment": args.augment}
    assert cli == {k: api[k] for k in cli}
