"""Core ML maps a classifier's label training input to its loss target, whichever convention
the file uses; one update step from a coremltools-built updatable classifier equals the step
computed by hand (SGD and Adam)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pippin.pipelines.runtime import load
from pippin.spec import Model
from pippin.spec.validate import validate

pytest.importorskip("coremltools")

LABELS = ["a", "b", "c"]


def _builder_spec(optimizer: str, *, lr: float, batch: int):
    """An updatable 4 -> 3 softmax classifier made the standard way with NeuralNetworkBuilder."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import AdamParams, NeuralNetworkBuilder, SgdParams

    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("probs", datatypes.Array(3))], mode="classifier")
        builder.add_inner_product("dense", w, b, 4, 3, has_bias=True, input_name="x", output_name="logits")
        builder.add_softmax("softmax", "logits", "probs")
        builder.set_class_labels(LABELS, predicted_feature_name="label", prediction_blob="probs")
        builder.make_updatable(["dense"])
        builder.set_categorical_cross_entropy_loss("loss", input="probs")
        if optimizer == "sgd":
            builder.set_sgd_optimizer(SgdParams(lr=lr, batch=batch))
        else:
            builder.set_adam_optimizer(AdamParams(lr=lr, batch=batch))
        builder.set_epochs(1)
    return Model.FromString(builder.spec.SerializeToString()), w, b


def _hand_step(optimizer, w, b, x, classes, lr):
    """One step of mean categorical cross-entropy over the batch, by hand."""
    z = x.astype(np.float64) @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    gz = (p - np.eye(3)[classes]) / len(x)
    gw, gb = gz.T @ x, gz.sum(axis=0)
    if optimizer == "sgd":
        return w - lr * gw, b - lr * gb
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # AdamParams' defaults; first step: m_hat = g, v_hat = g^2
    return w - lr * gw / (np.abs(gw) + eps), b - lr * gb / (np.abs(gb) + eps)


def _weights(model):
    params = model.spec.neuralNetworkClassifier.layers[0].innerProduct
    return (np.array(params.weights.floatValue).reshape(3, 4), np.array(params.bias.floatValue))


@pytest.mark.parametrize("convention", ["label-input", "target-declared"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_with_declared_training_inputs(optimizer, convention):
    spec, w, b = _builder_spec(optimizer, lr=0.05, batch=6)
    loss = spec.neuralNetworkClassifier.updateParams.lossLayers[0].categoricalCrossEntropyLossLayer
    assert loss.target == "probs_true"
    if convention == "target-declared":
        # the other published convention: the loss target itself is the declared training input
        label = next(f for f in spec.description.trainingInput if f.name == "label")
        label.name = loss.target
    assert validate(spec) == []
    declared = [f.name for f in spec.description.trainingInput]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    classes = np.array([0, 2, 1, 2, 0, 1])
    data = {"x": x, declared[1]: np.array(LABELS, dtype=object)[classes]}
    assert sorted(data) == sorted(declared)
    updated = load(spec).update(data)
    want_w, want_b = _hand_step(optimizer, w, b, x, classes, 0.05)
    got_w, got_b = _weights(updated)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got_w, w)


def test_missing_label_names_the_declared_inputs():
    spec, _, _ = _builder_spec("sgd", lr=0.1, batch=2)
    from pippin.pipelines.errors import PipelineError

    with pytest.raises(PipelineError, match="probs_true"):
        load(spec).update({"x": np.zeros((2, 4), dtype=np.float32)})
