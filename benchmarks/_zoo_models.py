"""Small PyTorch equivalents of the torchvision and text models of ``bench_zoo.py``.

torchvision is not a dependency, so each architecture is written here in ``torch.nn``
with the published layer configuration (widths, depths, strides, depthwise and grouped
convolutions, squeeze-excitation, channel shuffle, dense concatenation). Weights are
random (``torch.manual_seed``); nothing is downloaded. Imported by ``bench_zoo.py``
(scripts run from this folder).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ZOO"]


def _conv_bn(c_in, c_out, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


class _Basic(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c_in, c_out, 3, stride), _conv_bn(c_out, c_out, 3, 1, act=None))
        self.skip = (_conv_bn(c_in, c_out, 1, stride, act=None) if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def resnet18(n_classes=1000):
    layers, c = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_Basic(c, width, stride), _Basic(width, width, 1)]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, n_classes))


class _Inverted(nn.Module):
    """MobileNet v2 / EfficientNet block: expand 1x1, depthwise kxk, [squeeze-excite], project 1x1."""

    def __init__(self, c_in, c_out, stride, expand, k=3, act=nn.ReLU6, se=False):
        super().__init__()
        hidden = c_in * expand
        layers = [_conv_bn(c_in, hidden, 1, act=act)] if expand != 1 else []
        layers.append(_conv_bn(hidden, hidden, k, stride, groups=hidden, act=act))
        if se:
            layers.append(_SqueezeExcite(hidden, max(1, c_in // 4)))
        layers.append(_conv_bn(hidden, c_out, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class _SqueezeExcite(nn.Module):
    def __init__(self, c, squeezed):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(c, squeezed, 1), nn.Conv2d(squeezed, c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(s))))


def mobilenet_v2(n_classes=1000):
    config = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1)]
    layers, c = [_conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
    for t, width, n, s in config:
        for i in range(n):
            layers.append(_Inverted(c, width, s if i == 0 else 1, t))
            c = width
    layers += [_conv_bn(c, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, n_classes)]
    return nn.Sequential(*layers)


def efficientnet_b0(n_classes=1000):
    config = [(1, 3, 16, 1, 1), (6, 3, 24, 2, 2), (6, 5, 40, 2, 2), (6, 3, 80, 3, 2), (6, 5, 112, 3, 1),
              (6, 5, 192, 4, 2), (6, 3, 320, 1, 1)]
    layers, c = [_conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
    for t, k, width, n, s in config:
        for i in range(n):
            layers.append(_Inverted(c, width, s if i == 0 else 1, t, k, act=nn.SiLU, se=True))
            c = width
    layers += [_conv_bn(c, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, n_classes)]
    return nn.Sequential(*layers)


class _Shuffle(nn.Module):
    """ShuffleNet v2 unit: split (or not, when downsampling), two branches, concat, channel shuffle."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.stride, half = stride, c_out // 2
        b_in = c_in if stride > 1 else half
        if stride > 1:
            self.left = nn.Sequential(_conv_bn(c_in, c_in, 3, stride, groups=c_in, act=None),
                                      _conv_bn(c_in, half, 1))
        self.right = nn.Sequential(_conv_bn(b_in, half, 1), _conv_bn(half, half, 3, stride, groups=half, act=None),
                                   _conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.right(b)], dim=1)
        else:
            y = torch.cat([self.left(x), self.right(x)], dim=1)
        return y.unflatten(1, (2, -1)).transpose(1, 2).flatten(1, 2)  # no traced shape arithmetic


def shufflenet_v2(n_classes=1000):
    layers, c = [_conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for width, repeats in ((116, 4), (232, 8), (464, 4)):
        for i in range(repeats):
            layers.append(_Shuffle(c, width, 2 if i == 0 else 1))
            c = width
    layers += [_conv_bn(c, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, n_classes)]
    return nn.Sequential(*layers)


class _DenseLayer(nn.Module):
    def __init__(self, c_in, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(),
                                  nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], dim=1)


def densenet121(n_classes=1000, growth=32, blocks=(6, 12, 24, 16)):
    layers, c = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for index, n in enumerate(blocks):
        for _ in range(n):
            layers.append(_DenseLayer(c, growth))
            c += growth
        if index < len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers)


class _Fire(nn.Module):
    def __init__(self, c_in, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c_in, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], dim=1)


def squeezenet(n_classes=1000):
    pool = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), _Fire(64, 16, 64), _Fire(128, 16, 64), pool(),
        _Fire(128, 32, 128), _Fire(256, 32, 128), pool(), _Fire(256, 48, 192), _Fire(384, 48, 192),
        _Fire(384, 64, 256), _Fire(512, 64, 256), nn.Conv2d(512, n_classes, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


class _Text(nn.Module):
    """A recurrent text classifier over embedded tokens ``[N, T, 64]``: the last step's state, then a linear head."""

    def __init__(self, kind, bidirectional=False, d_in=64, hidden=128, n_classes=10):
        super().__init__()
        self.rnn = getattr(nn, kind)(d_in, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), n_classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer (multi-head self-attention, GELU feed-forward)."""

    def __init__(self, d=128, heads=4, ff=512):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x):
        dh = self.qkv.in_features // self.heads
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, dh)).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.ff(self.norm2(x))


def transformer(n_classes=10):
    return nn.Sequential(_EncoderLayer(), _EncoderLayer(), nn.LayerNorm(128), nn.Flatten(1),
                         nn.Linear(128 * 32, n_classes))


def mlp():
    return nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


#: name -> (constructor, one example's shape, default batch)
ZOO = {
    "resnet18": (resnet18, (3, 224, 224), 4),
    "mobilenet_v2": (mobilenet_v2, (3, 224, 224), 4),
    "efficientnet_b0": (efficientnet_b0, (3, 224, 224), 4),
    "shufflenet_v2": (shufflenet_v2, (3, 224, 224), 4),
    "densenet121": (densenet121, (3, 224, 224), 4),
    "squeezenet": (squeezenet, (3, 224, 224), 4),
    "lstm_text": (lambda: _Text("LSTM"), (50, 64), 16),
    "gru_text_loop": (lambda: _Text("GRU"), (50, 64), 16),
    "bilstm_text": (lambda: _Text("LSTM", bidirectional=True), (50, 64), 16),
    "transformer": (transformer, (32, 128), 16),
    "mlp": (mlp, (512,), 32),
}
