"""Two small updatable classifiers built with pippin's builder, and the same networks in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.pipelines.build.network import NetworkBuilder

torch = pytest.importorskip("torch")
F = torch.nn.functional

LABELS = ["cat", "dog", "owl"]


def dense_spec(optimizer="sgd", *, updatable=("fc1", "fc2"), batch_size=5, epochs=2, shuffle=False, **opt):
    b = NetworkBuilder(inputs=[("x", (4,))], outputs=["probs"], mode="classifier", class_labels=LABELS, seed=3)
    b.add_dense("fc1", "x", "h", n_out=8, bias_values=np.linspace(-0.2, 0.2, 8))
    b.add_activation("relu", "h", "hr", kind="ReLU")
    b.add_dense("fc2", "hr", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    b.make_updatable(list(updatable))
    b.set_loss("categorical_cross_entropy")
    b.set_optimizer(optimizer, batch_size=batch_size, batch_sizes=[1, 2, 4, 5, 8, 10], **opt)
    b.set_epochs(epochs)
    b.set_shuffle(shuffle, seed=11)
    return b.spec


def conv_spec(optimizer="adam", *, batch_size=4, epochs=2, **opt):
    b = NetworkBuilder(inputs=[("x", (2, 8, 8))], outputs=["probs"], mode="classifier", class_labels=LABELS, seed=5)
    b.add_conv("conv", "x", "c", n_out=4, kernel=3, padding="same", bias_values=np.full(4, 0.05))
    b.add_activation("relu", "c", "cr")
    b.add_pooling("pool", "cr", "p", type="max", kernel=2)
    b.add_flatten("flat", "p", "f")
    b.add_dense("fc", "f", "logits", n_out=3)
    b.add_softmax("sm", "logits", "probs")
    b.make_updatable(["conv", "fc"])
    b.set_loss("categorical_cross_entropy")
    b.set_optimizer(optimizer, batch_size=batch_size, **opt)
    b.set_epochs(epochs)
    return b.spec


def weights_of(spec, name):
    layer = next(layer for layer in spec.neuralNetworkClassifier.layers if layer.name == name)
    p = getattr(layer, layer.WhichOneof("layer"))
    return np.array(p.weights.floatValue, np.float32), np.array(p.bias.floatValue, np.float32)


def torch_dense(spec):
    (w1, b1), (w2, b2) = weights_of(spec, "fc1"), weights_of(spec, "fc2")
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in (w1.reshape(8, 4), b1, w2.reshape(3, 8), b2)]

    def forward(x):
        h = F.relu(F.linear(x, params[0], params[1]))
        return F.linear(h, params[2], params[3])

    return params, forward


def torch_conv(spec):
    (wc, bc), (wf, bf) = weights_of(spec, "conv"), weights_of(spec, "fc")
    params = [torch.nn.Parameter(torch.from_numpy(a.copy()))
              for a in (wc.reshape(4, 2, 3, 3), bc, wf.reshape(3, 64), bf)]

    def forward(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, params[0], params[1], padding=1)), 2)
        return F.linear(h.reshape(len(x), -1), params[2], params[3])

    return params, forward


def torch_train(params, forward, x, y, *, optimizer, batch_size, epochs, order=None, **opt):
    opt_obj = optimizer(params, **opt)
    n = len(x)
    for _ in range(epochs):
        idx_all = np.arange(n) if order is None else order
        for start in range(0, n, batch_size):
            idx = idx_all[start:start + batch_size]
            opt_obj.zero_grad()
            loss = F.cross_entropy(forward(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            opt_obj.step()
    return [p.detach().numpy() for p in params]
