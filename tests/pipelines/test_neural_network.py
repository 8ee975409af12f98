"""NeuralNetworkModel: loading, inputs, classifier outputs, images, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "layers"))
from nn_helpers import NeuralNetworkBuilder, datatypes, load, nd_builder, rank5_builder  # noqa: E402

from pippin.pipelines import PipelineError  # noqa: E402
from pippin.spec import SpecError  # noqa: E402

RNG = np.random.default_rng(3)


def _classifier(labels):
    w = RNG.standard_normal((len(labels), 4)).astype(np.float32)
    b = RNG.standard_normal(len(labels)).astype(np.float32)
    builder = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("probs", None)], mode="classifier")
    builder.add_inner_product("fc", W=w, b=b, input_channels=4, output_channels=len(labels), has_bias=True,
                              input_name="x", output_name="z")
    builder.add_softmax("sm", "z", "probs")
    builder.set_class_labels(labels, predicted_feature_name="label", prediction_blob="probs")
    return builder, w, b


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("labels", [["cat", "dog", "owl"], [10, 20, 30, 40]])
def test_classifier_batch_and_single(labels):
    builder, w, b = _classifier(labels)
    model = load(builder)
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    expected = _softmax(x.astype(np.float64) @ w.T + b)
    out = model.predict_batch({"x": x})
    np.testing.assert_allclose(out["probs"], expected, rtol=1e-5)
    assert list(out["label"]) == [labels[i] for i in expected.argmax(axis=1)]
    one = model.predict({"x": x[2]})
    assert one["label"] == labels[int(expected[2].argmax())]
    assert list(one["probs"]) == labels
    np.testing.assert_allclose([one["probs"][k] for k in labels], expected[2], rtol=1e-5)


def test_rank5_and_exact_mapping_give_the_same_numbers():
    w = RNG.standard_normal((3, 4)).astype(np.float32)
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    results = []
    for make in (rank5_builder, nd_builder):
        builder = make({"x": (4,)})
        builder.add_inner_product("fc", W=w, b=None, input_channels=4, output_channels=3, has_bias=False,
                                  input_name="x", output_name="y")
        model = load(builder)
        assert model.exact_shapes == (make is nd_builder)
        results.append(model.predict_batch({"x": x})["y"].reshape(5, 3))
    np.testing.assert_allclose(results[0], x @ w.T, rtol=1e-5)
    np.testing.assert_allclose(results[1], x @ w.T, rtol=1e-5)


def _image_model(color, *, scaler=None, flexible=False):
    builder = NeuralNetworkBuilder([("img", datatypes.Array(3 if color != "GRAYSCALE" else 1, 4, 5))], [("y", None)])
    builder.add_activation("id", "LINEAR", "img", "y", params=[1.0, 0.0])
    spec = builder.spec
    inp = spec.description.input[0]
    inp.type.imageType.width, inp.type.imageType.height = 5, 4
    inp.type.imageType.colorSpace = {"GRAYSCALE": 10, "RGB": 20, "BGR": 30}[color]
    if flexible:
        size = inp.type.imageType.enumeratedSizes.sizes.add()
        size.width, size.height = 5, 4
        size = inp.type.imageType.enumeratedSizes.sizes.add()
        size.width, size.height = 10, 8
    if scaler:
        pre = spec.neuralNetwork.preprocessing.add()
        pre.featureName = "img"
        for key, value in scaler.items():
            setattr(pre.scaler, key, value)
    return load(spec)


def test_image_bgr_with_scaler():
    image = RNG.integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    scaler = {"channelScale": 1 / 255, "redBias": -0.5, "greenBias": -0.25, "blueBias": 0.125}
    out = _image_model("BGR", scaler=scaler).predict_batch({"img": image})["y"]
    bgr = image[..., ::-1].astype(np.float64).transpose(0, 3, 1, 2) / 255
    expected = bgr + np.array([0.125, -0.25, -0.5])[None, :, None, None]
    np.testing.assert_allclose(out.reshape(2, 3, 4, 5), expected, rtol=1e-5, atol=1e-6)
    rgb_out = _image_model("RGB").predict({"img": image[0]})["y"]
    np.testing.assert_allclose(rgb_out.reshape(3, 4, 5), image[0].transpose(2, 0, 1), rtol=0)


def test_image_gray_and_size_errors():
    gray = RNG.integers(0, 256, size=(4, 5), dtype=np.uint8)
    out = _image_model("GRAYSCALE").predict({"img": gray})["y"]
    np.testing.assert_array_equal(out.reshape(4, 5), gray)
    with pytest.raises(PipelineError, match="'img'.*5x4"):
        _image_model("RGB").predict({"img": np.zeros((8, 10, 3), np.uint8)})
    # flexible: an allowed size runs as is, an odd size is resized to the nearest allowed one
    flexible = _image_model("RGB", flexible=True)
    assert flexible.predict({"img": np.zeros((8, 10, 3), np.uint8)})["y"].shape[-2:] == (8, 10)
    assert flexible.predict({"img": np.full((9, 11, 3), 7, np.uint8)})["y"].shape[-2:] == (8, 10)


def test_pil_image_input():
    Image = pytest.importorskip("PIL.Image")
    array = RNG.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    out = _image_model("BGR").predict({"img": Image.fromarray(array)})["y"]
    np.testing.assert_array_equal(out.reshape(3, 4, 5), array[..., ::-1].transpose(2, 0, 1))


def test_unknown_layer_kind_fails_at_load():
    builder = nd_builder({"x": (4,)})
    builder.add_activation("ok", "RELU", "x", "h")
    layer = builder.spec.neuralNetwork.layers.add()
    layer.name = "mystery"
    layer.input.append("h")
    layer.output.append("y")
    layer.custom.className = "Foo"
    with pytest.raises(SpecError, match=r"layers\[1\]\(mystery\).*'custom'") as info:
        load(builder)
    assert "innerProduct" in info.value.hint and "convolution" in info.value.hint  # the supported kinds


def test_missing_blob_is_named():
    builder = nd_builder({"x": (4,)})
    builder.add_activation("a", "RELU", "nope", "y")
    with pytest.raises(PipelineError, match=r"layer 'a'.*'nope'"):  # refused at load (issue 12.4)
        load(builder)


def test_input_shape_checked():
    builder = nd_builder({"x": (4,)})
    builder.add_activation("a", "RELU", "x", "y")
    with pytest.raises(PipelineError, match="'x'"):
        load(builder).predict_batch({"x": np.zeros((2, 5), np.float32)})


def test_load_from_file(tmp_path):
    builder, w, b = _classifier(["a", "b"])
    path = tmp_path / "m.mlmodel"
    path.write_bytes(builder.spec.SerializeToString())
    import pippin.pipelines as pp

    model = pp.load(path)
    assert type(model).__name__ == "NeuralNetworkModel" and len(model.layers) == 2
    assert model.predict({"x": np.ones(4, np.float32)})["label"] in ("a", "b")


@pytest.mark.parametrize("n_bits,mode", [(16, "_linear_quantization"), (8, "_linear_quantization"),
                                         (4, "_lookup_table_quantization_linear")])
def test_quantized_and_float16_networks_match_dequantized(n_bits, mode):
    from coremltools.models.neural_network import quantization_utils

    builder = rank5_builder({"x": (3, 6, 6)})
    builder.add_convolution("conv", kernel_channels=3, output_channels=4, height=3, width=3, stride_height=1,
                            stride_width=1, border_mode="same", groups=1,
                            W=RNG.standard_normal((3, 3, 3, 4)).astype(np.float32), b=RNG.standard_normal(4),
                            has_bias=True, input_name="x", output_name="h")
    builder.add_flatten("flat", 0, "h", "f")
    builder.add_inner_product("fc", W=RNG.standard_normal((5, 144)).astype(np.float32), b=None,
                              input_channels=144, output_channels=5, has_bias=False, input_name="f", output_name="y")
    import coremltools as ct

    quantized = ct.proto.Model_pb2.Model.FromString(builder.spec.SerializeToString())
    quantization_utils._quantize_spec_weights(quantized, n_bits, mode)
    from pippin.pipelines.layers.weights import storage_kind

    weights = quantized.neuralNetwork.layers[0].convolution.weights
    assert storage_kind(weights) == ("float16" if n_bits == 16 else "quantized")
    dequantized = ct.proto.Model_pb2.Model.FromString(quantized.SerializeToString())
    if n_bits == 16:  # decode the half floats with NumPy
        for layer in dequantized.neuralNetwork.layers:
            params = getattr(layer, layer.WhichOneof("layer"))
            for field in ("weights", "bias"):
                if hasattr(params, field) and getattr(params, field).float16Value:
                    wp = getattr(params, field)
                    values = np.frombuffer(wp.float16Value, "<f2").astype(np.float32)
                    wp.ClearField("float16Value")
                    wp.floatValue.extend(values)
    else:
        quantization_utils._dequantize_nn_spec(dequantized.neuralNetwork)
    assert len(dequantized.neuralNetwork.layers[0].convolution.weights.floatValue) == 108
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    got = load(quantized).predict_batch({"x": x})["y"]
    want = load(dequantized).predict_batch({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mean_image_and_rank4_image_mapping():
    builder = NeuralNetworkBuilder([("img", datatypes.Array(3, 2, 2))], [("y", None)])
    builder.add_activation("id", "LINEAR", "img", "y", params=[1.0, 0.0])
    spec = builder.spec
    inp = spec.description.input[0]
    inp.type.imageType.width, inp.type.imageType.height, inp.type.imageType.colorSpace = 2, 2, 20
    mean = RNG.uniform(0, 50, 12).astype(np.float32)
    pre = spec.neuralNetwork.preprocessing.add()
    pre.meanImage.meanImage.extend(mean)
    spec.neuralNetwork.imageInputShapeMapping = 1  # rank 4: [N, C, H, W]
    image = RNG.integers(0, 256, size=(3, 2, 2, 3), dtype=np.uint8)
    model = load(spec)
    blobs = model.to_blobs({"img": image})
    assert blobs["img"].shape == (3, 3, 2, 2)
    np.testing.assert_allclose(blobs["img"], image.transpose(0, 3, 1, 2) - mean.reshape(3, 2, 2), rtol=1e-6)


def test_regressor_double_output_and_optional_state_input():
    w = RNG.standard_normal((1, 3)).astype(np.float32)
    builder = NeuralNetworkBuilder([("x", datatypes.Array(3))], [("y", datatypes.Array(1))], mode="regressor")
    builder.add_inner_product("fc", W=w, b=np.array([0.5]), input_channels=3, output_channels=1, has_bias=True,
                              input_name="x", output_name="y")
    spec = builder.spec
    out = spec.description.output[0]
    out.type.ClearField("multiArrayType")
    out.type.doubleType.SetInParent()
    model = load(spec)
    assert model.kind == "neuralNetworkRegressor"
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    y = model.predict_batch({"x": x})["y"]
    assert y.dtype == np.float64 and y.shape == (4,)
    np.testing.assert_allclose(y, (x @ w.T)[:, 0] + 0.5, rtol=1e-5)
    assert isinstance(model.predict({"x": x[0]})["y"], float)


def test_optional_rnn_state_defaults_to_zeros():
    builder = NeuralNetworkBuilder([("x", datatypes.Array(2)), ("h0", datatypes.Array(3))],
                                   [("y", None), ("h", None)])
    r, w = RNG.standard_normal((3, 3)).astype(np.float32), RNG.standard_normal((3, 2)).astype(np.float32)
    builder.add_simple_rnn("rnn", W_h=r, W_x=w, b=None, hidden_size=3, input_size=2, activation="TANH",
                           input_names=["x", "h0"], output_names=["y", "h"])
    spec = builder.spec
    spec.description.input[1].type.isOptional = True
    model = load(spec)
    x = RNG.standard_normal((2, 2)).astype(np.float32)
    without = model.predict_batch({"x": x})["y"]
    with_zeros = model.predict_batch({"x": x, "h0": np.zeros((2, 3), np.float32)})["y"]
    np.testing.assert_allclose(without, with_zeros)
    np.testing.assert_allclose(without.reshape(2, 3), np.tanh(x.astype(np.float64) @ w.T), rtol=1e-5)


def test_batch_equals_loop_over_examples_and_examples_differ():
    builder, w, b = _classifier(["a", "b", "c"])
    model = load(builder)
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    batch = model.predict_batch({"x": x})
    singles = [model.predict({"x": row}) for row in x]
    np.testing.assert_allclose(batch["probs"],
                               [[s["probs"][k] for k in "abc"] for s in singles], rtol=1e-6)
    assert list(batch["label"]) == [s["label"] for s in singles]
    assert len({tuple(np.round(row, 6)) for row in batch["probs"]}) == 5
