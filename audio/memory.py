"""The old classes' embedding memory a sound model carries, so personalization needs no training folder.

``pippin personalize`` (k-NN) remembers the old classes by k-means centroids of their
training windows' embeddings (the L2-normalized input of the classifier's last dense
layer). Those windows are only at hand when the model is trained, so the trainer
computes the centroids then and stores them in the model's metadata
(``userDefined["pippin.memory"]``); personalization reads them from the model itself
(``pippin.pipelines.personalize.memory.read_memory``), from any working directory, with
the training data moved or deleted.

The entry is JSON::

    {"version": 1, "layer": "<the last dense layer's name>", "blob": "<its input blob>",
     "fingerprint": "<sha256 of the layers before it, serialized: the memory is stale once they change>",
     "labels": ["<class label>", ...],            # one per row
     "dtype": "float16", "shape": [n_rows, n_dimensions],
     "data": "<base64 of the rows' little-endian float16 bytes>",
     "n_windows": <windows the centroids summarise>}

Bounded: at most ``max_per_class`` (20) rows per class, float16 in base64: for 10 classes
about 34 KB (scratch, 64 dimensions) to 550 KB (``sounds`` backbone, 1024; 2% of the model).
"""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np

from ..spec import Model

__all__ = ["MEMORY_KEY", "memory_entry", "kmeans_memory"]

MEMORY_KEY = "pippin.memory"
MAX_PER_CLASS = 20
_EPSILON = 1e-6  # as the l2normalize layer personalization's embedding network ends with


def kmeans_memory(embeddings: np.ndarray, labels, *, max_per_class: int, seed: int = 0):
    """Each label's embeddings condensed to at most ``max_per_class`` k-means centroids.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n_windows, n_dimensions)]
    labels : sequence of str [shape=(n_windows,)]

    Returns
    -------
    rows : np.ndarray [shape=(n_rows, n_dimensions)], float32
    names : list of str [shape=(n_rows,)]
    """
    from scipy.cluster.vq import kmeans2

    labels = np.asarray(labels, dtype=object).astype(str)
    points, names = [], []
    for label in sorted(set(labels)):
        rows = embeddings[labels == label]
        if len(rows) > max_per_class:
            rows, _ = kmeans2(rows.astype(np.float64), max_per_class, minit="++", seed=seed)
        points.append(np.asarray(rows, dtype=np.float32))
        names += [label] * len(rows)
    if not points:
        return np.zeros((0, embeddings.shape[1]), dtype=np.float32), []
    return np.concatenate(points), names


def _last_dense(network) -> int:
    dense = [i for i, layer in enumerate(network.layers) if layer.WhichOneof("layer") == "innerProduct"]
    return dense[-1] if dense else -1


def memory_entry(network: Model, inputs: np.ndarray, targets: np.ndarray, *, max_per_class: int = MAX_PER_CLASS,
                 max_windows: int = 1000, seed: int = 0, batch: int = 512) -> str | None:
    """The ``pippin.memory`` metadata value of a trained classifier network.

    Parameters
    ----------
    network : pippin.spec.Model
        The trained ``neuralNetworkClassifier`` (the sound model's classifier stage).
    inputs : np.ndarray [shape=(n_windows, ...)]
        The training windows as the network takes them (log-mel patches, or backbone embeddings).
    targets : np.ndarray [shape=(n_windows,)]
        Class index of each window (into the network's class labels).
    max_per_class : int
        Centroids kept per class.
    max_windows : int
        Windows embedded per class at most (a seeded random subset beyond that).

    Returns
    -------
    str or None
        JSON (see the module docstring); None when the network has no dense layer or no
        window is classified right.
    """
    from ..pipelines.runtime.model import load

    nn = network.neuralNetworkClassifier
    last = _last_dense(nn)
    if last < 0 or not len(inputs):
        return None
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)  # at most max_windows per class are embedded: one bounded forward pass
    picks = [rng.permutation(np.flatnonzero(targets == c))[:max_windows] for c in np.unique(targets)]
    chosen = np.sort(np.concatenate(picks))
    if len(chosen) < len(targets):
        inputs, targets = inputs[chosen], targets[chosen]
    model = load(network)
    blob, name = nn.layers[last].input[0], next(iter(model.input_descriptions))
    classes = [str(x) for x in model.class_labels]
    embeddings, predicted = [], []
    for start in range(0, len(inputs), batch):
        blobs = model.run_layers(model.to_blobs({name: inputs[start:start + batch]}))
        embeddings.append(np.asarray(blobs[blob], dtype=np.float64).reshape(len(inputs[start:start + batch]), -1))
        probs = model.from_blobs(blobs)[network.description.predictedProbabilitiesName]
        predicted.append(np.asarray(probs).argmax(axis=1))
    emb = np.concatenate(embeddings)
    emb = emb / np.sqrt((emb ** 2).sum(axis=1, keepdims=True) + _EPSILON)
    right = np.concatenate(predicted) == targets
    if not right.any():
        return None
    rows, names = kmeans_memory(emb[right], np.asarray(classes, dtype=object)[targets[right]],
                                max_per_class=max_per_class, seed=seed)
    data = rows.astype("<f2")
    fingerprint = hashlib.sha256(b"".join(layer.SerializeToString(deterministic=True)
                                          for layer in nn.layers[:last])).hexdigest()
    return json.dumps({"version": 1, "layer": nn.layers[last].name, "blob": blob, "labels": names,
                       "fingerprint": fingerprint,
                       "dtype": "float16", "shape": list(data.shape), "n_windows": int(right.sum()),
                       "data": base64.b64encode(data.tobytes()).decode("ascii")})
