"""Heads over a backbone's step embeddings for ``bench_fewshot.py``: Pippin's own head and engine.

The head is ``pippin.audio.head.build_head`` (what ``SoundClassifier`` trains), fed
[n, dim, n_steps, 1] blobs as the exported backbone stage gives them, trained with
``fit_network`` and scored by Pippin's runtime. Settings come in as keyword arguments
(``hidden``, ``epochs``, ``batch_size``, ``learning_rate``, ``weight_decay``).
"""

from __future__ import annotations

import numpy as np

from pippin.audio.head import EMBEDDING_INPUT as INPUT
from pippin.audio.head import build_head
from pippin.audio.network import PROBS_OUTPUT as PROBS
from pippin.pipelines import load
from pippin.pipelines.update.fit import fit_network


def as_blob(steps: np.ndarray) -> np.ndarray:
    """[n, n_steps, dim] step embeddings -> [n, dim, n_steps, 1] head inputs."""
    return np.ascontiguousarray(steps.transpose(0, 2, 1)[..., None], dtype=np.float32)


def train_head(steps: np.ndarray, labels, *, hidden: int = 0, epochs: int = 60, batch_size: int = 32,
               learning_rate: float = 1e-3, weight_decay: float = 0.0, augment=None, seed: int = 0):
    """Train a head on step embeddings [n, n_steps, dim] with Pippin's engine; returns (spec, history)."""
    classes = sorted(set(np.asarray(labels).tolist()))
    spec = build_head(classes, embedding_dim=steps.shape[2], n_steps=steps.shape[1], hidden=hidden, seed=seed,
                      learning_rate=learning_rate, batch_size=batch_size, epochs=epochs)
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
