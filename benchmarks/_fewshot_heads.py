"""Updatable heads over a backbone's step embeddings, built with Pippin's NetworkBuilder and trained with fit_network.

Every head takes one window's embeddings as the blob ``embedding`` of shape
``[dim, 1, n_steps]`` (channels = embedding dimensions, width = time steps), so a
1-D convolution over time is a ``(1, k)`` convolution. Heads:

- ``"pool"``: global max and global mean over the steps, concatenated (``2 * dim``; only
  the max with ``pooling="max"``),
  batchnorm (standardises the pooled features), then ``hidden`` dense units + ReLU
  (none when ``hidden=0``), dense ``n_classes``, softmax.
- ``"conv"``: batchnorm, a ``(1, 3)`` convolution to ``channels`` + batchnorm + ReLU
  over time (keeps the order of the steps), then as ``"pool"``.

Only the dense layers are marked updatable (Core ML's update); ``fit_network`` trains all.
"""

from __future__ import annotations

import numpy as np

try:  # the builder is moving from pipelines/builder.py to pipelines/build/network.py
    from pippin.pipelines.build.network import NetworkBuilder
except ImportError:  # pragma: no cover - before the move
    from pippin.pipelines.builder import NetworkBuilder
from pippin.pipelines import load
from pippin.pipelines.update.fit import fit_network

INPUT = "embedding"
PROBS = "classLabelProbs"


def head_spec(*, dim: int, n_steps: int, classes, kind: str = "pool", hidden: int = 0, channels: int = 128,
              pooling: str = "maxmean", learning_rate: float = 1e-3, batch_size: int = 32, epochs: int = 60,
              seed: int = 0):
    """The spec of an untrained head (see the module docstring)."""
    b = NetworkBuilder(inputs=[(INPUT, (dim, 1, n_steps))], outputs=[PROBS], mode="classifier",
                       class_labels=list(classes), seed=seed)
    x = INPUT
    if kind == "conv":
        b.add_batchnorm("bn_in", x, "x_bn")
        b.add_conv("conv_t", "x_bn", "conv_t", n_out=channels, kernel=(1, 3), padding="same")
        b.add_batchnorm("bn_t", "conv_t", "conv_t_bn")
        b.add_activation("relu_t", "conv_t_bn", "conv_t_relu")
        x = "conv_t_relu"
    elif kind != "pool":
        raise ValueError(f"kind={kind!r}")
    b.add_pooling("max_t", x, "max_t", type="max", is_global=True)
    if pooling == "maxmean":
        b.add_pooling("mean_t", x, "mean_t", type="average", is_global=True)
        b.add_concat("pooled", ["max_t", "mean_t"], "pooled")
    b.add_batchnorm("bn_pooled", "pooled" if pooling == "maxmean" else "max_t", "pooled_bn")
    x, dense = "pooled_bn", []
    if hidden:
        b.add_dense("fc_hidden", x, "hidden", n_out=hidden)
        b.add_activation("relu_hidden", "hidden", "hidden_relu")
        x = "hidden_relu"
        dense.append("fc_hidden")
    b.add_dense("fc_out", x, "logits", n_out=len(classes))
    b.add_softmax("softmax", "logits", PROBS)
    b.make_updatable(dense + ["fc_out"])
    b.set_loss("categorical_cross_entropy")
    b.set_optimizer("adam", learning_rate=learning_rate, batch_size=batch_size)
    b.set_epochs(epochs)
    return b.spec


def as_blob(steps: np.ndarray) -> np.ndarray:
    """[n, n_steps, dim] step embeddings -> [n, dim, 1, n_steps] network inputs."""
    return np.ascontiguousarray(steps.transpose(0, 2, 1)[:, :, None, :], dtype=np.float32)


def step_augmenter(*, noise: float = 0.0, step_dropout: float = 0.0, shift: int = 0):
    """A fit_network ``augment``: Gaussian noise (times each feature's batch std), zeroed steps, circular shifts."""
    def augment(batch, rng):
        x = batch[INPUT]
        if shift:
            x = np.stack([np.roll(v, int(rng.integers(-shift, shift + 1)), axis=-1) for v in x])
        if step_dropout:
            x = x * (rng.random((x.shape[0], 1, 1, x.shape[-1])) >= step_dropout)
        if noise:
            x = x + rng.standard_normal(x.shape).astype(np.float32) * noise * x.std(axis=(0, 3), keepdims=True)
        return {INPUT: x.astype(np.float32)}
    return augment


def train_head(steps: np.ndarray, labels, *, kind: str = "pool", hidden: int = 0, channels: int = 128,
               pooling: str = "maxmean", epochs: int = 60, batch_size: int = 32, learning_rate: float = 1e-3,
               weight_decay: float = 0.0,
               augment=None, seed: int = 0):
    """Train a head on step embeddings [n, n_steps, dim] with Pippin's engine; returns (spec, history)."""
    classes = sorted(set(np.asarray(labels).tolist()))
    spec = head_spec(dim=steps.shape[2], n_steps=steps.shape[1], classes=classes, kind=kind, hidden=hidden,
                     channels=channels, pooling=pooling, learning_rate=learning_rate, batch_size=batch_size,
                     epochs=epochs, seed=seed)
    return fit_network(spec, as_blob(steps), np.asarray(labels), epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, weight_decay=weight_decay, augment=augment, random_state=seed)


def head_probabilities(spec, steps: np.ndarray) -> np.ndarray:
    """Class probabilities [n, n_classes] (in the spec's label order) from Pippin's runtime."""
    out = load(spec).predict_batch({INPUT: as_blob(steps)})
    return np.asarray(out[PROBS], dtype=np.float64)


def clip_predictions(probs: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    """The class index of each clip: its windows' mean probability, arg-maxed."""
    total = np.zeros((n_clips, probs.shape[1]))
    np.add.at(total, clip_index, probs)
    return total.argmax(axis=1)
