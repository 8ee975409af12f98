"""A labelled confusion-matrix picture (needs matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import AudioError

__all__ = ["plot_confusion_matrix"]


def plot_confusion_matrix(report: dict, path: str | os.PathLike, *, title: str = "") -> Path:
    """Draw ``report["confusion_matrix"]`` (rows: true, columns: predicted) with its labels into a PNG.

    Raises
    ------
    AudioError
        matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AudioError("--plot needs matplotlib", hint="pip install 'pippin[plot]'") from None
    matrix = np.asarray(report["confusion_matrix"])
    labels = report["labels"]
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted label", ylabel="true label",
           title=title or f"accuracy {report['accuracy']:.3f}")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
