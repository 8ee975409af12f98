"""Optional inputs (recurrent states) may be left out, or passed as None, in predict,
predict_batch and update: Core ML starts an omitted state at zero."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pippin.pipelines.runtime import load
from pippin.spec import Model
from pippin.spec.validate import validate

pytest.importorskip("coremltools")

H, D = 8, 6


@pytest.fixture(scope="module")
def activity_spec():
    """An activity-classifier-shaped network: LSTM with optional hiddenIn/cellIn states, updatable head."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder, SgdParams

    rng = np.random.default_rng(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = NeuralNetworkBuilder([("features", datatypes.Array(D))], [("probs", datatypes.Array(3))], mode="classifier")
        b.add_unilstm("lstm", [rng.normal(size=(H, H)).astype(np.float32) * 0.3 for _ in range(4)],
                      [rng.normal(size=(H, D)).astype(np.float32) * 0.3 for _ in range(4)], None, H, D,
                      ["features", "hiddenIn", "cellIn"], ["lstm_out", "hiddenOut", "cellOut"], output_all=False)
        b.add_inner_product("fc", rng.normal(size=(3, H)).astype(np.float32), np.zeros(3, np.float32), H, 3, True,
                            "lstm_out", "logits")
        b.add_softmax("sm", "logits", "probs")
        b.set_class_labels(["walk", "run", "sit"], predicted_feature_name="activity", prediction_blob="probs")
        b.add_optionals([("hiddenIn", H), ("cellIn", H)], [("hiddenOut", H), ("cellOut", H)])
        b.make_updatable(["fc"])
        b.set_categorical_cross_entropy_loss("loss", input="probs")
        b.set_sgd_optimizer(SgdParams(lr=0.1, batch=4))
        b.set_epochs(1)
    spec = Model.FromString(b.spec.SerializeToString())
    assert [f.name for f in spec.description.input if f.type.isOptional] == ["hiddenIn", "cellIn"]
    assert validate(spec) == []
    return spec


@pytest.mark.parametrize("fast", [True, False])
def test_states_left_out_equal_zero_states(activity_spec, fast):
    model = load(activity_spec, fast=fast)
    x = np.random.default_rng(0).normal(size=(5, D)).astype(np.float32)
    zeros = np.zeros((5, H), dtype=np.float32)
    want = model.predict_batch({"features": x, "hiddenIn": zeros, "cellIn": zeros})
    for feeds in ({"features": x}, {"features": x, "hiddenIn": None, "cellIn": None}, {"features": x, "cellIn": zeros}):
        got = model.predict_batch(feeds)
        np.testing.assert_array_equal(got["activity"], want["activity"])
        np.testing.assert_allclose(got["hiddenOut"], want["hiddenOut"], rtol=1e-6, atol=1e-7)
    one = model.predict({"features": x[0], "hiddenIn": None})
    assert one["activity"] == want["activity"][0]


def test_update_without_states(activity_spec):
    model = load(activity_spec)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, D)).astype(np.float32)
    labels = np.array(["walk", "run", "sit", "run"] * 2, dtype=object)
    zeros = np.zeros((8, H), dtype=np.float32)
    a = model.update({"features": x, "activity": labels})
    b = model.update({"features": x, "activity": labels, "hiddenIn": zeros, "cellIn": zeros})
    wa = np.array(a.spec.neuralNetworkClassifier.layers[1].innerProduct.weights.floatValue)
    wb = np.array(b.spec.neuralNetworkClassifier.layers[1].innerProduct.weights.floatValue)
    np.testing.assert_array_equal(wa, wb)
    original = activity_spec.neuralNetworkClassifier.layers[1].innerProduct.weights.floatValue
    assert not np.array_equal(wa, np.array(original))


def test_required_input_given_as_none_is_named(activity_spec):
    from pippin.pipelines.errors import PipelineError

    with pytest.raises(PipelineError, match="features"):
        load(activity_spec).predict_batch({"features": None})
