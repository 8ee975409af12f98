"""describe(): the facts of each kind, and the text tree."""

from __future__ import annotations

import json

import pytest

import pippin.spec as spec
from pippin.spec.describe import render_text


def test_sound_pipeline(valid_models, tmp_path):
    model = valid_models["sound_pipeline"]()
    path = spec.save(model, tmp_path / "sound.mlmodel")
    info = spec.describe(model, path=path)
    assert info["file"] == str(path)
    assert info["file_size"] == len(model.SerializeToString())
    assert info["kind"] == "pipelineClassifier"
    assert info["specification_version"] == 4
    assert info["os_releases"] == {"iOS": "13.0", "macOS": "10.15", "watchOS": "6.0", "tvOS": "13.0"}
    assert info["minimum_specification_version"] == 4
    assert info["updatable"] is True
    assert info["inputs"] == [{"name": "audioSamples", "type": "MultiArray<FLOAT32>[15600]",
                               "kind": "multiArrayType", "optional": False, "shape": [15600],
                               "data_type": "FLOAT32"}]
    assert [o["name"] for o in info["outputs"]] == ["labelProbability", "label"]
    assert [t["name"] for t in info["training_inputs"]] == ["audioSamples", "label"]
    assert info["class_labels"] == ["yes", "no", "maybe"]
    pre, clf = info["stages"]
    assert (pre["kind"], pre["preprocessing"], pre["stage_name"]) == (
        "soundAnalysisPreprocessing", "vggish", "preprocessing")
    assert pre["outputs"][0]["shape"] == [1, 96, 64]
    assert clf["kind"] == "neuralNetworkClassifier" and clf["updatable"]
    assert clf["layers"] == {"innerProduct": 1, "softmax": 1} and clf["n_layers"] == 2
    assert clf["updatable_layers"] == ["dense"]
    update = clf["update"]
    assert update["loss_layers"] == [{"name": "loss", "type": "categoricalCrossEntropy",
                                      "input": "probs", "target": "label"}]
    assert update["optimizer"]["type"] == "sgd"
    assert update["optimizer"]["learningRate"] == {"default": 0.01, "range": [0.0, 1.0]}
    assert update["optimizer"]["miniBatchSize"] == {"default": 8, "set": [8]}
    assert update["epochs"] == {"default": 2, "set": [2]}
    json.dumps(info)


def test_describe_loads_a_path(valid_models, tmp_path):
    path = spec.save(valid_models["knn"](), tmp_path / "k.mlmodel")
    info = spec.describe(str(path))
    assert info["file"] == str(path) and info["file_size"] == path.stat().st_size
    assert (info["n_samples"], info["n_dimensions"], info["k"]) == (4, 3, 2)
    assert info["class_labels"] == ["maybe", "no", "yes"]
    assert (info["index"], info["weighting"]) == ("linearIndex", "uniformWeighting")


def test_recommender_item_count(valid_models):
    info = spec.describe(valid_models["recommender"]())
    assert (info["n_items"], info["item_ids"], info["n_similarities"]) == (3, "string", 3)
    assert info["outputs"][0]["type"] == "Sequence<string>"
    model = valid_models["recommender"]()
    model.itemSimilarityRecommender.ClearField("itemStringIds")
    assert spec.describe(model)["n_items"] == 3 and spec.describe(model)["item_ids"] == "index"


def test_minimum_version_above_declared(valid_models):
    model = valid_models["nn_plain"]()
    model.neuralNetwork.layers.add().oneHot.SetInParent()
    info = spec.describe(model)
    assert (info["specification_version"], info["minimum_specification_version"]) == (1, 5)
    assert "[needs >= 5]" in render_text(info).splitlines()[0]


@pytest.mark.parametrize("version, ios, macos", [(1, "11.0", "10.13"), (3, "12.0", "10.14"),
                                                 (5, "14.0", "11.0"), (9, "18.0", "15.0")])
def test_os_release_table(valid_models, version, ios, macos):
    model = valid_models["nn_plain"]()
    model.specificationVersion = version
    releases = spec.describe(model)["os_releases"]
    assert (releases["iOS"], releases["macOS"]) == (ios, macos)


def test_render_text_tree(valid_models, tmp_path):
    path = spec.save(valid_models["sound_pipeline"](), tmp_path / "s.mlmodel")
    text = render_text(spec.describe(spec.load(path), path=path))
    lines = text.splitlines()
    assert lines[0].startswith(f"{path}  (") and lines[0].endswith("kB)")
    assert lines[1] == ("pipelineClassifier  specificationVersion 4 (iOS 13.0, macOS 10.15, "
                        "watchOS 6.0, tvOS 13.0)  updatable")
    assert "├─ inputs (1)" in lines and "│  └─ audioSamples: MultiArray<FLOAT32>[15600]" in lines
    assert "├─ class labels (3): yes, no, maybe" in lines
    assert any(line.startswith("   ├─ [0] 'preprocessing' soundAnalysisPreprocessing") for line in lines)
    assert any(line.strip().endswith("layers (2): innerProduct 1, softmax 1") for line in lines)
    assert any("optimizer sgd: learningRate=0.01 in [0, 1], miniBatchSize=8 in [8]" in l for l in lines)
    assert lines[-1].strip().startswith("└─")


def test_describe_model_without_type():
    model = spec.Model()
    model.specificationVersion = 99
    info = spec.describe(model)
    assert info["kind"] is None and info["os_releases"] == {}
    assert render_text(info).startswith("no model type  specificationVersion 99 (unknown release)")


def test_describe_rejects_other_objects():
    with pytest.raises(TypeError, match="takes a Model or a path"):
        spec.describe(42)


def test_mlpackage_folder_size(valid_models, tmp_path):
    inner = tmp_path / "M.mlpackage" / "Data" / "com.apple.CoreML"
    inner.mkdir(parents=True)
    spec.save(valid_models["sound"](), inner / "model.mlmodel")
    (tmp_path / "M.mlpackage" / "Manifest.json").write_text("{}")
    info = spec.describe(tmp_path / "M.mlpackage")
    assert info["kind"] == "soundAnalysisPreprocessing"
    assert info["file_size"] == (inner / "model.mlmodel").stat().st_size + 2
