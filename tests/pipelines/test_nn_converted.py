"""End to end: PyTorch models converted by coremltools to Core ML neural networks run in
pippin and give PyTorch's numbers (the converter chooses the layer kinds and weight layouts)."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")

import pippin.pipelines as pp  # noqa: E402
from pippin.spec import loads  # noqa: E402


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)
        self.qkv = torch.nn.Linear(8, 24)
        self.out = torch.nn.Linear(8, 8)

    def forward(self, x):  # x: (1, T, 8)
        h = self.norm(x)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1)
        return torch.nn.functional.gelu(self.out(weights @ v)) + x


class Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(6, 5, batch_first=True)
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x):  # x: (1, T, 6)
        y, _ = self.lstm(x)
        return torch.sigmoid(self.head(y[:, -1]))


class Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x):  # x: (1, 3, 6, 8)
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        padded = torch.nn.functional.pad(x, (1, 2, 2, 1), mode="reflect")
        both = torch.cat([up[:, :, :9, :11], padded[:, :, :9, :11]], dim=1)
        pooled = both.mean(dim=(2, 3)) * both.amax(dim=3).sum(dim=2)
        deconv = self.conv(x).permute(0, 2, 3, 1).reshape(1, -1)
        return torch.cat([torch.clamp(pooled, -1, 1), torch.tanh(deconv[:, :10]) ** 2], dim=1)


def _cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 4, 3, stride=2, groups=2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 5), torch.nn.Softmax(dim=1))


@pytest.mark.parametrize("make,shape", [
    (_cnn, (1, 3, 16, 16)), (Attention, (1, 7, 8)), (Recurrent, (1, 9, 6)), (Mixed, (1, 3, 6, 8))])
def test_converted_model_matches_pytorch(make, shape):
    torch.manual_seed(0)
    net = make().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    example = torch.randn(*shape)
    traced = torch.jit.trace(net, example)
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=shape)], convert_to="neuralnetwork")
    spec = mlmodel.get_spec()
    model = pp.load(loads(spec.SerializeToString()))
    output = spec.description.output[0].name
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((4,) + shape[1:]).astype(np.float32)  # our batch of examples, each (1, ...)
    got = model.predict_batch({"x": batch[:, None]})[output]
    with torch.no_grad():
        want = np.stack([net(torch.from_numpy(b[None])).numpy() for b in batch])
    np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, rtol=1e-4, atol=1e-5)


class _Op(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


F = torch.nn.functional
OPS = {  # torch op mixes whose Core ML conversion uses the ND layers (argSort, topK, cumSum, oneHot, ...)
    "sort_gather_topk": (lambda x: torch.topk(x, 3, dim=-1).values
                         + torch.gather(x, 2, torch.argsort(x, dim=-1)[..., :2]).sum(-1, keepdim=True), (1, 4, 6)),
    "cumsum_where_mask": (lambda x: torch.where(x > 0, torch.cumsum(x, dim=1), x * 2).masked_fill(x < -1, -1.0),
                          (1, 4, 6)),
    "expand_repeat_split_stack": (lambda x: torch.stack(torch.split(x[:, :1].expand(1, 4, 6) + x.repeat(1, 1, 1), 2,
                                                                    dim=1), dim=0).sum(0), (1, 4, 6)),
    "tril_triu_flip": (lambda x: torch.flip(torch.tril(x), dims=[-1]) + torch.triu(x, 1), (1, 5, 5)),
    "pow_floordiv_rem": (lambda x: torch.pow(x.abs() + 1, 1.5) + torch.floor_divide(x * 5, 2)
                         + torch.remainder(x * 5, 2), (1, 4, 6)),
    "einsum_bmm": (lambda x: torch.einsum("bij,bkj->bik", x, x) @ x, (1, 4, 6)),
    "argmax_onehot_erf": (lambda x: F.one_hot(torch.argmax(x, dim=-1), 6).float() * torch.erf(x), (1, 4, 6)),
    "groupnorm_var": (lambda x: F.group_norm(x, 2) + x.var(dim=-1, keepdim=True), (1, 4, 3, 3)),
    "logsumexp_norm_logsoftmax": (lambda x: torch.logsumexp(x, dim=-1, keepdim=True) + torch.norm(x, dim=1, keepdim=True)
                                  + F.log_softmax(x, dim=-1), (1, 4, 6)),
    "pixel_shuffle_nearest": (lambda x: F.interpolate(F.pixel_shuffle(x, 2), scale_factor=2, mode="nearest"),
                              (1, 8, 3, 3)),
    "conv1d_pool1d": (lambda x: F.avg_pool1d(F.conv1d(x, torch.ones(2, 3, 3), padding=1), 2), (1, 3, 8)),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_converted_op_mix_matches_pytorch(name):
    fn, shape = OPS[name]
    net = _Op(fn).eval()
    traced = torch.jit.trace(net, torch.randn(*shape))
    spec = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=shape)], convert_to="neuralnetwork").get_spec()
    model = pp.load(loads(spec.SerializeToString()))
    batch = np.random.default_rng(2).standard_normal((3,) + shape[1:]).astype(np.float32)
    got = np.asarray(model.predict_batch({"x": batch[:, None]})[spec.description.output[0].name])
    with torch.no_grad():
        want = np.stack([net(torch.from_numpy(b[None])).numpy() for b in batch])
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)
