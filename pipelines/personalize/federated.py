"""Federated learning on Core ML files: the parameters that travel, and the client that trains them.

A federated round sends each client the shared model's *updatable* parameters only:
for an updatable neural network (alone, or a stage of a pipeline) the ``weights``
and ``bias`` of every layer the spec marks updatable (``isUpdatable`` on the layer
and on its ``WeightParams``), in layer order. Everything else in the file (frozen
layers, the backbone stage, metadata, update parameters) never leaves the server and
is never changed: ``with_parameters`` writes arrays back into a copy of the start
spec, so every round's model differs from the start only in those weights.

``CoreMLClient`` has the interface of Flower's ``NumPyClient`` (``get_parameters``,
``fit``, ``evaluate``; it subclasses it when ``flwr`` is installed): ``fit`` loads the
received weights into its model and trains them with Pippin's Core ML 3 update
engine (``RunnableModel.update``: the file's own loss, optimizer, epochs and
mini-batch size), then returns the new updatable parameters and its example
count (under Flower's FedProx the file's loss gains the proximal term,
``personalize.proximal``); ``evaluate`` scores its held-out data (categorical
cross-entropy and accuracy). The server side (round loop, aggregation, a model file per
round) is ``personalize.federated_server``, or ``personalize.federated_sim`` on Flower's
simulation engine.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers.weights import read_weights, write_weights
from ..runtime.model import load
from ..runtime.pipeline import pipeline_message
from .proximal import proximal_wrapper

__all__ = ["updatable_parameters", "with_parameters", "parameter_names", "CoreMLClient", "score", "client_data",
           "split_head", "run_prefix"]

logger = logging.getLogger(__name__)

_NETWORKS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")

try:  # Flower's client base class when installed; the same three methods otherwise
    from flwr.client import NumPyClient as _ClientBase  # noqa: F401
except ImportError:  # pippin[federated] not installed
    _ClientBase = object


def _networks(spec: Model, path: str = ""):
    """(where, network message) of every neural network in ``spec``, pipeline stages included, in order."""
    kind = spec.WhichOneof("Type")
    if kind in _NETWORKS:
        yield path or kind, getattr(spec, kind)
    elif kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        for i, stage in enumerate(pipeline_message(spec).models):
            yield from _networks(stage, f"{path}{kind}.models[{i}]." if not path else f"{path}models[{i}].")


def _slots(spec: Model):
    """(name, WeightParams, shape) of every updatable weight, in a fixed order."""
    out = []
    for where, network in _networks(spec):
        for layer in network.layers:
            if not layer.isUpdatable:
                continue
            kind = layer.WhichOneof("layer")
            if kind not in ("innerProduct", "convolution"):
                continue
            params = getattr(layer, kind)
            if kind == "innerProduct":
                shapes = {"weights": (int(params.outputChannels), int(params.inputChannels)),
                          "bias": (int(params.outputChannels),)}
            else:
                groups, kernel = max(int(params.nGroups), 1), [int(k) for k in params.kernelSize]
                first = ((int(params.kernelChannels), int(params.outputChannels) // groups) if params.isDeconvolution
                         else (int(params.outputChannels), int(params.kernelChannels)))
                shapes = {"weights": (*first, *kernel), "bias": (int(params.outputChannels),)}
            for field in ("weights", "bias"):
                if field == "bias" and not params.hasBias:
                    continue
                weight = getattr(params, field)
                if weight.isUpdatable:
                    out.append((f"{where}:{layer.name}.{field}", weight, shapes[field]))
    return out


def _has_knn(spec: Model) -> bool:
    kind = spec.WhichOneof("Type")
    if kind == "kNearestNeighborsClassifier":
        return True
    if kind in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return any(_has_knn(stage) for stage in pipeline_message(spec).models)
    return False


def parameter_names(spec: Model) -> list[str]:
    """Names of the updatable parameters, in the order ``updatable_parameters`` returns them."""
    return [name for name, _, _ in _slots(spec)]


def updatable_parameters(spec: Model) -> list[np.ndarray]:
    """The updatable weights of ``spec``: what a federated round sends and receives.

    Parameters
    ----------
    spec : pippin.spec.Model
        An updatable neural network, or a pipeline with one as a stage.

    Returns
    -------
    arrays : list of np.ndarray, float32
        One per updatable ``weights``/``bias`` field, in layer order: dense weights
        [shape=(n_out, n_in)], convolution weights [shape=(n_out, kernel_channels, kh, kw)],
        biases [shape=(n_out,)].

    Raises
    ------
    PipelineError
        The model has no updatable weight.
    """
    slots = _slots(spec)
    if not slots and _has_knn(spec):
        raise PipelineError("an updatable k-NN has no weights to aggregate: its update appends examples, which "
                            "Flower's averaging strategies cannot combine",
                            hint="combine devices' k-NN examples with 'pippin diff' and 'pippin merge'")
    if not slots:
        raise PipelineError("the model has no updatable weights to federate",
                            hint="federate a model with updatable layers, such as one from 'pippin train sound'")
    return [np.asarray(read_weights(w, count=int(np.prod(shape)), where=name), dtype=np.float32).reshape(shape)
            for name, w, shape in slots]


def with_parameters(spec: Model, arrays) -> Model:
    """A copy of ``spec`` whose updatable weights are ``arrays`` (as ``updatable_parameters`` returns them).

    Raises
    ------
    PipelineError
        The number of arrays or a shape differs from the model's, or a value is not finite.
    """
    out = Model()
    out.CopyFrom(spec)
    slots = _slots(out)
    arrays = list(arrays)
    if len(arrays) != len(slots):
        raise PipelineError(f"got {len(arrays)} parameter arrays, the model has {len(slots)} updatable weights")
    for (name, weight, shape), array in zip(slots, arrays):
        array = np.asarray(array, dtype=np.float32)
        if array.size != int(np.prod(shape)):
            raise PipelineError(f"parameters of shape {array.shape}, expected {shape}", where=name)
        if not np.all(np.isfinite(array)):
            raise PipelineError("parameters hold non-finite values", where=name)
        write_weights(weight, array.reshape(shape))
    return out


#: the fit-config key of Flower's ``FedProx`` (flwr 1.42.0 flwr/server/strategy/fedprox.py: configure_fit)
PROXIMAL_MU_KEY = "proximal_mu"

#: the fit-config key of Flower's ``DifferentialPrivacyClientSideFixedClipping`` (its ``fixedclipping_mod``
#: reads the same key); fact: flwr 1.42.0 flwr/supercore/differential_privacy.py (KEY_CLIPPING_NORM)
CLIPPING_NORM_KEY = "clipping_norm"


def _clip_update(new: list, old: list, clipping_norm: float) -> None:
    """Clip ``new - old`` to L2 norm ``clipping_norm`` in place, with Flower's own function."""
    try:
        from flwr.supercore.differential_privacy import compute_clip_model_update
    except ImportError:  # flwr before the supercore package
        from flwr.common.differential_privacy import compute_clip_model_update
    compute_clip_model_update(new, old, clipping_norm)


def _n_examples(data: dict) -> int:
    return len(next(iter(data.values()))) if data else 0


class CoreMLClient(_ClientBase):
    """A federated client holding an updatable Core ML model and its local data (Flower's ``NumPyClient`` interface).

    Parameters
    ----------
    model : path-like, pippin.spec.Model or RunnableModel
        The shared model (an updatable classifier, or a pipeline with an updatable stage).
    train : dict of str to np.ndarray [shape=(n_train, ...)]
        The model's training inputs (its inputs and the label), as ``model.update`` takes them.
    test : dict of str to np.ndarray [shape=(n_test, ...)], optional
        Held-out data for ``evaluate`` (same keys).
    epochs : int, optional
        Local epochs per round; default the file's own ``updateParams.epochs``.
    """

    def __init__(self, model, train: dict, test: dict | None = None, *, epochs: int | None = None):
        runnable = load(model) if not hasattr(model, "predict_batch") else model
        if not runnable.spec.isUpdatable:
            raise PipelineError("the model is not updatable (isUpdatable is false)", where=runnable.where)
        self.model = runnable
        self.train = train
        self.test = test
        self.epochs = epochs

    # -- the NumPyClient interface ------------------------------------------------
    def get_parameters(self, config: dict) -> list[np.ndarray]:
        """The model's current updatable parameters."""
        return updatable_parameters(self.model.spec)

    def set_parameters(self, parameters) -> None:
        """Load received parameters into the local model."""
        self.model = load(with_parameters(self.model.spec, parameters))

    def fit(self, parameters, config: dict):
        """Train the received parameters on the local data with the file's update semantics.

        ``config`` may carry ``epochs`` (local epochs this round), ``proximal_mu`` (Flower's
        FedProx: each step also pulls the weights towards the received ones, see
        ``personalize.proximal``) and ``clipping_norm`` (Flower's client-side DP: the update
        is clipped to that L2 norm). Returns (new updatable parameters, number of training
        examples, ``{"loss": last epoch's mean training loss}``, the file's loss without the
        proximal term).
        """
        self.set_parameters(parameters)
        losses: list[float] = []

        def progress(event):
            if getattr(event, "event", None) == "epoch_end" and event.loss is not None:
                losses.append(float(event.loss))

        options = {}
        mu = float(config.get(PROXIMAL_MU_KEY) or 0.0)
        if mu > 0:  # FedProx: the file's loss plus mu/2 ||w - w_received||^2 (``proximal``)
            options["wrap_optimizer"] = proximal_wrapper(mu)
        epochs = int(config.get("epochs", 0)) or self.epochs
        self.model = self.model.update(self.train, epochs=epochs, progress=progress, **options)
        metrics = {"loss": losses[-1]} if losses else {}
        new = updatable_parameters(self.model.spec)
        if config.get(CLIPPING_NORM_KEY) is not None:  # Flower's client-side DP: clip this update
            _clip_update(new, [np.asarray(p, dtype=np.float32) for p in parameters], float(config[CLIPPING_NORM_KEY]))
        return new, _n_examples(self.train), metrics

    def evaluate(self, parameters, config: dict):
        """(categorical cross-entropy, number of held-out examples, ``{"accuracy": ...}``) on the local test data."""
        self.set_parameters(parameters)
        if not self.test:
            return 0.0, 0, {"accuracy": 0.0}
        loss, accuracy = score(self.model, self.test)
        return loss, _n_examples(self.test), {"accuracy": accuracy}


def score(model, data: dict) -> tuple[float, float]:
    """(mean categorical cross-entropy, accuracy) of a classifier on ``data`` (inputs and the label).

    Parameters
    ----------
    model : RunnableModel
        A classifier (``predictedFeatureName`` and ``predictedProbabilitiesName`` set).
    data : dict of str to np.ndarray [shape=(n, ...)]
    """
    description = model.spec.description
    label, probs = description.predictedFeatureName, description.predictedProbabilitiesName
    if not label or not probs:
        raise PipelineError("federated evaluation needs a classifier (predicted label and probabilities)",
                            where=model.where)
    inputs = {f.name: data[f.name] for f in description.input if f.name in data}
    out = model.predict_batch(inputs)
    truth = np.asarray(data[label]).reshape(-1)
    labels = np.asarray(model.class_labels)
    index = {v: i for i, v in enumerate(labels.tolist())}
    rows = np.asarray(out[probs], dtype=np.float64).reshape(len(truth), -1)
    picked = rows[np.arange(len(truth)), [index[v] for v in truth.tolist()]]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-12, None))))
    accuracy = float(np.mean(np.asarray(out[label]).reshape(-1) == truth))
    return loss, accuracy


def client_data(inputs: dict, groups, *, test_fraction: float = 0.0, seed: int = 0,
                units=None) -> dict[Any, tuple[dict, dict]]:
    """Split one table of training inputs into per-client (train, test) dicts, one client per group value.

    Parameters
    ----------
    inputs : dict of str to np.ndarray [shape=(n, ...)]
    groups : array-like [shape=(n,)]
        The client each row belongs to.
    test_fraction : float in [0, 1)
        Share of each client's units held out (seeded, at least one when > 0 and the client has two).
    units : array-like [shape=(n,)], optional
        Rows that stay together on one side of the split (the windows of one audio file); default: each row.
    """
    groups = np.asarray(groups).reshape(-1)
    units = np.arange(len(groups)) if units is None else np.asarray(units).reshape(-1)
    rng = np.random.default_rng(seed)
    out = {}
    for value in sorted(set(groups.tolist()), key=str):
        mine = groups == value
        kept = rng.permutation(np.unique(units[mine]))
        n_test = int(round(len(kept) * test_fraction))
        if test_fraction > 0 and len(kept) > 1:
            n_test = min(max(n_test, 1), len(kept) - 1)
        held = mine & np.isin(units, kept[:n_test])
        test, train = np.flatnonzero(held), np.flatnonzero(mine & ~held)
        out[value] = ({k: np.asarray(v)[train] for k, v in inputs.items()},
                      {k: np.asarray(v)[test] for k, v in inputs.items()} if n_test else {})
    return out


def split_head(spec: Model) -> tuple[list[Model], Model]:
    """(frozen stages, updatable last stage) of a pipeline; ``([], spec)`` for a model that is not a pipeline.

    Federating only the last stage lets each client run the frozen stages (a sound
    model's backbone) once on its data instead of in every round; the last stage's
    updatable weights are all the model's, so ``with_parameters`` on the whole model
    takes the head's parameters unchanged.

    Raises
    ------
    PipelineError
        An earlier stage has updatable weights, or the last stage has none.
    """
    if spec.WhichOneof("Type") not in ("pipeline", "pipelineClassifier", "pipelineRegressor"):
        return [], spec
    stages = list(pipeline_message(spec).models)
    for i, stage in enumerate(stages[:-1]):
        if _slots(stage):
            raise PipelineError(f"stage {i} has updatable weights; only the last stage may be federated",
                                where=f"{spec.WhichOneof('Type')}.models[{i}]")
    head = Model()
    head.CopyFrom(stages[-1])
    if not _slots(head):
        raise PipelineError("the pipeline's last stage has no updatable weights to federate")
    head.isUpdatable = True
    return stages[:-1], head


def run_prefix(stages: list[Model], data: dict) -> dict:
    """``data`` with the outputs of the frozen ``stages`` added (each stage fed from what is known so far).

    Parameters
    ----------
    stages : list of pippin.spec.Model
    data : dict of str to np.ndarray [shape=(n, ...)]
    """
    out = dict(data)
    for stage in stages:
        model = load(stage)
        inputs = {name: out[name] for name in model.input_descriptions if name in out}
        out.update(model.predict_batch(inputs))
    return out
