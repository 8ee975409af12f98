"""Dense-head personalization: grow a sound classifier's last dense layer by the new labels, then update it.

The last dense layer gets one new output row per new label, initialised by weight
imprinting (the new class's mean embedding, scaled so that its logit beats the old
ones by a margin; bias the old rows' mean), and the updatable dense head is then
trained with Core ML 3's update semantics on the new examples plus any old-class
examples, class-balanced (``personalize_head``). The old classes' recordings can come
as windows or as read files whose frozen blobs are computed on demand
(``pippin.pipelines.cli.audio_prefix.FileBlobs``), so that only the windows the head
trains on run through the network.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers.weights import write_weights
from ..build.pipeline import PipelineClassifier, as_spec
from ..runtime.model import load
from .sound import _carry_metadata, _head, _last_dense, embed, sound_parts

__all__ = ["grown_head", "head_embeddings", "embeddings_of_blobs", "old_picks", "personalize_head"]

logger = logging.getLogger(__name__)


def _imprint(embeddings: np.ndarray, w: np.ndarray, b: np.ndarray, *, margin: float = 2.0) -> np.ndarray:
    """A new class's dense-layer row: the direction of its mean embedding, scaled so that its
    logit on its own examples exceeds the best old logit by ``margin`` on average (bias: the
    old biases' mean)."""
    mean = embeddings.mean(axis=0)
    direction = mean / max(np.linalg.norm(mean), 1e-12)
    best_old = (embeddings @ w.T + b).max(axis=1).mean()
    along = float((embeddings @ direction).mean())
    return direction * (best_old + margin - b.mean()) / max(along, 1e-6)


def _balanced_indices(labels, base_labels, *, old, max_per_class: int, seed: int):
    """``(own, base)``: indices of the user's windows (each label's repeated up to ``max_per_class``) and of
    the base windows (at most that many per old class, a seeded random subset)."""
    rng = np.random.default_rng(seed)
    base_labels = np.asarray(base_labels, dtype=object).astype(str)
    picks = [rng.permutation(np.flatnonzero(base_labels == c))[:max_per_class] for c in old]
    target = max([len(p) for p in picks] + [1])
    mine = np.asarray(labels, dtype=object)
    repeats = [np.resize(np.flatnonzero(mine == c), max(target, np.sum(mine == c))) for c in sorted(set(labels))]
    return np.concatenate(repeats), (np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64))


def _balanced(windows, labels, base_examples, *, old, max_per_class: int, seed: int):
    """User windows repeated up to ``max_per_class`` per label, plus at most that many per old class."""
    own, base = _balanced_indices(labels, base_examples[1], old=old, max_per_class=max_per_class, seed=seed)
    base_labels = np.asarray(base_examples[1], dtype=object).astype(str)
    base_windows = np.asarray(base_examples[0], dtype=np.float32)
    mine = np.asarray(labels, dtype=object)
    return (np.concatenate([windows[own], base_windows[base]]),
            list(mine[own].astype(str)) + list(base_labels[base]))


def _frozen_of_windows(model, windows: np.ndarray, *, chunk: int = 64) -> dict:
    """The frozen blobs of ``model``'s update (an updatable sound pipeline) for ``windows``, in fixed chunks
    with one BLAS thread (as ``pippin.pipelines.cli.audio_prefix`` computes the base examples')."""
    from threadpoolctl import threadpool_limits

    from ..update.core_ml_update import FrozenPrefix

    last = model.stages[-1]
    audio = model.spec.description.input[0].name

    def inputs(w):
        values = model.frozen_features({audio: w})
        return {name: values[name] for name in last.input_descriptions if name in values}

    with threadpool_limits(limits=1, user_api="blas"):
        prefix = FrozenPrefix.of(last, inputs(windows[:1]))
        if prefix is None:
            raise PipelineError("the grown head's update has no frozen prefix to start from")
        parts = [prefix(inputs(windows[a:a + chunk])) for a in range(0, len(windows), chunk)]
    return {b: np.concatenate([p[b] for p in parts]) for b in prefix.frontier}


def head_embeddings(spec: Any, windows: np.ndarray) -> np.ndarray:
    """The embeddings ``grown_head`` imprints from: the input of the last dense layer (not normalized) for each
    window [shape=(n_windows, n_dimensions)]."""
    return embed(as_spec(spec), np.asarray(windows, dtype=np.float32), normalize=False, predictions=False)[0]


def embeddings_of_blobs(spec: Any, prefix, blobs: dict) -> np.ndarray | None:
    """``head_embeddings`` of windows from their frozen blobs instead of a second pass through the network.

    ``prefix`` is the ``FrozenPrefix`` of the classifier network's update (the original's or
    the grown one's: the same frozen layers) and ``blobs`` its ``frontier`` blobs for the
    windows; the layers between them and the last dense layer's input run on the blobs,
    with one BLAS thread. None when that input is not reached that way (the caller then
    uses ``head_embeddings``).

    Returns
    -------
    embeddings : np.ndarray [shape=(n_windows, n_dimensions)] or None
    """
    from threadpoolctl import threadpool_limits

    _, net_spec, _ = sound_parts(as_spec(spec))
    network = net_spec.neuralNetworkClassifier
    target = network.layers[_last_dense(network)].input[0]
    values = dict(blobs)
    with threadpool_limits(limits=1, user_api="blas"):
        for layer in prefix.trainer.graph.active:
            if target in values:
                break
            if not all(b in values for b in layer.inputs):
                return None
            values.update(zip(layer.outputs, layer.forward(*[values[b] for b in layer.inputs])))
    if target not in values:
        return None
    out = np.asarray(values[target], dtype=np.float32)
    return out.reshape(len(out), -1)


def old_picks(spec: Any, labels, base_labels, *, max_per_class: int = 100, seed: int = 0) -> np.ndarray:
    """Indices of the old-class windows (``base_labels``: one label per window) ``personalize_head`` trains on
    with the user's windows labelled ``labels``: at most ``max_per_class`` of each old class, a seeded subset."""
    _, net_spec, _ = sound_parts(as_spec(spec))
    old = list(net_spec.neuralNetworkClassifier.stringClassLabels.vector)
    return _balanced_indices([str(x) for x in labels], base_labels, old=old, max_per_class=max_per_class,
                             seed=seed)[1]


def grown_head(spec: Any, examples: tuple[np.ndarray, list], *, embeddings: np.ndarray | None = None) -> Model:
    """The updatable pipeline ``personalize_head`` trains: the dense head grown by one output per new label of
    ``examples`` (windows, labels), its new rows imprinted from their mean embeddings (see ``_imprint``;
    ``embeddings``: ``head_embeddings(spec, windows)``, if already computed)."""
    spec = as_spec(spec)
    pre_spec, net_spec, audio = sound_parts(spec)
    network = net_spec.neuralNetworkClassifier
    if network.WhichOneof("ClassLabels") != "stringClassLabels":
        raise PipelineError("the dense-head personalization needs string class labels")
    old = list(network.stringClassLabels.vector)
    windows, labels = np.asarray(examples[0], dtype=np.float32), [str(x) for x in examples[1]]
    new = sorted(set(labels) - set(old))
    emb = head_embeddings(spec, windows) if embeddings is None else embeddings
    w, b = _head(net_spec)
    rows = [_imprint(emb[np.asarray(labels) == label], w, b) for label in new]
    grown = as_spec(net_spec)
    ip = grown.neuralNetworkClassifier.layers[_last_dense(network)].innerProduct
    ip.outputChannels = len(old) + len(new)
    write_weights(ip.weights, np.concatenate([w] + [r[None] for r in rows]))
    if ip.hasBias:
        write_weights(ip.bias, np.concatenate([b, np.full(len(new), b.mean())]))
    grown.neuralNetworkClassifier.stringClassLabels.vector.extend(new)
    label_name = spec.description.predictedFeatureName
    pipe = PipelineClassifier([("preprocessing", pre_spec), ("classifier", grown)])
    return pipe.make_updatable(training_inputs=[audio, label_name]).to_spec()


def personalize_head(spec: Any, examples: tuple[np.ndarray, list], *, base_examples=None, epochs: int | None = None,
                     progress=None, max_per_class: int = 100, seed: int = 0, grown: Model | None = None,
                     new_blobs: dict | None = None, **overrides) -> Model:
    """A personalized model whose dense head has one more output per new label, then updated.

    New rows are imprinted from the new examples' mean embeddings (see ``_imprint``); the updatable dense
    head is then trained (Core ML 3 update: the spec's loss and optimizer, ``epochs``
    and ``overrides`` as in ``update``) on the examples plus ``base_examples``, class-balanced:
    at most ``max_per_class`` windows of each old class (a seeded random subset), and each
    user label's windows repeated up to that count, so a handful of recordings is not
    outweighed by the old training data.
    ``progress`` receives the update's events (with the loss).

    ``base_examples`` is ``(windows, labels)``, or read files whose frozen blobs are computed
    on demand (``labels`` per window and ``blobs(indices)``, e.g.
    ``pippin.pipelines.cli.audio_prefix.FileBlobs`` of ``grown``): only the chosen windows
    then run through the network. ``grown`` is ``grown_head(spec, examples)``, if already made;
    ``new_blobs`` the frozen blobs of ``examples``' windows (as ``_frozen_of_windows``), if already computed.
    """
    spec = as_spec(spec)
    _, net_spec, audio = sound_parts(spec)
    old = list(net_spec.neuralNetworkClassifier.stringClassLabels.vector)
    out = grown if grown is not None else grown_head(spec, examples)
    windows, labels = np.asarray(examples[0], dtype=np.float32), [str(x) for x in examples[1]]
    new = sorted(set(labels) - set(old))
    label_name = spec.description.predictedFeatureName
    model = load(out)
    data, frozen = None, None
    if base_examples is not None and hasattr(base_examples, "blobs") and len(base_examples.labels):
        own, base = _balanced_indices(labels, base_examples.labels, old=old, max_per_class=max_per_class, seed=seed)
        if epochs != 0:
            mine = new_blobs if new_blobs is not None else _frozen_of_windows(model, windows)
            theirs = base_examples.blobs(base)
            frozen = {b: np.concatenate([mine[b][own], theirs[b]]) for b in mine}
        labels = list(np.asarray(labels, dtype=object)[own]) + [base_examples.labels[i] for i in base]
        data = {label_name: np.asarray(labels, dtype=object)}
    elif base_examples is not None and not hasattr(base_examples, "blobs") and len(base_examples[0]):
        windows, labels = _balanced(windows, labels, base_examples, old=old, max_per_class=max_per_class, seed=seed)
    elif epochs != 0:
        logger.warning("no old-class examples: the dense head is updated on the new examples only, and the old "
                       "classes may lose accuracy")
    if data is None:
        data = {audio: windows, label_name: np.asarray(labels, dtype=object)}
    if epochs != 0:
        extra = {"frozen": frozen} if frozen is not None else {}
        model = model.update(data, epochs=epochs, progress=progress, **extra, **overrides)
    final = model.spec
    _carry_metadata(spec, final, labels=old + new, note=f"dense head grown by {new} and updated",
                    n_examples=len(examples[1]))
    return final

