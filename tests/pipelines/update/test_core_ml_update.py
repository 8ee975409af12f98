"""Core ML 3 update semantics: only updatable weights change, overrides are checked, progress can stop."""

import numpy as np
import pytest

import pippin.pipelines as pp
from pippin.pipelines import PipelineError
from pippin.pipelines.update import StopTraining, update_network
from pippin.spec import Model, load, save

from torch_nets import LABELS, conv_spec, dense_spec


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32),
            "classLabel": np.array(LABELS, dtype=object)[rng.integers(0, 3, n)]}


def _without(spec, pairs, original):
    """``spec`` with the listed (layer, field) weights replaced by ``original``'s."""
    out = Model()
    out.CopyFrom(spec)
    src = {layer.name: layer for layer in original.neuralNetworkClassifier.layers}
    for layer in out.neuralNetworkClassifier.layers:
        for name, field in pairs:
            if layer.name == name:
                kind = layer.WhichOneof("layer")
                getattr(getattr(layer, kind), field).CopyFrom(getattr(getattr(src[name], kind), field))
    return out


def test_only_updatable_weights_change_byte_for_byte(tmp_path):
    spec = dense_spec("sgd", updatable=("fc2",), learning_rate=0.1, momentum=0.9)
    path = save(spec, tmp_path / "m.mlmodel")
    original_bytes = path.read_bytes()
    new = update_network(pp.load(path), _data())
    out = new.save(tmp_path / "updated.mlmodel")
    updated = load(out)
    original = load(path)
    assert path.read_bytes() == original_bytes
    assert updated.SerializeToString() != original.SerializeToString()
    restored = _without(updated, [("fc2", "weights"), ("fc2", "bias")], original)
    assert restored.SerializeToString() == original.SerializeToString()
    # fc1 is not updatable: untouched
    l0, l1 = updated.neuralNetworkClassifier.layers[0], original.neuralNetworkClassifier.layers[0]
    assert l0.SerializeToString() == l1.SerializeToString()


def test_updated_model_predicts_better_on_its_training_data():
    data = _data(60, seed=4)
    data["x"][:, 0] += 3.0 * (data["classLabel"] == "cat")
    data["x"][:, 1] += 3.0 * (data["classLabel"] == "dog")
    model = pp.load(dense_spec("adam", learning_rate=0.05, epochs=30, batch_size=10))
    new = update_network(model, data)
    before = (model.predict_batch({"x": data["x"]})["classLabel"] == data["classLabel"]).mean()
    after = (new.predict_batch({"x": data["x"]})["classLabel"] == data["classLabel"]).mean()
    assert after > max(before, 0.8)


def test_override_out_of_range_names_parameter_and_allowed_values():
    model = pp.load(dense_spec("sgd", learning_rate=0.1))
    with pytest.raises(PipelineError, match=r"learningRate=2\.0.*\[0\.0, 1\.0\]"):
        update_network(model, _data(), learning_rate=2.0)
    with pytest.raises(PipelineError, match=r"miniBatchSize=3.*\{1, 2, 4, 5, 8, 10\}"):
        update_network(model, _data(), miniBatchSize=3)
    with pytest.raises(PipelineError, match="'beta1' cannot be overridden"):
        update_network(model, _data(), beta1=0.5)


def test_overrides_change_training():
    model = pp.load(dense_spec("sgd", learning_rate=0.1))
    a = update_network(model, _data(), learningRate=0.01)
    b = update_network(model, _data(), learning_rate=0.01)
    c = update_network(model, _data())
    assert a.spec.SerializeToString() == b.spec.SerializeToString()
    assert a.spec.SerializeToString() != c.spec.SerializeToString()


def test_progress_events_and_epochs_override():
    events = []
    update_network(pp.load(dense_spec("sgd", learning_rate=0.1)), _data(20), epochs=3,
                   progress=lambda e: events.append(e))
    kinds = [e.event for e in events]
    assert kinds[0] == "training_begin"
    assert kinds.count("mini_batch_end") == 3 * 4 and kinds.count("epoch_end") == 3
    assert [e.mini_batch for e in events if e.event == "mini_batch_end"][:5] == [0, 1, 2, 3, 0]
    assert all(np.isfinite(e.loss) for e in events if e.event != "training_begin")


@pytest.mark.parametrize("how", ["return", "raise"])
def test_progress_can_stop_training(how):
    def stop(event):
        if event.event == "mini_batch_end":
            if how == "raise":
                raise StopTraining()
            return False
        return None

    model = pp.load(dense_spec("sgd", learning_rate=0.1))
    stopped = update_network(model, _data(), progress=stop)
    one_step = update_network(model, {k: v[:5] for k, v in _data().items()}, epochs=1)
    assert stopped.spec.SerializeToString() == one_step.spec.SerializeToString()


def test_not_updatable_and_bad_data_errors():
    spec = dense_spec("sgd")
    spec.isUpdatable = False
    with pytest.raises(PipelineError, match="not updatable"):
        update_network(pp.load(spec), _data())
    model = pp.load(dense_spec("sgd"))
    with pytest.raises(PipelineError, match="classLabel"):
        update_network(model, {"x": _data()["x"]})
    bad = _data()
    bad["classLabel"][0] = "zebra"
    with pytest.raises(PipelineError, match="zebra"):
        update_network(model, bad)


def test_conv_update_keeps_everything_else(tmp_path):
    spec = conv_spec("adam", learning_rate=0.01)
    rng = np.random.default_rng(0)
    new = update_network(pp.load(spec), {"x": rng.standard_normal((8, 2, 8, 8)).astype(np.float32),
                                         "classLabel": rng.integers(0, 3, 8)})
    restored = _without(new.spec, [("conv", "weights"), ("conv", "bias"), ("fc", "weights"), ("fc", "bias")], spec)
    assert restored.SerializeToString() == spec.SerializeToString()
