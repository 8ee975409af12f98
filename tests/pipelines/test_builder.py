import numpy as np
import pytest

import pippin.pipelines as pp
from pippin.pipelines import PipelineError
from pippin.pipelines.build.network import NetworkBuilder
from pippin.spec import loads
from pippin.spec.validate import validate


def _cnn(seed=0, mode="classifier"):
    b = NetworkBuilder(inputs=[("x", (1, 16, 12))], outputs=["probs" if mode == "classifier" else "out"],
                       mode=mode, class_labels=["x", "y", "z"] if mode == "classifier" else None, seed=seed)
    b.add_conv("conv", "x", "c", n_out=4, stride=2, padding="same")
    b.add_batchnorm("bn", "c", "bnout")
    b.add_activation("relu", "bnout", "r")
    b.add_pooling("pool", "r", "p", type="average", kernel=2, padding="valid")
    b.add_pooling("gmax", "p", "g", type="max", is_global=True)
    b.add_pooling("gavg", "p", "g2", type="average", is_global=True)
    b.add_concat("cat", ["g", "g2"], "cat")
    b.add_flatten("flat", "cat", "f")
    b.add_dense("fc", "f", "logits" if mode == "classifier" else "out", n_out=3)
    if mode == "classifier":
        b.add_softmax("sm", "logits", "probs")
    return b


def test_shapes_follow_layers():
    b = _cnn()
    assert b.shapes["c"] == (4, 8, 6) and b.shapes["p"] == (4, 4, 3) and b.shapes["cat"] == (8, 1, 1)
    assert b.shapes["probs"] == (3, 1, 1)


def test_classifier_spec_is_valid_and_runs():
    b = _cnn()
    b.make_updatable(["fc"])  # Core ML cannot back-propagate through concat: conv stays fixed
    b.set_loss("categorical_cross_entropy")
    b.set_optimizer("sgd", learning_rate=0.01, momentum=0.9, batch_size=8)
    b.set_epochs(4)
    b.set_shuffle(True, seed=3)
    spec = loads(b.spec.SerializeToString())
    assert validate(spec) == []
    assert spec.isUpdatable and spec.specificationVersion >= 4
    assert [f.name for f in spec.description.trainingInput] == ["x", "classLabel"]
    nn = spec.neuralNetworkClassifier
    assert nn.updateParams.lossLayers[0].categoricalCrossEntropyLossLayer.input == "probs"
    assert nn.updateParams.optimizer.sgdOptimizer.momentum.defaultValue == 0.9
    assert nn.updateParams.epochs.defaultValue == 4 and nn.updateParams.shuffle.defaultValue
    assert [layer.name for layer in nn.layers if layer.isUpdatable] == ["fc"]
    out = pp.load(spec).predict_batch({"x": np.random.default_rng(0).standard_normal((5, 1, 16, 12))})
    probs = out["probs"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert set(out["classLabel"]) <= {"x", "y", "z"}


@pytest.mark.parametrize("mode", ["regressor", None])
def test_regressor_and_plain_network_with_mse(mode):
    b = _cnn(mode=mode)
    b.make_updatable(["fc"])
    b.set_loss("mean_squared_error")
    b.set_optimizer("adam", learning_rate=0.001, batch_size=4)
    b.set_epochs(2)
    spec = b.spec
    assert validate(spec) == []
    assert spec.WhichOneof("Type") == ("neuralNetworkRegressor" if mode else "neuralNetwork")
    assert spec.description.trainingInput[-1].name == "out_true"


def test_initialisation_is_seeded():
    a, b, c = _cnn(seed=1).spec, _cnn(seed=1).spec, _cnn(seed=2).spec
    assert a.SerializeToString() == b.SerializeToString() != c.SerializeToString()
    w = np.array(a.neuralNetworkClassifier.layers[0].convolution.weights.floatValue)
    assert np.abs(w).max() <= np.sqrt(6.0 / 9) and w.std() > 0.1


def test_builder_errors_name_the_problem():
    b = NetworkBuilder(inputs=[("x", (2, 4, 4))], outputs=["y"])
    with pytest.raises(PipelineError, match="'nope' does not exist"):
        b.add_dense("fc", "nope", "y", n_out=2)
    with pytest.raises(PipelineError, match="add_flatten"):
        b.add_dense("fc", "x", "y", n_out=2)
    b.add_activation("act", "x", "a")
    with pytest.raises(PipelineError, match="only innerProduct and convolution"):
        b.make_updatable(["act"])
    with pytest.raises(PipelineError, match="class_labels"):
        NetworkBuilder(inputs=[("x", (2,))], outputs=["p"], mode="classifier")
