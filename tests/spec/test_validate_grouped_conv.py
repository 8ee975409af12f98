"""The convolution weight-count rule is Core ML's: outputChannels * kernelChannels * kh * kw for
every convolution (grouped and depthwise included); only a deconvolution divides by nGroups.
The runtime's load-time check agrees, and wrong counts are still rejected by both."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pippin.pipelines.runtime import load
from pippin.pipelines.runtime.model import build
from pippin.spec import Model
from pippin.spec.errors import PippinError
from pippin.spec.validate import validate

pytest.importorskip("coremltools")


def _conv_spec(groups: int, *, deconv: bool = False):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    c_in, c_out = 8, 8 if groups > 1 else 4
    kc = c_in // groups if not deconv else c_in
    shape = (3, 3, c_out // groups, kc) if deconv else (3, 3, kc, c_out)  # coremltools' (kh, kw, ...) layout
    w = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = NeuralNetworkBuilder([("x", datatypes.Array(c_in, 6, 6))], [("y", None)])
        b.add_convolution("conv", kernel_channels=kc, output_channels=c_out, height=3, width=3, stride_height=1,
                          stride_width=1, border_mode="same", groups=groups, W=w, b=None, has_bias=False,
                          is_deconv=deconv, output_shape=[6, 6] if deconv else None, input_name="x", output_name="y")
    return Model.FromString(b.spec.SerializeToString())


@pytest.mark.parametrize("groups,deconv", [(1, False), (2, False), (8, False), (2, True)])
def test_grouped_and_depthwise_convolutions_validate_and_load(groups, deconv):
    spec = _conv_spec(groups, deconv=deconv)
    assert validate(spec) == []
    out = load(spec).predict_batch({"x": np.ones((2, 8, 6, 6), dtype=np.float32)})
    assert np.isfinite(out["y"]).all()
    build(spec)  # the layer's own load-time check (no validator) accepts the same count


@pytest.mark.parametrize("groups,deconv", [(8, False), (2, False), (2, True)])
def test_wrong_weight_counts_still_rejected(groups, deconv, tmp_path):
    spec = _conv_spec(groups, deconv=deconv)
    weights = spec.neuralNetwork.layers[0].convolution.weights
    del weights.floatValue[-1]
    problems = validate(spec)
    assert any(p.path.endswith("convolution.weights") for p in problems), problems
    from pippin.pipelines.cli.main import main

    path = tmp_path / "bad.mlmodel"
    path.write_bytes(spec.SerializeToString())
    assert main(["validate", "-q", str(path)]) == 1
    with pytest.raises(PippinError, match="weights"):
        load(spec)
    with pytest.raises(PippinError, match="convolution.weights"):
        build(spec)  # the layer's own load-time check rejects it too


def test_depthwise_divided_count_rejected():
    """The old, wrong rule (weights / nGroups) is not accepted for a depthwise convolution."""
    spec = _conv_spec(8)
    conv = spec.neuralNetwork.layers[0].convolution
    values = list(conv.weights.floatValue)
    del conv.weights.floatValue[:]
    conv.weights.floatValue.extend(values[: len(values) // 8])
    assert any("convolution.weights" in p.path for p in validate(spec))


def _mobilenet_v2(torch):
    """MobileNet v2 (width 1.0) rebuilt with torch.nn from the paper's block table (torchvision is not a dependency)."""
    from torch import nn

    def conv_bn(c_in, c_out, kernel, stride, groups=1, relu=True):
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        return layers + [nn.ReLU6()] if relu else layers

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, c_out, stride, expand):
            super().__init__()
            hidden = c_in * expand
            layers = conv_bn(c_in, hidden, 1, 1) if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, c_out, 1, 1, relu=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    # fact: MobileNetV2 paper (Sandler et al. 2018), Table 2: (expansion t, channels c, repeats n, stride s)
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, c_in = conv_bn(3, 32, 3, 2), 32
    for t, c, n, s in table:
        for i in range(n):
            layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
            c_in = c
    layers += conv_bn(c_in, 1280, 1, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers).eval()


def test_mobilenet_v2_converted_by_coremltools_validates(tmp_path):
    from pippin.pipelines.cli.main import main

    torch = pytest.importorskip("torch")
    ct = pytest.importorskip("coremltools")

    torch.manual_seed(0)
    net = _mobilenet_v2(torch)
    example = torch.rand(1, 3, 64, 64)
    traced = torch.jit.trace(net, example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=example.shape)],
                               convert_to="neuralnetwork")
    spec = Model.FromString(converted.get_spec().SerializeToString())
    groups = [layer.convolution.nGroups for layer in spec.neuralNetwork.layers
              if layer.WhichOneof("layer") == "convolution"]
    assert sum(g > 1 for g in groups) == 17  # the 17 depthwise convolutions
    assert validate(spec) == []
    path = tmp_path / "mobilenet_v2.mlmodel"
    path.write_bytes(spec.SerializeToString())
    assert main(["validate", "-q", str(path)]) == 0  # `pippin validate` accepts it
    out = load(path).predict_batch({"x": example.numpy()[None]})  # the declared shape includes torch's batch axis
    with torch.no_grad():
        want = net(example).numpy()
    np.testing.assert_allclose(next(iter(out.values())).reshape(want.shape), want, rtol=1e-3, atol=1e-4)
