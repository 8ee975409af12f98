"""One mini-batch step: forward, loss, backward, optimizer; shared by ``fit_network`` and ``update``."""

from __future__ import annotations

import numpy as np

from .engine import Graph
from .losses import cross_entropy, mean_squared_error

__all__ = ["Trainer", "n_correct"]


def n_correct(probs: np.ndarray, target: np.ndarray) -> int:
    """How many rows of ``probs`` (channel axis as in ``losses``) have their maximum at ``target``."""
    p2 = np.moveaxis(probs, -3, -1).reshape(len(target), -1) if probs.ndim >= 4 else probs.reshape(len(target), -1)
    return int((p2.argmax(axis=1) == target).sum())


class Trainer:
    """Train the ``trainable`` layers of ``layers`` against one loss.

    Parameters
    ----------
    layers : list of Layer
        Built layers in run order; their ``params`` are replaced after each step.
    trainable : dict of str to tuple of str
        Layer name -> the parameter names to train.
    loss_kind : {"categoricalCrossEntropyLossLayer", "meanSquaredErrorLossLayer"}
    loss_input : str
        The blob the loss reads.
    optimizer : SGD or Adam
    """

    def __init__(self, layers, *, trainable, loss_kind, loss_input, optimizer, where="<model>"):
        self.layers = layers
        self.by_name = {layer.name: layer for layer in layers}
        self.trainable = trainable
        self.loss_kind = loss_kind
        self.loss_input = loss_input
        self.optimizer = optimizer
        self.state = None
        self.graph = Graph(layers, trainable=set(trainable), loss_inputs=[loss_input], where=where)
        producer = self.graph.producer.get(loss_input)
        self.fuse_softmax = (loss_kind == "categoricalCrossEntropyLossLayer" and producer is not None
                             and producer.kind == "softmax" and producer.name in self.graph.active_names)

    def weights(self) -> dict:
        return {(name, p): self.by_name[name].params[p] for name, ps in self.trainable.items() for p in ps}

    def loss(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        if self.loss_kind == "categoricalCrossEntropyLossLayer":
            return cross_entropy(output, target)
        return mean_squared_error(output, target)

    def step(self, blobs: dict, target: np.ndarray, *, learning_rate: float | None = None) -> float:
        """One forward/backward pass and optimizer step on one mini-batch; returns its loss."""
        values, caches = self.graph.forward(blobs, train=True)
        output = values[self.loss_input]
        self.last_output = output
        loss, grad = self.loss(output, target)
        if self.fuse_softmax:
            pgrads = self.graph.backward(values, caches, {}, softmax_ce={self.loss_input: target})
        else:
            pgrads = self.graph.backward(values, caches, {self.loss_input: grad})
        grads = {}
        for (name, p), w in self.weights().items():
            g = pgrads.get(name, {}).get(p)
            grads[(name, p)] = np.zeros_like(w) if g is None else g
        new, self.state = self.optimizer.step(self.weights(), grads, self.state, learning_rate=learning_rate)
        for (name, p), w in new.items():
            self.by_name[name].params[p] = np.ascontiguousarray(w, dtype=np.float32)
        return loss

    def evaluate(self, blobs: dict, target: np.ndarray, *, batch_size: int = 256) -> tuple[float, float | None]:
        """Mean loss (and accuracy for cross-entropy) with inference semantics, in batches."""
        n = len(target)
        total, correct = 0.0, 0
        for start in range(0, n, batch_size):
            part = {k: v[start:start + batch_size] for k, v in blobs.items()}
            values, _ = self.graph.forward(part, train=False)
            out = values[self.loss_input]
            t = target[start:start + batch_size]
            loss, _ = self.loss(out, t)
            total += loss * len(t)
            if self.loss_kind == "categoricalCrossEntropyLossLayer":
                correct += n_correct(out, t)
        acc = correct / n if self.loss_kind == "categoricalCrossEntropyLossLayer" and n else None
        return total / max(n, 1), acc
