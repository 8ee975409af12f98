"""Train every weight of a network from scratch: the engine behind Pippin's own trainers.

Signature (a contract other modules rely on)::

    fit_network(spec, inputs, targets, *, epochs, batch_size, optimizer="adam",
                learning_rate=1e-3, lr_schedule="cosine", weight_decay=0.0, momentum=0.9,
                validation=None, early_stopping_patience=None, random_state=None,
                progress=None, augment=None, n_jobs=None) -> (trained_spec, history)

- ``spec``: a ``pippin.spec.Model`` neural network (e.g. from ``pippin.pipelines.build.NetworkBuilder``).
- ``inputs``: ``[n_samples, *input_shape]`` float32 array for a one-input network,
  or a dict ``{input name: array}``.
- ``targets``: class indices ``[n_samples]`` (or the class labels themselves, for a
  classifier) under a cross-entropy loss; arrays shaped like the output under MSE.
- Loss: the spec's ``updateParams.lossLayers[0]`` if any, else categorical
  cross-entropy over the classifier's probability output (a softmax).
- Trains every layer with parameters (convolution, innerProduct weights and
  biases; batchnorm gamma/beta, normalising with batch statistics and updating the
  stored mean/variance as running statistics, PyTorch's momentum 0.1).
- ``optimizer``: "adam" (beta1 0.9, beta2 0.999, eps 1e-8) or "sgd" (``momentum``);
  ``weight_decay`` is L2 added to the gradients (torch.optim semantics).
- ``lr_schedule``: "cosine" (per epoch ``lr * (1 + cos(pi * e / epochs)) / 2``, as
  ``CosineAnnealingLR(T_max=epochs)``) or None (constant).
- ``validation``: ``(inputs, targets)``; ``history`` then has ``val_loss`` (and
  ``val_accuracy``) per epoch; with ``early_stopping_patience`` training stops after
  that many epochs without a lower ``val_loss`` and the best epoch's weights are
  returned (with validation, always the best epoch's weights).
- ``augment``: called on every training mini-batch as ``augment(batch, rng)`` with
  ``batch`` the dict ``{input name: [batch, *input_shape] array}`` (a copy it may
  change) and the shuffling generator; returns the batch to train on (data
  augmentation; validation batches are never augmented). With more than one worker it runs
  on a helper thread, one mini-batch ahead of training (same calls, same order).
- ``random_state``: seeds the shuffling (and ``augment``'s generator); the same seed gives the same bytes.
- ``n_jobs``: worker threads for the data-parallel mini-batches (None or -1: every
  CPU this process may use; ``shards``). The trained bytes do not depend on it.
- ``progress``: called after each epoch with a dict (``epoch``, ``loss``,
  ``accuracy`` (running accuracy over the epoch's mini-batches, while training), ``val_loss``, ``val_accuracy``, ``learning_rate``); returning
  False stops training.

``history`` keys: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
``learning_rate`` (lists per epoch), ``best_epoch`` (0-based, or None),
``epochs_run``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers.network import uses_exact_shapes
from .network import class_labels, input_blob, layers_of, network_of, write_back
from .optimizers import make_optimizer
from .shards import can_shard
from .trainer import Trainer, n_correct

__all__ = ["fit_network"]


def _loss_of(spec: Model, layers, where: str) -> tuple[str, str]:
    nn = network_of(spec, where=where)
    if len(nn.updateParams.lossLayers):
        loss = nn.updateParams.lossLayers[0]
        kind = loss.WhichOneof("LossLayerType")
        if kind is None:
            raise PipelineError("updateParams.lossLayers[0] has no loss type", where=where)
        return kind, getattr(loss, kind).input
    name = spec.description.predictedProbabilitiesName or getattr(nn, "labelProbabilityLayerName", "")
    softmaxes = [layer for layer in layers if layer.kind == "softmax"]
    if name and any(name in layer.outputs for layer in layers):
        return "categoricalCrossEntropyLossLayer", name
    if softmaxes:
        return "categoricalCrossEntropyLossLayer", softmaxes[-1].outputs[0]
    raise PipelineError("the spec has no loss layer and no softmax output to train a cross-entropy against",
                        where=where, hint="call NetworkBuilder.set_loss(...) or end the network with a softmax")


def _blobs(spec, inputs, where):
    names = [f.name for f in spec.description.input]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise PipelineError(f"the network takes {len(names)} inputs {names}; pass a dict", where=where)
        inputs = {names[0]: inputs}
    return {name: input_blob(spec, name, value, where=where) for name, value in inputs.items()}


def _targets(spec, targets, loss_kind, n, where):
    if loss_kind == "meanSquaredErrorLossLayer":
        t = np.asarray(targets, dtype=np.float32)
    else:
        t = np.asarray(targets)
        labels = class_labels(spec)
        int_labels = labels is not None and all(isinstance(v, (int, np.integer)) for v in labels)
        if labels is not None and (int_labels or not np.issubdtype(t.dtype, np.integer)):
            index = {v: i for i, v in enumerate(labels)}
            unknown = [v for v in np.unique(t).tolist() if v not in index]
            if unknown:
                raise PipelineError(f"target label {unknown[0]!r} is not one of the class labels {labels}",
                                    where=where)
            t = np.array([index[v] for v in t.tolist()], dtype=np.int64)
        t = t.astype(np.int64)
    if len(t) != n:
        raise PipelineError(f"{len(t)} targets for {n} examples", where=where)
    return t


def _batches(epochs, n, batch_size, blobs, rng, augment):
    """``(indices, batch)`` of every mini-batch of every epoch, in order: all of training's draws from ``rng``."""
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v[idx] for k, v in blobs.items()}
            yield idx, (batch if augment is None else augment(batch, rng))


class _Prefetch:
    """Iterate ``items`` one ahead on a helper thread (when ``ahead``), so gathering and augmenting the next
    mini-batch overlaps the current step instead of idling the other cores; the items are the same."""

    def __init__(self, items, ahead: bool):
        self.items = items
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pippin-batches") if ahead else None
        self.next = self.pool.submit(next, items) if ahead else None

    def __next__(self):
        if self.pool is None:
            return next(self.items)
        item = self.next.result()
        self.next = self.pool.submit(next, self.items, None)
        return item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
        return False


def fit_network(spec: Model, inputs, targets, *, epochs: int, batch_size: int, optimizer: str = "adam",
                learning_rate: float = 1e-3, lr_schedule: str | None = "cosine", weight_decay: float = 0.0,
                momentum: float = 0.9, validation=None, early_stopping_patience: int | None = None,
                random_state=None, progress=None, augment=None, n_jobs: int | None = None):
    """Train all weights of ``spec``'s network; see the module docstring for every argument.

    Returns
    -------
    trained_spec : pippin.spec.Model
        A copy of ``spec`` with the trained weights (and batchnorm statistics).
    history : dict
    """
    where = "fit_network"
    if epochs < 1 or batch_size < 1:
        raise PipelineError(f"epochs={epochs} and batch_size={batch_size} must be >= 1", where=where)
    if lr_schedule not in ("cosine", None):
        raise PipelineError(f"lr_schedule={lr_schedule!r}, expected 'cosine' or None", where=where)
    kw = {"learning_rate": learning_rate, "weight_decay": weight_decay}
    if optimizer == "sgd":
        kw["momentum"] = momentum
    elif optimizer != "adam":
        raise PipelineError(f"optimizer={optimizer!r}, expected 'adam' or 'sgd'", where=where)
    layers = layers_of(spec, where=where)
    trainable = {layer.name: tuple(layer.params) for layer in layers if layer.params}
    for layer in layers:
        if layer.kind == "batchnorm":
            layer.batch_statistics = True
    loss_kind, loss_input = _loss_of(spec, layers, where)
    shardable = can_shard(layers, exact_shapes=uses_exact_shapes(network_of(spec, where=where)))
    trainer = Trainer(layers, trainable=trainable, loss_kind=loss_kind, loss_input=loss_input,
                      optimizer=make_optimizer(optimizer, **kw), where=where, n_jobs=n_jobs, shardable=shardable)
    blobs = _blobs(spec, inputs, where)
    n = len(next(iter(blobs.values())))
    target = _targets(spec, targets, loss_kind, n, where)
    val = None
    if validation is not None:
        vb = _blobs(spec, validation[0], where)
        val = (vb, _targets(spec, validation[1], loss_kind, len(next(iter(vb.values()))), where))
    classify = loss_kind == "categoricalCrossEntropyLossLayer"
    rng = np.random.default_rng(random_state)
    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "learning_rate": [],
               "best_epoch": None, "epochs_run": 0}
    best, best_loss, since_best = None, math.inf, 0
    with trainer, _Prefetch(_batches(epochs, n, batch_size, blobs, rng, augment), trainer.n_workers > 1) as batches:
        for epoch in range(epochs):
            lr = (learning_rate * (1 + math.cos(math.pi * epoch / epochs)) / 2 if lr_schedule == "cosine"
                  else learning_rate)
            total, correct = 0.0, 0
            for _ in range(0, n, batch_size):
                idx, batch = next(batches)
                total += trainer.step(batch, target[idx], learning_rate=lr) * len(idx)
                if classify:
                    correct += n_correct(trainer.last_output, target[idx])
            history["loss"].append(total / n)
            history["learning_rate"].append(lr)
            history["accuracy"].append(correct / n if classify else None)
            history["epochs_run"] = epoch + 1
            stop = False
            if val is not None:
                vloss, vacc = trainer.evaluate(*val)
                history["val_loss"].append(vloss)
                history["val_accuracy"].append(vacc)
                if vloss < best_loss:
                    best_loss, since_best, history["best_epoch"] = vloss, 0, epoch
                    best = [(dict(layer.params), dict(getattr(layer, "buffers", {}))) for layer in layers]
                else:
                    since_best += 1
                    stop = early_stopping_patience is not None and since_best >= early_stopping_patience
            if progress is not None:
                event = {k: (v[-1] if isinstance(v, list) and v else None) for k, v in history.items()
                         if k in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")}
                event["epoch"] = epoch
                if progress(event) is False:
                    stop = True
            if stop:
                break
    if best is not None:
        for layer, (params, buffers) in zip(layers, best):
            layer.params.update(params)
            if buffers:
                layer.buffers.update(buffers)
    return write_back(spec, layers), history
