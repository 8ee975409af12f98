"""Backpropagation over a Core ML layer graph.

``Graph`` holds the built layers of a network in spec order (the order Core ML runs
them). ``forward`` runs every layer over a ``{blob: array}`` dict, keeping each
layer's cache where a gradient will have to flow back through it; ``backward``
walks the layers in reverse, summing gradients of blobs read by several layers,
and returns the parameter gradients of the trainable layers.

A layer takes part in backpropagation when it is trainable or one of its inputs
depends on a trainable layer; such a layer must implement ``forward_train`` and
``backward`` (checked once, when the graph is built).
"""

from __future__ import annotations

import numpy as np

from ..errors import PipelineError
from .losses import cross_entropy_logits_grad

__all__ = ["Graph"]


class Graph:
    """Layers in run order, of which ``trainable`` (layer names) receive parameter gradients.

    Parameters
    ----------
    layers : list of Layer
    trainable : set of str
    loss_inputs : list of str
        The blobs the losses read; layers that cannot reach them are still run
        forward but never backward.
    where : str
        Names errors (the model file).
    """

    def __init__(self, layers, *, trainable, loss_inputs, where: str = "<model>"):
        self.layers = list(layers)
        self.trainable = set(trainable)
        self.where = where
        self.loss_inputs = list(loss_inputs)
        self.producer = {out: layer for layer in self.layers for out in layer.outputs}
        # blobs depending on a trainable layer
        self.depends: set[str] = set()
        for layer in self.layers:
            if layer.name in self.trainable or any(b in self.depends for b in layer.inputs):
                self.depends.update(layer.outputs)
        # blobs the losses depend on
        needed = set(loss_inputs)
        for layer in reversed(self.layers):
            if any(out in needed for out in layer.outputs):
                needed.update(layer.inputs)
        self.active = [
            layer for layer in self.layers
            if any(o in needed for o in layer.outputs)
            and (layer.name in self.trainable or any(b in self.depends for b in layer.inputs))
        ]
        self.active_names = {layer.name for layer in self.active}
        for layer in self.active:
            if not hasattr(layer, "backward") or not hasattr(layer, "forward_train"):
                raise PipelineError(
                    f"layer {layer.name!r} ({layer.kind}) lies between a loss and a trainable layer "
                    "but Pippin cannot backpropagate through it",
                    where=self.where,
                    hint="only convolution, innerProduct, flatten, pooling, batchnorm, activation, softmax "
                    "and concat layers can be trained through",
                )

    def _needs_input_grads(self, layer) -> bool:
        return any(b in self.depends for b in layer.inputs)

    def forward(self, blobs: dict, *, train: bool) -> tuple[dict, dict]:
        """Run every layer; with ``train`` keep the caches backpropagation needs."""
        blobs = dict(blobs)
        caches = {}
        for layer in self.layers:
            try:
                ins = [blobs[b] for b in layer.inputs]
            except KeyError as exc:
                raise PipelineError(f"layer {layer.name!r} reads blob {exc.args[0]!r}, which no earlier layer "
                                    f"or input provides; known blobs: {sorted(blobs)}", where=self.where) from None
            if train and (layer.name in self.active_names or getattr(layer, "batch_statistics", False)):
                outs, caches[layer.name] = layer.forward_train(*ins)
            else:
                outs = layer.forward(*ins)
            blobs.update(zip(layer.outputs, outs))
        return blobs, caches

    def backward(self, blobs: dict, caches: dict, seeds: dict, *, softmax_ce: dict | None = None) -> dict:
        """Parameter gradients ``{layer name: {param: grad}}`` from loss gradients ``seeds``.

        ``softmax_ce`` maps a softmax output blob to its class targets: the
        gradient then enters at the softmax input as ``(p - onehot) / B``.
        """
        grads = {k: v for k, v in seeds.items()}
        softmax_ce = softmax_ce or {}
        out = {}
        for layer in reversed(self.active):
            if layer.kind == "softmax" and layer.outputs[0] in softmax_ce:
                g_in = cross_entropy_logits_grad(blobs[layer.outputs[0]], softmax_ce[layer.outputs[0]])
                self._accumulate(grads, layer.inputs[0], g_in)
                continue
            pgrads = self.backward_layer(layer, blobs, caches, grads)
            if pgrads is not None and layer.name in self.trainable:
                out[layer.name] = pgrads
        return out

    def backward_layer(self, layer, blobs: dict, caches: dict, grads: dict):
        """One layer's step of the backward walk: take the gradients waiting at its outputs
        from ``grads`` (zeros for an output nothing reached), add its input gradients to
        ``grads`` and return its parameter gradients; None when no gradient reached it."""
        gys = [grads.pop(o, None) for o in layer.outputs]
        if all(g is None for g in gys):
            return None
        gys = [np.zeros_like(blobs[o]) if g is None else g for o, g in zip(layer.outputs, gys)]
        need = self._needs_input_grads(layer)
        gxs, pgrads = layer.backward(caches[layer.name], *gys, need_input_grads=need)
        if need:
            for name, g in zip(layer.inputs, gxs):
                if name in self.depends and g is not None:
                    self._accumulate(grads, name, g)
        return pgrads

    @staticmethod
    def _accumulate(grads, name, g):
        if name in grads:
            grads[name] = grads[name] + g
        else:
            grads[name] = g
