"""SoundClassifier: training on the generated demo set, prediction, evaluation and the exported pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from pippin.audio import AudioError, SoundClassifier
from pippin.audio.io import read_windows
from pippin.datasets import SoundDataset, make_demo_sounds
from pippin.pipelines import load
from pippin.spec import load as load_spec
from pippin.spec.validate import validate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_sounds(tmp_path_factory.mktemp("demo"), clips_per_kind=4, seconds=1.5, seed=1)


@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    clf = SoundClassifier(feature_extractor="scratch", epochs=8, validation_fraction=0.25, random_state=0, progress=False)
    rows = []
    clf.fit(demo, on_epoch=rows.append)
    path = clf.export(tmp_path_factory.mktemp("model") / "demo.mlmodel")
    return clf, path, rows


def test_train_returns_self_and_learns(trained, demo):
    clf, _, rows = trained
    assert list(clf.classes_) == ["chirp", "clicks", "hum", "noise", "tone"]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["loss"] < rows[0]["loss"]
    report = clf.evaluate(demo)
    assert report["accuracy"] >= 0.8  # five very different sound kinds; chance is 0.2
    assert np.asarray(report["confusion_matrix"]).sum() == len(demo)
    assert set(report["per_class"]) == set(clf.classes_) and report["skipped"] == []


def test_exported_structure(trained):
    _, path, _ = trained
    spec = load_spec(path)
    assert validate(spec) == []
    assert spec.specificationVersion == 4 and spec.isUpdatable
    assert spec.WhichOneof("Type") == "pipelineClassifier"
    pipe = spec.pipelineClassifier.pipeline
    assert list(pipe.names) == ["preprocessing", "classifier"]
    pre, net = pipe.models
    assert pre.WhichOneof("Type") == "soundAnalysisPreprocessing" and pre.soundAnalysisPreprocessing.HasField("vggish")
    assert net.WhichOneof("Type") == "neuralNetworkClassifier" and net.isUpdatable
    assert [(f.name, list(f.type.multiArrayType.shape)) for f in spec.description.input] == [("audioSamples", [15600])]
    outputs = {f.name: f.type.WhichOneof("Type") for f in spec.description.output}
    assert outputs == {"classLabel": "stringType", "classLabelProbs": "dictionaryType"}
    assert [f.name for f in spec.description.trainingInput] == ["audioSamples", "classLabel"]
    layers = net.neuralNetworkClassifier.layers
    assert sorted(layer.name for layer in layers if layer.isUpdatable) == ["dense1", "dense2"]
    assert all(layer.WhichOneof("layer") == "innerProduct" for layer in layers if layer.isUpdatable)
    update = net.neuralNetworkClassifier.updateParams
    assert update.lossLayers[0].WhichOneof("LossLayerType") == "categoricalCrossEntropyLossLayer"
    assert update.optimizer.WhichOneof("OptimizerType") == "adamOptimizer"
    meta = spec.description.metadata.userDefined
    assert json.loads(meta["labels"]) == ["chirp", "clicks", "hum", "noise", "tone"]
    assert meta["sample_rate"] == "16000" and meta["resampler"].startswith("soxr")
    assert json.loads(meta["training_data"])["n_files"] == 20 and "pippin_version" in meta


def test_coremltools_parses_the_export(trained):
    ct = pytest.importorskip("coremltools")
    spec = ct.utils.load_spec(str(trained[1]))
    assert spec.WhichOneof("Type") == "pipelineClassifier"
    assert [m.WhichOneof("Type") for m in spec.pipelineClassifier.pipeline.models] == [
        "soundAnalysisPreprocessing", "neuralNetworkClassifier"]
    assert spec.description.predictedProbabilitiesName == "classLabelProbs"


def test_predict_rows_match_the_runtime(trained, demo):
    clf, path, _ = trained
    files = [demo.paths[0], demo.paths[-1]]
    results = clf.predict(files)
    model = load(path)
    for file, result in zip(files, results):
        starts, windows = read_windows(file, warn_short=False)
        probs = model.predict_batch({"audioSamples": windows})["classLabelProbs"]
        labels = list(model.class_labels)
        assert [w["start"] for w in result["windows"]] == pytest.approx(starts / 16000)
        assert [w["end"] - w["start"] for w in result["windows"]] == pytest.approx([0.975] * len(starts))
        window_probs = [w["probability"] for w in result["windows"]]
        np.testing.assert_allclose(window_probs, probs.max(axis=1), rtol=1e-6)
        mean = probs.mean(axis=0)
        assert result["label"] == labels[int(np.argmax(mean))]
        np.testing.assert_allclose([result["probabilities"][str(k)] for k in labels], mean, rtol=1e-6)
        single = model.predict({"audioSamples": windows[0]})
        assert single["classLabel"] == result["windows"][0]["label"]


def test_same_seed_same_bytes(demo, tmp_path):
    small = demo.subset([i for i, label in enumerate(demo.labels) if label in ("hum", "tone")])
    a = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=5, progress=False).fit(small).export(tmp_path / "a.mlmodel")
    b = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=5, progress=False).fit(small).export(tmp_path / "b.mlmodel")
    assert a.read_bytes() == b.read_bytes()


def test_label_without_usable_file_stops_with_its_name(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    soundfile.write(str(good / "x.wav"), np.zeros(16000), 16000)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "y.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="label 'broken' has no usable audio file.*y.wav"):
        SoundClassifier(feature_extractor="scratch", epochs=1, progress=False).fit(tmp_path)


def test_unreadable_files_are_skipped_not_fatal(demo, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....")
    data = demo.subset([i for i, label in enumerate(demo.labels) if label in ("hum", "tone")])
    data = SoundDataset(data.paths + [bad], data.labels + ["hum"], source="mixed")
    clf = SoundClassifier(feature_extractor="scratch", epochs=1, random_state=0, progress=False).fit(data)
    assert [s["path"] for s in clf.skipped_] == [str(bad)]
    assert clf.training_summary_["n_skipped"] == 1
    assert "error" in clf.predict([bad])[0]


@pytest.mark.parametrize(("params", "match"), [
    ({"epochs": 0}, "epochs=0"),
    ({"overlap": 1.0}, "overlap=1.0"),
    ({"validation_fraction": -0.1}, "validation_fraction"),
])
def test_bad_parameters(demo, params, match):
    with pytest.raises(AudioError, match=match):
        SoundClassifier(feature_extractor="scratch", **params).fit(demo)


def test_not_fitted_and_params_round_trip(tmp_path):
    clf = SoundClassifier(feature_extractor="scratch", epochs=3, random_state=1)
    assert not hasattr(clf, "classes_")
    with pytest.raises(AudioError, match="not fitted"):
        clf.export(tmp_path / "m.mlmodel")
    assert SoundClassifier(**clf.get_params()).get_params() == clf.get_params()
    assert clf.set_params(epochs=7).epochs == 7


def test_long_files_stream_with_the_same_result(trained, demo, monkeypatch):
    import pippin.audio.inference as inference

    clf = trained[0]
    files = [demo.paths[0], demo.paths[5]]
    whole = clf.predict(files)
    monkeypatch.setattr(inference, "_STREAM_SECONDS", 0.5)  # every demo clip (1.5 s) now streams
    monkeypatch.setattr(inference, "_BATCH_WINDOWS", 2)
    streamed = clf.predict(files)
    for a, b in zip(whole, streamed):
        assert a["label"] == b["label"] and len(a["windows"]) == len(b["windows"]) == 3
        assert [w["start"] for w in a["windows"]] == [w["start"] for w in b["windows"]]
        assert a["probability"] == pytest.approx(b["probability"], rel=1e-5)
