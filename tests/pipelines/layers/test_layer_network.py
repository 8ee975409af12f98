"""``layers.network``: batch parts on threads match one pass, and ``fuse_layers`` puts the fused conv path in place."""

import numpy as np

import pippin.pipelines as pp
from pippin.pipelines.build.network import NetworkBuilder
from pippin.pipelines.layers import network


def _cnn(*, batch_stats=False):
    b = NetworkBuilder(inputs=[("x", (1, 12, 10))], outputs=["probs"], mode="classifier",
                       class_labels=["a", "b", "c"], seed=3)
    b.add_conv("conv", "x", "c", n_out=4, bias=True)
    b.add_batchnorm("bn", "c", "bnout")
    b.add_activation("relu", "bnout", "r")
    b.add_pooling("pool", "r", "p", type="max")
    b.add_pooling("gavg", "p", "ga", type="average", is_global=True)
    b.add_pooling("gmax", "p", "gm", type="max", is_global=True)
    b.add_concat("cat", ["ga", "gm"], "cat")
    b.add_flatten("flat", "cat", "flat")
    b.add_dense("fc", "flat", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    spec = b.spec
    if batch_stats:
        for layer in spec.neuralNetworkClassifier.layers:
            if layer.WhichOneof("layer") == "batchnorm":
                layer.batchnorm.computeMeanVar = True
    return spec


def test_split_run_equals_one_pass():
    model = pp.load(_cnn())
    assert network.splittable(model.layers)
    x = np.random.default_rng(0).standard_normal((21, 1, 12, 10)).astype(np.float32)
    whole = model.run_layers(model.to_blobs({"x": x}))
    parts = network.run_layers_split(model.layers, model.to_blobs({"x": x}), keep={"probs"}, min_part=2)
    np.testing.assert_allclose(parts["probs"], whole["probs"], rtol=1e-5, atol=1e-7)
    out = model.predict_batch({"x": x})
    np.testing.assert_allclose(out["probs"], whole["probs"].reshape(21, 3), rtol=1e-5, atol=1e-7)
    single = model.predict({"x": x[5]})
    assert single["probs"].keys() == {"a", "b", "c"}


def test_batch_statistics_are_not_split():
    model = pp.load(_cnn(batch_stats=True))
    assert not network.splittable(model.layers)


def test_fuse_layers_equals_the_plain_layers():
    from pippin.pipelines.layers.fused import FusedConvBatchnormRelu

    model = pp.load(_cnn())
    rng = np.random.default_rng(1)
    bn = model.layers[1]
    bn.buffers["mean"][:] = rng.standard_normal(4)
    bn.buffers["variance"][:] = rng.uniform(0.5, 2.0, 4)
    bn.params["gamma"][:] = rng.standard_normal(4)
    bn.params["beta"][:] = rng.standard_normal(4)
    fused = network.fuse_layers(model.layers, {"probs"})
    assert isinstance(fused[0], FusedConvBatchnormRelu) and len(fused) == len(model.layers) - 2
    assert network.fuse_layers(model.layers, {"probs", "c"})[0] is model.layers[0]  # an output stays produced
    x = rng.standard_normal((6, 1, 12, 10)).astype(np.float32)
    reference = model.run_layers(model.to_blobs({"x": x}))
    fast = network.run_layers(fused, model.to_blobs({"x": x}))
    np.testing.assert_allclose(fast["r"], reference["r"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast["probs"], reference["probs"], rtol=1e-5, atol=1e-7)
    assert "c" not in fast and "bnout" not in fast
