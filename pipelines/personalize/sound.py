"""Personalization: teach a trained sound classifier new sounds from a handful of recordings.

The sound classifier is ``preprocessing -> NeuralNetworkClassifier``. Two ways:

- **k-NN** (default, ``personalize_knn``): the network is cut at the input of its
  last dense layer (the penultimate dense/ReLU output), L2-normalized (the
  *embedding*; the k-NN's distance is then ``2 - 2 cos``), and the
  model becomes ``preprocessing -> embedding network -> updatable k-NN``. The
  k-NN index holds the embeddings of the new examples plus a memory of the old
  classes, so old sounds keep being recognized:

  1. embeddings of old-class recordings when given (``base_examples``: the
     original training data or a sample of it), keeping only windows the original
     classifier got right, condensed to at most ``max_per_class`` (20) k-means
     centroids per class (fewer, denser-than-data centroids keep the old classes
     and leave the few new examples room: on FSDD, 20 rather than 100 kept the old
     digits' accuracy and more than doubled the new ones');
  2. otherwise the embedding memory the model carries (``personalize.memory``: the
     same centroids, computed by Pippin's trainer at export from the training
     windows, so the result does not depend on where the training folder is);
  3. otherwise, one synthesized prototype per old class: the embedding, at the
     typical embedding norm of the new examples, that the original dense head
     classifies as that class most confidently (projected gradient ascent on the
     head's log-softmax over non-negative vectors). This keeps old classes
     separable but is weaker than real examples. An old class left with no remembered
     example (none classified right) gets its prototype too, so no class is dropped.

  Further examples can be appended later with ``pippin update``.
- **dense head** (``personalize_head``, in ``personalize.head``): the last dense layer
  gets one new output row per new label, initialised by weight imprinting, and the
  updatable dense head is then trained with Core ML 3's update semantics on the
  new examples plus any old-class examples.

Windows are 975 ms of 16 kHz audio, as the model's audio input takes; reading
files is the caller's job (the ``pippin personalize`` command does it).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...spec import Model
from ..errors import PipelineError
from ..layers.weights import read_weights
from ..build.knn import KNearestNeighborsClassifier
from ..runtime.pipeline import pipeline_message
from ..build.pipeline import PipelineClassifier, as_spec
from ..runtime.model import load

__all__ = ["embedding_network", "sound_parts", "embed", "personalize_knn", "grown_head", "personalize_head"]

logger = logging.getLogger(__name__)

EMBEDDING = "embedding"


def sound_parts(spec: Model) -> tuple[Model, Model, str]:
    """(preprocessing spec, classifier network spec, audio input name) of a sound classifier pipeline."""
    kind = spec.WhichOneof("Type")
    if kind != "pipelineClassifier":
        raise PipelineError(f"expected a sound classifier (a pipelineClassifier), got a {kind}",
                            hint="train one with 'pippin train sound'")
    models = pipeline_message(spec).models
    kinds = [m.WhichOneof("Type") for m in models]
    if len(models) != 2 or kinds[1] != "neuralNetworkClassifier":
        raise PipelineError(f"expected the stages preprocessing -> neuralNetworkClassifier, got {kinds}",
                            hint="personalize works on models from 'pippin train sound'; "
                                 "a personalized model is updated with 'pippin update'")
    return models[0], models[1], spec.description.input[0].name


def _last_dense(network) -> int:
    dense = [i for i, layer in enumerate(network.layers) if layer.WhichOneof("layer") == "innerProduct"]
    if not dense:
        raise PipelineError("the classifier network has no dense (innerProduct) layer to cut before")
    return dense[-1]


def embedding_network(classifier: Model, *, normalize: bool = True) -> tuple[Model, int]:
    """The classifier network cut at the input of its last dense layer.

    Parameters
    ----------
    classifier : pippin.spec.Model
        A ``neuralNetworkClassifier``.
    normalize : bool
        End with an ``l2normalize`` layer, so that the k-NN's squared distances
        between embeddings are ``2 - 2 cos``: few-shot examples of a new sound are then
        compared by direction, not by loudness-driven magnitude.

    Returns
    -------
    spec : pippin.spec.Model
        A plain, non-updatable ``neuralNetwork`` with the classifier's input and one
        output ``embedding`` (FLOAT32 [n_dimensions]).
    n_dimensions : int
    """
    network = classifier.neuralNetworkClassifier
    last = network.layers[_last_dense(network)]
    blob, n_dims = last.input[0], int(last.innerProduct.inputChannels)
    needed, keep = {blob}, []
    for layer in reversed(network.layers[:_last_dense(network)]):
        if set(layer.output) & needed:
            keep.append(layer)
            needed.update(layer.input)
    spec = Model()
    spec.specificationVersion = classifier.specificationVersion
    spec.description.input.extend(classifier.description.input)
    out = spec.description.output.add()
    out.name = EMBEDDING
    out.type.multiArrayType.dataType = 65568  # FLOAT32
    out.type.multiArrayType.shape.append(n_dims)
    nn = spec.neuralNetwork
    nn.arrayInputShapeMapping = network.arrayInputShapeMapping
    nn.imageInputShapeMapping = network.imageInputShapeMapping
    nn.preprocessing.extend(network.preprocessing)
    final = EMBEDDING + "_raw" if normalize else EMBEDDING
    for layer in reversed(keep):
        copy = nn.layers.add()
        copy.CopyFrom(layer)
        copy.isUpdatable = False
        for i, name in enumerate(copy.output):
            if name == blob:
                copy.output[i] = final
        for i, name in enumerate(copy.input):
            if name == blob:
                copy.input[i] = final
        kind = copy.WhichOneof("layer")
        for field in ("weights", "bias"):
            params = getattr(getattr(copy, kind), field, None)
            if params is not None and hasattr(params, "isUpdatable"):
                params.isUpdatable = False
    if normalize:
        norm = nn.layers.add()
        norm.name, norm.l2normalize.epsilon = "embedding_l2", 1e-6
        norm.input.append(final)
        norm.output.append(EMBEDDING)
    spec.description.metadata.shortDescription = (f"embedding: the classifier network up to {blob!r}"
                                                  + (", L2-normalized" if normalize else ""))
    return spec, n_dims


def embed(spec: Model, windows: np.ndarray, *, normalize: bool = True, batch: int = 512,
          predictions: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings and the original classifier's class indices for audio windows.

    Parameters
    ----------
    spec : pippin.spec.Model
        The sound classifier.
    windows : np.ndarray [shape=(n_windows, n_samples)]

    Returns
    -------
    embeddings : np.ndarray [shape=(n_windows, n_dimensions)]
    predicted : np.ndarray [shape=(n_windows,)] or None
        Index (into the classifier's class labels) of the original prediction; None
        with ``predictions=False`` (the classifier then does not run).
    """
    pre_spec, net_spec, audio = sound_parts(spec)
    pre, net = load(pre_spec), load(net_spec)
    emb_net = load(embedding_network(net_spec, normalize=normalize)[0])
    patch = next(iter(net.input_descriptions))
    out_e, out_p = [], []
    for start in range(0, len(windows), batch):
        patches = pre.predict_batch({audio: windows[start:start + batch]})[patch]
        out_e.append(np.asarray(emb_net.predict_batch({patch: patches})[EMBEDDING], dtype=np.float32))
        if predictions:
            probs = net.predict_batch({patch: patches})[net.spec.description.predictedProbabilitiesName]
            out_p.append(np.asarray(probs).argmax(axis=1))
    n_dims = embedding_network(net_spec)[1]
    return np.concatenate(out_e).reshape(len(windows), n_dims), np.concatenate(out_p) if predictions else None


def _memory(embeddings, labels, *, max_per_class: int, seed: int):
    """Condense each label's embeddings to at most ``max_per_class`` k-means centroids."""
    from scipy.cluster.vq import kmeans2

    points, names = [], []
    for label in sorted(set(labels)):
        rows = embeddings[np.asarray(labels) == label]
        if len(rows) > max_per_class:
            rows, _ = kmeans2(rows.astype(np.float64), max_per_class, minit="++", seed=seed)
        points.append(np.asarray(rows, dtype=np.float32))
        names += [label] * len(rows)
    return np.concatenate(points), names


def _head(net_spec: Model) -> tuple[np.ndarray, np.ndarray]:
    layer = net_spec.neuralNetworkClassifier.layers[_last_dense(net_spec.neuralNetworkClassifier)]
    ip, where = layer.innerProduct, f"{layer.name}.innerProduct"
    w = np.asarray(read_weights(ip.weights, count=ip.outputChannels * ip.inputChannels, where=where + ".weights"),
                   np.float64)
    b = (np.asarray(read_weights(ip.bias, count=ip.outputChannels, where=where + ".bias"), np.float64)
         if ip.hasBias else np.zeros(ip.outputChannels))
    return w.reshape(ip.outputChannels, ip.inputChannels), b


def prototypes(net_spec: Model, *, norm: float, steps: int = 200) -> np.ndarray:
    """One synthesized embedding per old class: non-negative, of the given norm, most confidently that class.

    Returns
    -------
    prototypes : np.ndarray [shape=(n_classes, n_dimensions)]
    """
    w, b = _head(net_spec)
    out = []
    for c in range(len(w)):
        e = np.maximum(w[c], 0) + 1e-3
        e *= norm / np.linalg.norm(e)
        for _ in range(steps):
            z = w @ e + b
            p = np.exp(z - z.max())
            p /= p.sum()
            e = np.maximum(e + 0.05 * norm / (np.linalg.norm(w[c]) + 1e-9) * (w[c] - p @ w), 0)
            e *= norm / max(np.linalg.norm(e), 1e-12)
        out.append(e)
    return np.asarray(out, dtype=np.float32)


def personalize_knn(spec: Any, examples: tuple[np.ndarray, list], *, base_examples=None, k: int = 3,
                    weighting: str = "inverse_distance", max_per_class: int = 20, seed: int = 0) -> Model:
    """A personalized model: preprocessing -> embedding network -> updatable k-NN.

    Parameters
    ----------
    spec : spec, RunnableModel or path
        A sound classifier (``preprocessing -> NeuralNetworkClassifier``).
    examples : (np.ndarray [shape=(n_windows, n_samples)], list[str] [shape=(n_windows,)])
        Windows of the user's recordings and their labels (new labels or old ones).
    base_examples : same form, optional
        Windows of old-class recordings; windows whose label the model does not know are ignored.
        Default: the embedding memory the model carries (``memory.memory_of``; written by
        Pippin's trainer), else synthesized prototypes (weaker; logged as a warning).
        ``"prototypes"``: synthesized prototypes, chosen (no warning).
    k, weighting : k-NN settings (see ``KNearestNeighborsClassifier``).
    max_per_class : int > 0
        Cap on remembered old-class embeddings per class (k-means centroids).

    Returns
    -------
    spec : pippin.spec.Model
        An updatable PipelineClassifier with stages ``preprocessing``, ``embedding``, ``knn``.
    """
    spec = as_spec(spec)
    pre_spec, net_spec, audio = sound_parts(spec)
    old = [str(x) for x in load(net_spec).class_labels]
    windows, labels = examples
    new_emb, _ = embed(spec, np.asarray(windows, dtype=np.float32))
    points, names = [new_emb], [str(x) for x in labels]
    from .memory import memory_of  # memory.py builds on this module's sound_parts

    chosen = isinstance(base_examples, str) and base_examples == "prototypes"
    if chosen:
        base_examples = None
    stored = None if base_examples is not None or chosen else memory_of(spec)
    if base_examples is not None and len(base_examples[0]):
        keep = np.isin(np.asarray(base_examples[1], dtype=object).astype(str), old)
        base_emb, predicted = embed(spec, np.asarray(base_examples[0], dtype=np.float32)[keep])
        base_labels = np.asarray(base_examples[1], dtype=object).astype(str)[keep]
        right = np.asarray(old, dtype=object)[predicted] == base_labels
        memory, memory_names = _memory(base_emb[right], list(base_labels[right]), max_per_class=max_per_class,
                                       seed=seed)
        source = f"{int(right.sum())} old-class windows ({len(memory)} remembered)"
    elif stored is not None:
        rows, row_labels, entry = stored
        keep = np.isin(np.asarray(row_labels, dtype=object).astype(str), old)
        memory, memory_names = _memory(rows[keep], list(np.asarray(row_labels, dtype=object)[keep].astype(str)),
                                       max_per_class=max_per_class, seed=seed)
        source = (f"the model's embedding memory ({len(memory)} centroids of {entry.get('n_windows', '?')} "
                  "old-class windows)")
    else:
        if not chosen:
            logger.warning("no old-class examples and no embedding memory in the model: old classes are "
                           "remembered by synthesized prototypes only, and may lose accuracy")
        raw, _ = embed(spec, np.asarray(windows, dtype=np.float32), normalize=False)
        memory = prototypes(net_spec, norm=float(np.median(np.linalg.norm(raw, axis=1))) or 1.0)
        memory, memory_names = memory / np.maximum(np.linalg.norm(memory, axis=1, keepdims=True), 1e-6), old
        source = "synthesized prototypes of the old classes"
    missing = [c for c in old if c not in set(memory_names)]
    if missing and memory_names:  # an old class with no remembered example keeps a synthesized prototype
        raw, _ = embed(spec, np.asarray(windows, dtype=np.float32), normalize=False)
        extra = prototypes(net_spec, norm=float(np.median(np.linalg.norm(raw, axis=1))) or 1.0)[
            [old.index(c) for c in missing]]
        memory = np.concatenate([memory, extra / np.maximum(np.linalg.norm(extra, axis=1, keepdims=True), 1e-6)])
        memory_names = list(memory_names) + missing
        source += f"; synthesized prototypes for {missing}"
    points.append(memory)
    names += memory_names
    embed_spec, n_dims = embedding_network(net_spec)
    label_name = spec.description.predictedFeatureName
    knn = KNearestNeighborsClassifier(
        n_dimensions=n_dims, default_label=old[0], k=k, weighting=weighting, input_name=EMBEDDING,
        label_name=label_name, probabilities_name=spec.description.predictedProbabilitiesName, updatable=True)
    knn.add_samples(np.concatenate(points), names)
    pipe = PipelineClassifier([("preprocessing", pre_spec), ("embedding", embed_spec), ("knn", knn.to_spec())])
    out = pipe.make_updatable(training_inputs=[audio, label_name]).to_spec()
    _carry_metadata(spec, out, labels=sorted(set(names)), note=f"k-NN personalization; memory: {source}",
                    n_examples=len(labels))
    return out


def _carry_metadata(original: Model, spec: Model, *, labels: list[str], note: str, n_examples: int) -> None:
    """The original's metadata, with the new labels, a note, and ``n_examples`` added to ``pippin.examples_seen``
    (the count ``pippin diff`` records as the personalization's merge weight)."""
    import json

    spec.description.metadata.CopyFrom(original.description.metadata)
    meta = spec.description.metadata.userDefined
    if "pippin.memory" in meta:  # the old classes' memory no longer describes the personalized model's classes
        del meta["pippin.memory"]
    meta["labels"] = json.dumps(labels)
    meta["personalized"] = note
    try:
        seen = int(meta.get("pippin.examples_seen", "0"))
    except ValueError:
        seen = 0
    meta["pippin.examples_seen"] = str(seen + int(n_examples))
    spec.description.metadata.shortDescription = (original.description.metadata.shortDescription
                                                  + " (personalized)").strip()


from .head import grown_head, personalize_head  # noqa: E402  (the dense-head path; it builds on this module)
