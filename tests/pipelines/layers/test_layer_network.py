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


def _nd_network():
    """Every shape/ND kind ``splittable`` accepts, as coremltools' builder writes them (exact shapes)."""
    from nn_helpers import nd_builder

    rng = np.random.default_rng(4)
    b = nd_builder({"x": (6, 4, 8)})
    b.add_mvn("mvn", "x", "m", across_channels=False, normalize_variance=True, epsilon=1e-5)
    b.add_scale("scale", W=rng.standard_normal(6).astype(np.float32), b=rng.standard_normal(6).astype(np.float32),
                has_bias=True, input_name="m", output_name="s", shape_scale=[6], shape_bias=[6])
    b.add_reshape_static("rs", "s", "r", output_shape=[6, 32])
    b.add_transpose("tr", axes=[1, 0], input_name="r", output_name="t")  # [32, 6]
    b.add_split_nd("split", "t", ["t1", "t2"], axis=1, num_splits=2)  # [32, 3] each
    b.add_expand_dims("ex", "t1", "e", axes=[0])  # [1, 32, 3]
    b.add_squeeze("sq", "e", "q", axes=[0])  # [32, 3]
    b.add_batched_mat_mul("mm", ["q", "t2"], "mm", transpose_b=True)  # [32, 32]
    b.add_softmax_nd("sm", "mm", "p", axis=-1)
    b.add_gelu("gelu", "p", "g", mode="EXACT")
    b.add_slice_static("sl", "g", "h", begin_ids=[0, 4], end_ids=[32, 20], strides=[1, 1],
                       begin_masks=[True, False], end_masks=[True, False])
    b.add_concat_nd("cat", ["h", "q"], "y", axis=-1)  # [32, 19]
    return b.spec


def test_nd_shape_kinds_split_like_one_pass(monkeypatch):
    from pippin.pipelines.runtime import neural_network

    model = pp.load(_nd_network())
    assert network.splittable(model.layers)
    x = np.random.default_rng(5).standard_normal((9, 6, 4, 8)).astype(np.float32)
    whole = model.run_layers(model.to_blobs({"x": x}))["y"]
    parts = network.run_layers_split(model.layers, model.to_blobs({"x": x}), keep={"y"}, min_part=1)["y"]
    assert parts.shape == whole.shape == (9, 32, 19)
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-7)
    calls = []
    real = network.run_layers_split
    monkeypatch.setattr(network, "run_layers_split", lambda *a, **k: calls.append(k["min_part"]) or real(*a, **k))
    monkeypatch.setattr(neural_network, "SPLIT_MIN_WORK", 1000)
    model.predict_batch({"x": x})  # first run: measures the work
    got = model.predict_batch({"x": x})["y"]
    assert calls == [1] or network._workers() < 2
    np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-7)
