"""``update.network``: training builds and feeds networks exactly as the runtime does."""

import numpy as np
import pytest
from test_fit import _data, small_sound_net

import pippin.pipelines as pp
from pippin.pipelines import PipelineError
from pippin.pipelines.layers import LAYERS, OVERRIDES
from pippin.pipelines.runtime.neural_network import NeuralNetworkModel
from pippin.pipelines.update import fit_network, update_network
from pippin.pipelines.update.network import input_blob, layers_of
from pippin.spec import SpecError

RANK5 = (1, 1, 1, 12, 8)  # [S, B, C, H, W] per example: the rank-5 spelling of (C, H, W) = (1, 12, 8)


def _rank5(spec):
    shape = spec.description.input[0].type.multiArrayType.shape
    del shape[:]
    shape.extend(RANK5)
    return spec


def test_rank5_input_trains_like_its_rank3_spelling():
    x, y = _data(32)
    kw = dict(epochs=2, batch_size=8, learning_rate=0.01, random_state=5)
    rank3, h3 = fit_network(small_sound_net(), x, y, validation=(x[:8], y[:8]), **kw)
    rank5, h5 = fit_network(_rank5(small_sound_net()), x.reshape((len(x),) + RANK5), y,
                            validation=(x[:8].reshape((8,) + RANK5), y[:8]), **kw)
    assert h5["loss"] == h3["loss"] and h5["val_loss"] == h3["val_loss"]
    assert rank5.neuralNetworkClassifier.SerializeToString() == rank3.neuralNetworkClassifier.SerializeToString()
    model = pp.load(rank5)
    np.testing.assert_array_equal(model.predict_batch({"x": x[:4].reshape((4,) + RANK5)})["probs"],
                                  pp.load(rank3).predict_batch({"x": x[:4]})["probs"])


def test_input_blob_is_the_runtime_conversion():
    spec = _rank5(small_sound_net())
    x = np.arange(2 * 96, dtype=np.float32).reshape((2,) + RANK5)
    blob = input_blob(spec, "x", x)
    np.testing.assert_array_equal(blob, pp.load(spec).to_blobs({"x": x})["x"])
    assert blob.shape == (2, 1, 1, 12, 8)
    with pytest.raises(PipelineError, match=r"'x' has shape \(2, 1, 2, 1, 12, 4\)"):
        input_blob(spec, "x", x.reshape(2, 1, 2, 1, 12, 4))


def test_layers_are_the_runtime_layers():
    spec = small_sound_net()
    trained = [type(layer) for layer in layers_of(spec)]
    assert trained == [type(layer) for layer in pp.load(spec).layers]
    assert OVERRIDES[("convolution",)] in trained
    assert all(type(layer) is LAYERS[layer.kind] for layer in layers_of(spec, fast=False))


def test_unknown_layer_kind_is_a_spec_error_listing_the_kinds():
    spec = small_sound_net()
    spec.neuralNetworkClassifier.layers[2].custom.className = "Foo"
    x, y = _data(8)
    where = r"fit_network: neuralNetworkClassifier\.layers\[2\]\(relu1\)"
    with pytest.raises(SpecError, match=where + ".*'custom'") as info:
        fit_network(spec, x, y, epochs=1, batch_size=4)
    assert "batchnorm" in info.value.hint and "innerProduct" in info.value.hint


def test_update_of_a_reference_only_model_trains_reference_layers():
    spec = small_sound_net()
    spec.neuralNetworkClassifier.layers[-2].isUpdatable = True  # fc2
    spec.neuralNetworkClassifier.layers[-2].innerProduct.weights.isUpdatable = True
    spec.isUpdatable = True
    loss = spec.neuralNetworkClassifier.updateParams.lossLayers.add()
    loss.categoricalCrossEntropyLossLayer.input, loss.categoricalCrossEntropyLossLayer.target = "probs", "label"
    target = spec.description.trainingInput.add()
    target.name = "label"
    target.type.stringType.SetInParent()
    opt = spec.neuralNetworkClassifier.updateParams.optimizer.sgdOptimizer
    opt.learningRate.defaultValue, opt.miniBatchSize.defaultValue = 0.1, 8
    spec.neuralNetworkClassifier.updateParams.epochs.defaultValue = 2
    x, y = _data(16)
    data = {"x": x, "label": np.array(["a", "b", "c"], dtype=object)[y]}
    fast, reference = pp.load(spec).update(data), NeuralNetworkModel(spec, fast=False).update(data)
    assert fast.fast and not reference.fast
    assert all(type(layer) is LAYERS[layer.kind] for layer in reference.layers)
    np.testing.assert_allclose(reference.predict_batch({"x": x})["probs"], fast.predict_batch({"x": x})["probs"],
                               rtol=1e-4, atol=1e-5)
    assert fast.spec.SerializeToString() != spec.SerializeToString()  # it trained
    with pytest.raises(TypeError, match="loaded neural network"):
        update_network(spec, data)
