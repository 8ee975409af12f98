"""Linked models resolve their file through the search path, relative to the referring model."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, Pipeline, PipelineError, load
from pippin.spec import Model
from pippin.spec import io as spec_io


def linked_spec(file_name, search_path, *, template):
    spec = Model()
    spec.specificationVersion = 4
    spec.description.CopyFrom(template.description)
    spec.description.ClearField("trainingInput")
    spec.linkedModel.linkedModelFile.linkedModelFileName.defaultValue = file_name
    spec.linkedModel.linkedModelFile.linkedModelSearchPath.defaultValue = search_path
    return spec


@pytest.fixture()
def knn_spec():
    knn = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1, updatable=False)
    return knn.add_samples([[0, 0], [5, 5]], ["near", "far"]).to_spec()


def test_linked_model_in_a_pipeline_resolves_relative_to_the_pipeline(tmp_path, knn_spec):
    (tmp_path / "parts").mkdir()
    spec_io.save(knn_spec, tmp_path / "parts" / "knn.mlmodel")
    pipe = Pipeline([("link", linked_spec("knn.mlmodel", "$BUNDLE_MAIN:parts", template=knn_spec))])
    path = pipe.save(tmp_path / "pipe.mlmodel")
    got = load(path).predict_batch({"features": np.array([[4.0, 4.0], [0.1, 0]])})
    assert list(got["label"]) == ["far", "near"]


def test_missing_linked_file_is_a_clear_error(tmp_path, knn_spec):
    path = spec_io.save(linked_spec("gone.mlmodel", ".:other", template=knn_spec), tmp_path / "link.mlmodel")
    with pytest.raises(PipelineError, match=r"linked model file 'gone.mlmodel' not found"):
        load(path)
    empty = linked_spec("", "", template=knn_spec)
    with pytest.raises(PipelineError, match="linkedModelFileName is empty"):
        load(empty)
