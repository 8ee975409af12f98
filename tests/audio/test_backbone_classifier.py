"""SoundClassifier with a pretrained backbone: trains a head, exports backbone -> head natively, runs equal."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.audio import SoundClassifier
from pippin.audio.backbones import BACKBONES, get_backbone
from pippin.audio.embeddings import embed_windows
from pippin.audio.errors import AudioError
from pippin.audio.head import EMBEDDING_INPUT
from pippin.audio.io import read_windows
from pippin.datasets import make_demo_sounds
from pippin.spec import io as spec_io
from pippin.spec.validate import validate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_sounds(tmp_path_factory.mktemp("demo"), clips_per_kind=6, seconds=1.0, seed=3)


@pytest.fixture(scope="module", params=BACKBONES)
def fitted(request, demo, tmp_path_factory):
    clf = SoundClassifier(feature_extractor=request.param, random_state=0, progress=False).fit(demo)
    path = clf.export(tmp_path_factory.mktemp("models") / f"{request.param}.mlmodel")
    return clf, path


def test_head_learns_the_demo_kinds(fitted, demo):
    clf, _ = fitted
    assert clf.evaluate(demo)["accuracy"] >= 0.9
    assert list(clf.classes_) == sorted(set(demo.labels))


def test_exported_file_runs_equal_to_the_training_path(fitted, demo):
    """The file's backbone layers + head give the probabilities of the head on NumPy embeddings (1e-4)."""
    import pippin.pipelines as pp

    clf, path = fitted
    backbone = get_backbone(clf.feature_extractor)
    windows = np.concatenate([read_windows(p, sample_rate=backbone.sample_rate, window=backbone.window_samples,
                                           warn_short=False)[1] for p in demo.paths[::5]])
    whole = pp.load(path).predict_batch({"audioSamples": windows})["classLabelProbs"]
    head = pp.load(clf.network_spec_).predict_batch({EMBEDDING_INPUT: embed_windows(backbone, windows)})
    np.testing.assert_allclose(whole, head["classLabelProbs"], atol=1e-4)
    assert len(set(np.argmax(whole, axis=1))) > 1  # the windows differ


def test_export_is_native_valid_and_carries_the_licence(fitted):
    clf, path = fitted
    spec = spec_io.load(path)
    assert validate(spec) == []
    stages = spec.pipelineClassifier.pipeline.models
    assert [s.WhichOneof("Type") for s in stages] == ["neuralNetwork", "neuralNetworkClassifier"]
    for stage in stages:
        network = getattr(stage, stage.WhichOneof("Type"))
        assert not [layer.name for layer in network.layers if layer.WhichOneof("layer") == "custom"]
    meta = spec.description.metadata
    backbone = get_backbone(clf.feature_extractor)
    assert backbone.licence in meta.license and backbone.licence in meta.userDefined["backbone.licence"]
    assert meta.userDefined["backbone.attribution"] == backbone.attribution
    assert int(meta.userDefined["sample_rate"]) == backbone.sample_rate
    assert spec.isUpdatable and stages[1].isUpdatable


def test_export_parses_in_coremltools(fitted):
    proto = pytest.importorskip("coremltools.proto.Model_pb2")
    _, path = fitted
    model = proto.Model()
    model.ParseFromString(path.read_bytes())
    assert model.WhichOneof("Type") == "pipelineClassifier"


def test_same_seed_same_bytes(demo, tmp_path):
    a = SoundClassifier(feature_extractor="speech", random_state=4, progress=False).fit(demo).export(tmp_path / "a")
    b = SoundClassifier(feature_extractor="speech", random_state=4, progress=False).fit(demo).export(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def test_unknown_feature_extractor_is_named(demo):
    with pytest.raises(AudioError, match="feature_extractor='birds'"):
        SoundClassifier(feature_extractor="birds", progress=False).fit(demo)


def test_personalizing_a_backbone_model_gives_a_valid_model(fitted, demo):
    """k-NN personalization cuts the head; its blobs must not clash with the backbone stage's."""
    from pippin.pipelines.personalize import personalize_knn

    clf, path = fitted
    backbone = get_backbone(clf.feature_extractor)
    windows = np.concatenate([read_windows(p, sample_rate=backbone.sample_rate, window=backbone.window_samples,
                                           warn_short=False)[1] for p in demo.paths[:3]])
    personal = personalize_knn(spec_io.load(path), (windows, ["mine"] * len(windows)), k=1)
    assert validate(personal) == []


def test_auto_chooses_a_backbone_by_cross_validation_and_records_it(demo):
    import json

    clf = SoundClassifier(feature_extractor="auto", random_state=0, progress=False).fit(demo)
    assert clf.feature_extractor_ in BACKBONES and clf.feature_extractor == "auto"
    scores = clf.selection_["scores"]
    assert set(scores) == set(BACKBONES) and all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores[clf.feature_extractor_] == max(scores.values())
    meta = clf.spec_.description.metadata.userDefined
    assert json.loads(meta["feature_extractor_selection"])["chosen"] == clf.feature_extractor_
    assert meta["feature_extractor"] == clf.feature_extractor_
