"""Classification metrics: accuracy, per-class precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

import numpy as np

__all__ = ["classification_report"]


def classification_report(true_labels, predicted_labels, *, labels) -> dict:
    """Score predicted labels against true ones.

    Parameters
    ----------
    true_labels : sequence of str [shape=(n_clips,)]
    predicted_labels : sequence of str [shape=(n_clips,)]
    labels : sequence of str [shape=(n_classes,)]
        Row/column order of the confusion matrix; labels seen in the data but not
        listed are appended.

    Returns
    -------
    report : dict
        ``accuracy`` (float), ``labels`` (list[str]), ``per_class``
        ({label: {precision, recall, f1, support}}; a metric with an empty
        denominator is 0.0), ``confusion_matrix`` (list of rows: true label,
        columns: predicted label), ``n_clips``.
    """
    true_labels = [str(x) for x in true_labels]
    predicted_labels = [str(x) for x in predicted_labels]
    if len(true_labels) != len(predicted_labels):
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_labels)} predictions")
    order = [str(x) for x in labels]
    order += sorted(set(true_labels + predicted_labels) - set(order))
    index = {label: i for i, label in enumerate(order)}
    matrix = np.zeros((len(order), len(order)), dtype=np.int64)
    if true_labels:
        np.add.at(matrix, ([index[t] for t in true_labels], [index[p] for p in predicted_labels]), 1)
    hits = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {
        "accuracy": float(hits.sum() / max(1, len(true_labels))),
        "labels": order,
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                    "support": int(support[i])}
            for i, label in enumerate(order)
        },
        "confusion_matrix": matrix.tolist(),
        "n_clips": len(true_labels),
    }
