"""Reading the old classes' embedding memory a sound model carries (``userDefined["pippin.memory"]``).

The trainer (``pippin.audio.memory``) stores, at export, at most 20 k-means centroids
per class of the L2-normalized embeddings (the input of the classifier's last dense
layer) of the training windows the model classifies right; the k-NN personalization
remembers the old classes by them, so it needs no training folder and gives the same
model from any working directory. Format: see ``pippin.audio.memory``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import numpy as np

from ...spec import Model
from ..build.pipeline import as_spec
from ..errors import PipelineError
from .sound import _last_dense, embedding_network, sound_parts

__all__ = ["MEMORY_KEY", "read_memory", "memory_of", "embedding_fingerprint"]

MEMORY_KEY = "pippin.memory"


def read_memory(spec: Model, *, where: str = "<model>") -> tuple[np.ndarray, list[str], dict] | None:
    """A sound model's embedding memory, or None when it carries none.

    Returns
    -------
    rows : np.ndarray [shape=(n_rows, n_dimensions)], float32
    labels : list of str [shape=(n_rows,)]
    entry : dict
        The entry's other fields (``layer``, ``blob``, ``n_windows``, ...).

    Raises
    ------
    PipelineError
        The entry is present but malformed.
    """
    raw = spec.description.metadata.userDefined.get(MEMORY_KEY)
    if not raw:
        return None
    where = f"{where}: metadata {MEMORY_KEY!r}"
    try:
        entry = json.loads(raw)
        n_rows, n_dims = (int(x) for x in entry["shape"])
        data = base64.b64decode(entry["data"], validate=True)
        labels = [str(x) for x in entry["labels"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise PipelineError(f"malformed embedding memory ({type(exc).__name__}: {exc})", where=where) from None
    if entry.get("version") != 1 or entry.get("dtype") != "float16":
        raise PipelineError(f"version {entry.get('version')!r} dtype {entry.get('dtype')!r}, "
                            "expected version 1 float16", where=where)
    if n_rows < 0 or n_dims <= 0 or len(data) != 2 * n_rows * n_dims or len(labels) != n_rows:
        raise PipelineError(f"{len(data)} bytes and {len(labels)} labels for shape {[n_rows, n_dims]}", where=where)
    rows = np.frombuffer(data, dtype="<f2").reshape(n_rows, n_dims).astype(np.float32)
    if not np.isfinite(rows).all():
        raise PipelineError("non-finite values", where=where)
    return rows, labels, {k: v for k, v in entry.items() if k != "data"}


def embedding_fingerprint(net_spec: Model) -> str:
    """SHA-256 of the classifier layers before its last dense layer (what the embedding depends on)."""
    network = net_spec.neuralNetworkClassifier
    layers = network.layers[:_last_dense(network)]
    return hashlib.sha256(b"".join(layer.SerializeToString(deterministic=True) for layer in layers)).hexdigest()


def memory_of(spec: Any, *, where: str = "<model>") -> tuple[np.ndarray, list[str], dict] | None:
    """The old classes' embedding memory a sound model carries, if it is valid for its network now.

    Returns None when the model carries none, or when its classifier changed since the
    memory was written (an update of the layers before the last dense one: the embeddings moved).

    Returns
    -------
    rows : np.ndarray [shape=(n_rows, n_dimensions)], float32
    labels : list of str [shape=(n_rows,)]
    entry : dict (``layer``, ``blob``, ``n_windows``, ``fingerprint``)

    Raises
    ------
    PipelineError
        The memory is malformed, or its dimensions do not match the network's embedding.
    """
    spec = as_spec(spec)
    stored = read_memory(spec, where=where)
    if stored is None:
        return None
    _, net_spec, _ = sound_parts(spec)
    if stored[2].get("fingerprint") != embedding_fingerprint(net_spec):
        return None
    n_dims = embedding_network(net_spec)[1]
    if stored[0].shape[1] != n_dims:
        raise PipelineError(f"embedding memory has {stored[0].shape[1]} dimensions, the network's embedding "
                            f"{n_dims}", where=f"{where}: metadata {MEMORY_KEY!r}")
    return stored
