"""Pipeline builders: type-checked chaining, updatable last stage, files that validate and run."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import (KNearestNeighborsClassifier, Pipeline, PipelineClassifier, PipelineError,
                              PipelineRegressor, load)
from pippin.spec import io as spec_io

RNG = np.random.default_rng(5)
W, B = RNG.normal(size=(3, 4)).astype(np.float32), RNG.normal(size=3).astype(np.float32)


def embedder(*, n_out=3):
    """A one-dense-layer network x[4] -> emb[n_out], written by coremltools (oracle)."""
    nb = pytest.importorskip("coremltools.models.neural_network")
    from coremltools.models import datatypes

    w, b = (W, B) if n_out == 3 else (RNG.normal(size=(n_out, 4)), np.zeros(n_out))
    builder = nb.NeuralNetworkBuilder([("x", datatypes.Array(4))], [("emb", datatypes.Array(n_out))])
    builder.add_inner_product("fc", w, b, 4, n_out, True, "x", "emb")
    spec = spec_io.loads(builder.spec.SerializeToString())
    spec.description.output[0].type.multiArrayType.dataType = 65568  # FLOAT32, as the k-NN input
    return spec


def knn_stage(n_dimensions=3):
    samples = RNG.normal(size=(12, n_dimensions))
    return KNearestNeighborsClassifier(n_dimensions=n_dimensions, default_label="?", k=1, input_name="emb",
                                       updatable=False).add_samples(samples, list("abcd") * 3)


def test_classifier_from_file_and_builder_runs_and_validates(tmp_path, capsys):
    net_path = spec_io.save(embedder(), tmp_path / "embed.mlmodel")
    knn = knn_stage()
    pipe = PipelineClassifier([("embed", net_path), ("knn", knn.to_spec())])
    path = pipe.make_updatable().save(tmp_path / "pipe.mlmodel")
    spec = spec_io.load(path)
    assert list(spec.pipelineClassifier.pipeline.names) == ["embed", "knn"]
    assert [f.name for f in spec.description.input] == ["x"]
    assert [f.name for f in spec.description.trainingInput] == ["x", "label"]
    assert spec.isUpdatable and spec.pipelineClassifier.pipeline.models[1].isUpdatable
    assert spec.description.predictedProbabilitiesName == "labelProbs"
    x = RNG.normal(size=(6, 4)).astype(np.float32)
    want = knn.model().predict_batch({"emb": x @ W.T + B})["label"]
    assert list(load(path).predict_batch({"x": x})["label"]) == list(want)
    from pippin.pipelines.cli.main import main

    assert main(["validate", str(path)]) == 0
    ct = pytest.importorskip("coremltools")
    assert ct.models.utils.load_spec(str(path)).WhichOneof("Type") == "pipelineClassifier"


def test_incompatible_stage_names_both_features_and_types():
    with pytest.raises(PipelineError) as info:
        Pipeline([("embed", embedder(n_out=5)), ("knn", knn_stage(3).to_spec())])
    message = str(info.value)
    assert "'emb' is multiArray(FLOAT32, [3])" in message and "stage 'embed' output 'emb'" in message
    assert "[5]" in message


def test_make_updatable_needs_an_updatable_network():
    with pytest.raises(PipelineError, match="is not updatable"):
        PipelineRegressor([embedder()]).make_updatable()


def test_loaded_models_are_accepted_and_names_default():
    pipe = Pipeline([load(embedder())])
    assert pipe.to_spec().pipeline.names[0] == "stage0"
    with pytest.raises(PipelineError, match="used twice"):
        Pipeline([("a", embedder()), ("a", embedder())])
