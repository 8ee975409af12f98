"""Issue 12.4: one loading boundary. ``pipelines.load`` applies the rules ``pippin validate``
applies, every kind and layer checks its ranges at load naming the field, and a model that
``validate`` accepts never raises anything but a Pippin error when it runs."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines import KNearestNeighborsClassifier, PipelineError, load
from pippin.pipelines.build.network import NetworkBuilder
from pippin.pipelines.cli.main import main
from pippin.spec import PippinError, SpecError, validate
from pippin.spec import io as spec_io


def knn_spec(index="linear"):
    knn = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1, updatable=False, index=index)
    return knn.add_samples([[0, 0], [5, 5], [1, 1]], ["near", "far", "near"]).to_spec()


def conv_spec():
    b = NetworkBuilder(inputs=[("image", (1, 8, 8))], outputs=["y"], seed=0)
    b.add_conv("conv", "image", "y", n_out=2, kernel=(3, 3), padding="valid")
    return b.spec


def _refused(spec, field, match, tmp_path):
    """load raises a SpecError naming ``field``; `pippin validate` exits 1 naming it too."""
    with pytest.raises(SpecError, match=match) as info:
        load(spec)
    assert field in str(info.value), str(info.value)
    path = spec_io.save(spec, tmp_path / "m.mlmodel")
    assert main(["validate", "-q", str(path)]) == 1


@pytest.mark.parametrize("index", ["linear", "kd_tree"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_knn_samples_must_be_finite(index, bad, tmp_path, capsys):
    spec = knn_spec(index)
    spec.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples[1].vector[0] = bad
    assert any("expected finite values" in p.message for p in validate(spec))
    _refused(spec, "floatSamples[1]", "finite", tmp_path)


def test_ragged_knn_samples_are_refused_at_load(tmp_path, capsys):
    spec = knn_spec()
    spec.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples[1].vector.append(3.0)
    _refused(spec, "floatSamples[1]", "3 values, expected numberOfDimensions 2", tmp_path)


def test_knn_with_zero_dimensions_is_refused_at_load(tmp_path, capsys):
    spec = knn_spec()
    index = spec.kNearestNeighborsClassifier.nearestNeighborsIndex
    index.ClearField("floatSamples")
    spec.kNearestNeighborsClassifier.ClearField("stringClassLabels")
    index.numberOfDimensions = 0
    _refused(spec, "numberOfDimensions", "numberOfDimensions is 0", tmp_path)


@pytest.mark.parametrize("field, value, match", [
    ("stride", [2**32 - 1, 1], r"stride\[0\] is 4294967295"),
    ("dilationFactor", [2**40, 1], r"dilationFactor\[0\] is 1099511627776"),
    ("dilationFactor", [40000, 1], "spans 80001 values"),
])
def test_convolution_geometry_is_checked_at_load(field, value, match, tmp_path, capsys):
    spec = conv_spec()
    conv = spec.neuralNetwork.layers[0].convolution
    conv.ClearField(field)
    getattr(conv, field).extend(value)
    assert any(p.rule == "nn-range" for p in validate(spec))
    _refused(spec, f"convolution.{field}", match, tmp_path)


def test_huge_border_is_checked_at_load(tmp_path, capsys):
    spec = conv_spec()
    border = spec.neuralNetwork.layers[0].convolution.valid.paddingAmounts.borderAmounts
    while len(border) < 2:
        border.add()
    border[0].startEdgeSize = 2**40
    _refused(spec, "borderAmounts[0].startEdgeSize", "startEdgeSize is", tmp_path)


def test_layers_with_no_inputs_or_outputs_are_refused_at_load(tmp_path, capsys):
    spec = conv_spec()
    spec.neuralNetwork.layers[0].ClearField("input")
    _refused(spec, "layers[0](conv).input", "0 inputs, expected", tmp_path)
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["y"], seed=0)
    b.add_activation("a", "x", "y", kind="ReLU")
    b.add_activation("b", "y", "z", kind="ReLU")
    spec = b.spec
    spec.neuralNetwork.layers[1].ClearField("output")
    with pytest.raises(SpecError, match=r"layers\[1\]\(b\).output.*(declares no outputs|0 outputs)"):
        load(spec)
    spec.neuralNetwork.layers[1].ClearField("activation")  # a kind without a static count rule
    spec.neuralNetwork.layers[1].exp2.SetInParent()
    with pytest.raises(SpecError, match=r"layers\[1\]\(b\).output: layer 'b' \(exp2\) declares no outputs"):
        load(spec)


def test_a_layer_given_too_many_inputs_is_refused(tmp_path, capsys):
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["y"], seed=0)
    b.add_activation("a", "x", "y", kind="ReLU")
    spec = b.spec
    spec.neuralNetwork.layers[0].input.append("x")
    _refused(spec, "layers[0](a).input", "2 inputs, expected 1", tmp_path)


def test_pipeline_with_fewer_names_than_stages_runs():
    from pippin.pipelines import Pipeline

    second = KNearestNeighborsClassifier(n_dimensions=2, default_label="?", k=1, updatable=False, label_name="l2")
    second = second.add_samples([[0, 0]], ["x"]).to_spec()
    pipe = Pipeline([("a", second), ("b", knn_spec())]).to_spec()
    del pipe.pipeline.names[1:]  # one name for two stages: validate reports it, load copes
    model = load(pipe)
    assert list(model.predict_batch({"features": np.array([[4.0, 4.0]])})["label"]) == ["far"]


def test_numpy_faults_inside_a_layer_become_pipeline_errors():
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["y"], seed=0)
    b.add_activation("a", "x", "h", kind="ReLU")
    spec = b.spec
    layer = spec.neuralNetwork.layers.add()
    layer.name, layer.input[:], layer.output[:] = "r", ["h"], ["y"]
    layer.reshape.targetShape.extend([3, 1, 1])  # 3 values from 4: only running shows it
    model = load(spec)
    with pytest.raises(PipelineError, match=r"layer 'r' \(reshape\)"):
        model.predict_batch({"x": np.zeros((1, 4), np.float32)})


def test_validate_reports_what_only_a_trial_run_finds(tmp_path, capsys):
    """A dense layer whose inputChannels disagree with what the previous layer makes: no static rule
    sees it, the runtime does; `pippin validate` runs the model once and reports it."""
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["y"], seed=0)
    b.add_dense("fc1", "x", "h", n_out=3)
    b.add_dense("fc2", "h", "y", n_out=2)
    spec = b.spec
    fc2 = spec.neuralNetwork.layers[1].innerProduct
    fc2.inputChannels = 6
    fc2.weights.floatValue.extend([0.0] * 6)
    assert validate(spec) == []
    path = spec_io.save(spec, tmp_path / "m.mlmodel")
    assert main(["validate", "--json", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert '"pippin-runtime"' in out and "inputChannels" in out
    with pytest.raises(PippinError, match="inputChannels"):
        load(path).predict({"x": np.zeros(4, np.float32)})


def test_load_errors_are_spec_errors_and_still_pipeline_errors():
    spec = knn_spec()
    spec.kNearestNeighborsClassifier.nearestNeighborsIndex.floatSamples[0].vector[0] = float("nan")
    with pytest.raises(SpecError) as info:
        load(spec)
    assert isinstance(info.value, PipelineError) and info.value.to_dict()["type"] == "SpecError"
