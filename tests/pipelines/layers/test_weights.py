"""WeightParams decoding: float32, float16, raw float, n-bit linear and look-up-table quantization."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.spec import SpecError
from pippin.spec._proto import NeuralNetwork_pb2
from pippin.pipelines.layers.weights import read_weights, storage_kind, write_weights

RNG = np.random.default_rng(0)


def _pack_msb_first(q: np.ndarray, n_bits: int) -> bytes:
    # independent packer: build the bit string by hand, most significant bit first
    bits = "".join(format(int(v), f"0{n_bits}b") for v in q)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def test_float_float16_raw():
    w = RNG.standard_normal(12).astype(np.float32)
    wp = NeuralNetwork_pb2.WeightParams()
    wp.floatValue.extend(w)
    np.testing.assert_array_equal(read_weights(wp, shape=(3, 4), where="w"), w.reshape(3, 4))
    wp = NeuralNetwork_pb2.WeightParams(float16Value=w.astype("<f2").tobytes())
    np.testing.assert_array_equal(read_weights(wp, count=12, where="w"), w.astype(np.float16).astype(np.float32))
    wp = NeuralNetwork_pb2.WeightParams(rawValue=w.astype("<f4").tobytes())
    np.testing.assert_array_equal(read_weights(wp, count=12, where="w"), w)


def test_count_mismatch_names_where():
    wp = NeuralNetwork_pb2.WeightParams()
    wp.floatValue.extend([1.0, 2.0])
    with pytest.raises(SpecError, match=r"layers\[0\]\(fc\).innerProduct.weights"):
        read_weights(wp, count=3, where="m.mlmodel: neuralNetwork.layers[0](fc).innerProduct.weights")


@pytest.mark.parametrize("n_bits", [1, 2, 3, 4, 5, 7, 8])
def test_linear_per_channel(n_bits):
    q = RNG.integers(0, 2 ** n_bits, size=(3, 5))
    scale = np.array([0.5, 2.0, -1.0], np.float32)
    bias = np.array([1.0, 0.0, 3.0], np.float32)
    wp = NeuralNetwork_pb2.WeightParams(rawValue=_pack_msb_first(q.ravel(), n_bits))
    wp.quantization.numberOfBits = n_bits
    wp.quantization.linearQuantization.scale.extend(scale)
    wp.quantization.linearQuantization.bias.extend(bias)
    expected = q * scale[:, None] + bias[:, None]
    np.testing.assert_allclose(read_weights(wp, shape=(3, 5), where="w"), expected, rtol=1e-6)


def test_linear_axis1_for_deconvolution():
    q = RNG.integers(0, 256, size=(2, 3, 2, 2))
    scale = np.array([0.1, 0.2, 0.3], np.float32)
    wp = NeuralNetwork_pb2.WeightParams(rawValue=q.astype(np.uint8).tobytes())
    wp.quantization.numberOfBits = 8
    wp.quantization.linearQuantization.scale.extend(scale)
    wp.quantization.linearQuantization.bias.extend(np.zeros(3))
    got = read_weights(wp, shape=(2, 3, 2, 2), where="w", channel_axis=1)
    np.testing.assert_allclose(got, q * scale[None, :, None, None], rtol=1e-6)


@pytest.mark.parametrize("n_bits", [2, 4, 6])
def test_lookup_table(n_bits):
    table = RNG.standard_normal(2 ** n_bits).astype(np.float32)
    q = RNG.integers(0, 2 ** n_bits, size=17)
    wp = NeuralNetwork_pb2.WeightParams(rawValue=_pack_msb_first(q, n_bits))
    wp.quantization.numberOfBits = n_bits
    wp.quantization.lookupTableQuantization.floatValue.extend(table)
    np.testing.assert_array_equal(read_weights(wp, count=17, where="w"), table[q])


def test_against_coremltools_quantizer():
    ct = pytest.importorskip("coremltools")
    from coremltools.models.neural_network import NeuralNetworkBuilder, quantization_utils
    from coremltools.models import datatypes

    w = RNG.standard_normal((6, 10)).astype(np.float32)
    builder = NeuralNetworkBuilder([("x", datatypes.Array(10))], [("y", datatypes.Array(6))])
    builder.add_inner_product("fc", W=w, b=None, input_channels=10, output_channels=6, has_bias=False,
                              input_name="x", output_name="y")
    for n_bits, mode in [(8, "_linear_quantization"), (4, "_linear_quantization"), (3, "_lookup_table_quantization_linear"),
                         (8, "_linear_quantization_symmetric")]:
        spec = ct.proto.Model_pb2.Model.FromString(builder.spec.SerializeToString())
        quantization_utils._quantize_spec_weights(spec, n_bits, mode)
        wp = spec.neuralNetwork.layers[0].innerProduct.weights
        got = read_weights(NeuralNetwork_pb2.WeightParams.FromString(wp.SerializeToString()), shape=(6, 10), where="w")
        quantization_utils._dequantize_wp(wp, (6, 10))
        np.testing.assert_allclose(got, np.asarray(wp.floatValue, np.float32).reshape(6, 10), rtol=1e-5, atol=1e-6)
        assert np.abs(got - w).max() < np.abs(w).max() * 2 ** (2 - n_bits)


def test_write_keeps_storage_kind():
    w = RNG.standard_normal(4).astype(np.float32)
    wp = NeuralNetwork_pb2.WeightParams(float16Value=np.zeros(4, "<f2").tobytes(), isUpdatable=True)
    write_weights(wp, w)
    assert storage_kind(wp) == "float16" and wp.isUpdatable
    wp = NeuralNetwork_pb2.WeightParams(rawValue=b"\x00\x01", isUpdatable=False)
    wp.quantization.numberOfBits = 4
    wp.quantization.lookupTableQuantization.floatValue.extend(range(16))
    write_weights(wp, w)
    assert storage_kind(wp) == "float" and not wp.HasField("quantization")
    np.testing.assert_array_equal(read_weights(wp, count=4, where="w"), w)
