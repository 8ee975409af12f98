"""Core ML 3's on-device update (``MLUpdateTask``) for updatable neural networks.

``update_network(model, training_data, *, epochs=None, progress=None, **overrides)``
trains only what the spec marks updatable (the ``weights``/``bias`` of layers with
``isUpdatable`` whose ``WeightParams.isUpdatable`` is set) with the spec's
``updateParams``: its first loss layer, its optimizer (SGD: learning rate,
momentum, mini-batch size; Adam: learning rate, beta1, beta2, eps, mini-batch
size), epochs, shuffle and seed. Overrides use Core ML's parameter names
(``learningRate``, ``miniBatchSize``, ``momentum``, ``beta1``, ``beta2``, ``eps``,
``epochs``, ``shuffle``, ``seed``) or their snake_case spellings, and must lie in the
spec's allowed range or set. Everything else in the returned model's spec is the
original's, byte for byte.

``training_data`` maps the spec's ``trainingInput`` names to arrays with a leading
batch axis; a classifier's target may hold the class labels themselves (or, for
string labels, class indices), under the loss target's own name or, as Core ML maps
it, under the declared label training input (see ``_target_key``). Omitted optional
inputs (recurrent states) start at zero. ``progress(event)`` receives an ``UpdateProgress`` at
training begin, after each mini-batch and after each epoch; returning False or
raising ``StopTraining`` ends training (the weights so far are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PipelineError
from ..layers.network import uses_exact_shapes
from .network import class_labels, layers_of, network_of, write_back
from .optimizers import SGD, Adam
from .params import resolve_parameters
from .shards import can_shard
from .trainer import Trainer

__all__ = ["update_network", "FrozenPrefix", "UpdateProgress", "StopTraining"]


class StopTraining(Exception):
    """Raise from a progress callback to end an update early."""


@dataclass(frozen=True)
class UpdateProgress:
    """One progress event: ``event`` is "training_begin", "mini_batch_end" or "epoch_end"."""

    event: str
    epoch: int
    mini_batch: int | None
    loss: float | None


def _trainable(spec, layers, where):
    nn = network_of(spec, where=where)
    out = {}
    for proto, layer in zip(nn.layers, layers):
        if not proto.isUpdatable:
            continue
        kind = proto.WhichOneof("layer")
        if kind not in ("innerProduct", "convolution"):
            raise PipelineError(f"layer {proto.name!r} is marked updatable but is a {kind}; Core ML updates only "
                                "innerProduct and convolution layers", where=layer.where)
        params = getattr(proto, kind)
        names = tuple(n for n in ("weights", "bias") if n in layer.params and getattr(params, n).isUpdatable)
        if names:
            out[layer.name] = names
    if not out:
        raise PipelineError("no layer has updatable weights", where=where,
                            hint="mark layers with isUpdatable and their WeightParams with isUpdatable")
    return out


def _targets(spec, values, target_name, loss_kind, n, where):
    values = np.asarray(values)
    if values.ndim > 1 and loss_kind == "categoricalCrossEntropyLossLayer":
        values = values.reshape(len(values), -1)[:, 0]
    if len(values) != n:
        raise PipelineError(f"training input {target_name!r} has {len(values)} examples, the inputs have {n}",
                            where=where)
    if loss_kind == "meanSquaredErrorLossLayer":
        return values.astype(np.float32)
    labels = class_labels(spec)
    int_labels = labels is not None and all(isinstance(v, (int, np.integer)) for v in labels)
    if labels is not None and (int_labels or not np.issubdtype(values.dtype, np.number)):
        index = {v: i for i, v in enumerate(labels)}
        bad = [v for v in values.tolist() if v not in index]
        if bad:
            raise PipelineError(f"training input {target_name!r} holds {bad[0]!r}, which is not a class label; "
                                f"labels: {labels}", where=where)
        return np.array([index[v] for v in values.tolist()], dtype=np.int64)
    idx = values.astype(np.int64)
    if labels is not None and (idx.min() < 0 or idx.max() >= len(labels)):
        raise PipelineError(f"training input {target_name!r} holds class index {int(idx.max())}, expected 0 to "
                            f"{len(labels) - 1}", where=where)
    return idx


def _target_key(spec, data, target_name, where):
    """The training-data key that feeds the loss target, as Core ML maps it.

    The loss layer's ``target`` itself when given (files that declare ``output_true``
    as a training input); else a classifier's predicted-label name (coremltools'
    builder declares the label input ``label`` for the target ``<probs>_true``); else
    the one declared training input that is not a model input.
    """
    if target_name in data:
        return target_name
    inputs = {f.name for f in spec.description.input}
    extra = [f.name for f in spec.description.trainingInput if f.name not in inputs]
    label = spec.description.predictedFeatureName
    candidates = ([label] if label else []) + extra
    for name in candidates:
        if name in data:
            return name
    raise PipelineError(f"training data lacks the target {target_name!r}; it needs "
                        f"{[f.name for f in spec.description.trainingInput] or [target_name]}", where=where)


def _input_blobs(model, spec, data, where):
    names = [f.name for f in spec.description.input if not f.type.isOptional or data.get(f.name) is not None]
    missing = [n for n in names if n not in data]
    if missing:
        raise PipelineError(f"training data lacks {missing[0]!r}; it needs {names}", where=where)
    feeds = {n: data[n] for n in names}
    n = len(next(iter(feeds.values()))) if feeds else 0
    for f in spec.description.input:
        if f.name not in feeds and f.type.WhichOneof("Type") == "multiArrayType" and f.type.multiArrayType.shape:
            # an omitted optional input (a recurrent state): Core ML starts it at zero, as the layers do
            feeds[f.name] = np.zeros((n, *f.type.multiArrayType.shape), dtype=np.float32)
    return model.to_blobs(feeds)


def _trainer(model, *, optimizer=None, n_jobs=None) -> Trainer:
    """A ``Trainer`` of ``model``'s updatable layers against its first loss (its own built layers)."""
    spec, where = model.spec, model.where
    nn = network_of(spec, where=where)
    if not len(nn.updateParams.lossLayers):
        raise PipelineError("the updatable model declares no loss layer", where=f"{where}: updateParams.lossLayers")
    loss = nn.updateParams.lossLayers[0]
    loss_kind = loss.WhichOneof("LossLayerType")
    layers = layers_of(spec, where=where, fast=getattr(model, "fast", True))
    trainable = _trainable(spec, layers, where)
    return Trainer(layers, trainable=trainable, loss_kind=loss_kind, loss_input=getattr(loss, loss_kind).input,
                   optimizer=optimizer, where=where, n_jobs=n_jobs,
                   shardable=can_shard(layers, exact_shapes=uses_exact_shapes(nn)))


class FrozenPrefix:
    """An updatable network's frozen layers, to run on chunks of examples before ``update_network(frozen=...)``.

    The update runs the layers before its trained ones once per example (``Trainer.frozen_prefix``);
    a caller that makes its examples in parts (reading files on several processes, say) can run
    those layers on each part where it is made and hand over only the small results. ``of``
    returns None when the update would run every layer in every step (no prefix to split off).

    Parameters
    ----------
    model : NeuralNetworkModel
        The updatable network, loaded.
    """

    def __init__(self, model, trainer: Trainer, frontier: list[str]):
        self.model, self.trainer, self.frontier = model, trainer, frontier

    @classmethod
    def of(cls, model, one: dict) -> "FrozenPrefix | None":
        """The prefix of ``model``'s update, checked on ``one`` (its inputs for one example), or None."""
        if not (hasattr(model, "spec") and hasattr(model, "where")) or not model.spec.isUpdatable:
            return None
        if model.spec.WhichOneof("Type") not in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
            return None  # an updatable k-NN, say: nothing frozen to run first
        trainer = _trainer(model)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            frontier = trainer.prefix_frontier(_input_blobs(model, model.spec, one, model.where))
        return None if frontier is None else cls(model, trainer, frontier)

    def __call__(self, inputs: dict) -> dict:
        """The frozen blobs ``{name: [shape=(n_examples, ...)]}`` of ``inputs`` (the network's inputs for one
        chunk of examples), computed as the update computes them: call under one BLAS thread
        (``threadpoolctl``) for the same bytes."""
        return self.trainer.run_prefix(_input_blobs(self.model, self.model.spec, inputs, self.model.where),
                                       self.frontier)


def update_network(model, training_data: dict, *, epochs: int | None = None, progress=None,
                   n_jobs: int | None = None, wrap_optimizer=None, frozen: dict | None = None, **overrides):
    """Train ``model``'s updatable layers on ``training_data``; returns a new model (see the module docstring).

    Parameters
    ----------
    model : NeuralNetworkModel
        An updatable neural network, loaded (``pippin.pipelines.load(path)``); the engine
        uses its ``spec``, ``where``, ``to_blobs`` and ``fast`` and makes the result with
        ``type(model)``, so it never imports the runtime (which calls it from
        ``NeuralNetworkModel.update``).
    training_data : dict of str to np.ndarray [shape=(n_samples, ...)]
    epochs : int, optional
        Overrides the spec's epochs.
    progress : callable, optional
        ``progress(UpdateProgress) -> bool | None``.
    n_jobs : int, optional
        Worker threads for the data-parallel mini-batches (None or -1: every CPU this
        process may use); the result does not depend on it.
    wrap_optimizer : callable, optional
        ``wrap_optimizer(optimizer) -> optimizer``: wraps the file's optimizer (same ``step``
        interface), e.g. to add a gradient term (federated FedProx's proximal term,
        ``pippin.pipelines.personalize.proximal``).
    frozen : dict of str to np.ndarray [shape=(n_samples, ...)], optional
        The frozen layers' blobs for every example, already computed (``FrozenPrefix``, in
        fixed chunks); ``training_data`` then needs only the target, and steps start there.

    Returns
    -------
    model : NeuralNetworkModel
        A new model whose spec differs from the original only in the trained weights.
    """
    if not (hasattr(model, "spec") and hasattr(model, "where")):
        raise TypeError(f"update_network takes a loaded neural network (pippin.pipelines.load(path)), "
                        f"got {type(model).__name__}")
    spec, where = model.spec, model.where
    if not spec.isUpdatable:
        raise PipelineError("the model is not updatable (isUpdatable is false)", where=where)
    nn = network_of(spec, where=where)
    if not len(nn.updateParams.lossLayers):
        raise PipelineError("the updatable model declares no loss layer", where=f"{where}: updateParams.lossLayers")
    if epochs is not None:
        overrides["epochs"] = epochs
    hp = resolve_parameters(nn.updateParams, overrides, where=where)
    if not isinstance(training_data, dict):
        raise PipelineError(f"training data must be a dict of arrays, got {type(training_data).__name__}",
                            where=where)
    optimizer = (SGD(learning_rate=hp["learningRate"], momentum=hp["momentum"]) if hp["optimizer"] == "sgd" else
                 Adam(learning_rate=hp["learningRate"], beta1=hp["beta1"], beta2=hp["beta2"], eps=hp["eps"]))
    if wrap_optimizer is not None:
        optimizer = wrap_optimizer(optimizer)
    trainer = _trainer(model, optimizer=optimizer, n_jobs=n_jobs)
    loss = nn.updateParams.lossLayers[0]
    loss_kind = trainer.loss_kind
    target_key = _target_key(spec, training_data, getattr(loss, loss_kind).target, where)
    blobs = _input_blobs(model, spec, training_data, where) if frozen is None else dict(frozen)
    n = len(next(iter(blobs.values())))
    target = _targets(spec, training_data[target_key], target_key, loss_kind, n, where)
    rng = np.random.default_rng(hp["seed"])
    batch = hp["miniBatchSize"]

    def tell(event, epoch, mini_batch=None, value=None):
        if progress is None:
            return True
        try:
            return progress(UpdateProgress(event, epoch, mini_batch, value)) is not False
        except StopTraining:
            return False

    go = tell("training_begin", 0)
    with trainer:
        if go and frozen is None:
            blobs = trainer.frozen_prefix(blobs)  # the frozen layers run once, not once per epoch
        elif go:
            blobs = trainer.use_prefix(blobs)
        for epoch in range(hp["epochs"] if go else 0):
            order = rng.permutation(n) if hp["shuffle"] else np.arange(n)
            total = 0.0
            for b, start in enumerate(range(0, n, batch)):
                idx = order[start:start + batch]
                value = trainer.step({k: v[idx] for k, v in blobs.items()}, target[idx])
                total += value * len(idx)
                if not tell("mini_batch_end", epoch, b, value):
                    go = False
                    break
            if not go or not tell("epoch_end", epoch, None, total / n):
                break
    pairs = {(name, p) for name, ps in trainer.trainable.items() for p in ps}
    new_spec = write_back(spec, trainer.layers, only=pairs)
    fast = getattr(model, "fast", True)  # a reference-only model trains with the reference classes too
    return type(model)(new_spec, path=None) if fast else type(model)(new_spec, path=None, fast=False)
