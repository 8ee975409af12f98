"""NonMaximumSuppression against a direct greedy reference written from the spec text."""

from __future__ import annotations

import numpy as np
import pytest

from nn_helpers import close, nd_builder, run

RNG = np.random.default_rng(22)


def _iou(a, b):
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _reference(boxes, scores, iou_t, score_t, max_boxes, per_class):
    best, cls = scores.max(1), scores.argmax(1)
    kept = []
    for i in sorted(range(len(best)), key=lambda i: -best[i]):
        if best[i] < score_t or len(kept) == max_boxes:
            continue
        if all(_iou(boxes[i], boxes[k]) <= iou_t for k in kept if not per_class or cls[k] == cls[i]):
            kept.append(i)
    return kept or [int(best.argmax())]


@pytest.mark.parametrize("per_class", [False, True])
def test_nms(per_class):
    n_boxes, n_classes, max_boxes = 12, 3, 5
    centers = RNG.uniform(0, 4, (2, 1, n_boxes, 2))
    sizes = RNG.uniform(1, 2.5, (2, 1, n_boxes, 2))
    boxes = np.concatenate([centers, sizes], -1).astype(np.float32)
    scores = RNG.uniform(0, 1, (2, 1, n_boxes, n_classes)).astype(np.float32)
    b = nd_builder({"boxes": (1, n_boxes, 4), "scores": (1, n_boxes, n_classes)}, outputs=("ob", "os", "oi", "oc"))
    b.add_nms("nms", ["boxes", "scores"], ["ob", "os", "oi", "oc"], iou_threshold=0.3, score_threshold=0.2,
              max_boxes=max_boxes, per_class_suppression=per_class)
    ob, os_, oi, oc = run(b, {"boxes": boxes, "scores": scores}, outputs=("ob", "os", "oi", "oc"))
    for n in range(2):
        kept = _reference(boxes[n, 0].astype(np.float64), scores[n, 0], 0.3, 0.2, max_boxes, per_class)
        pad = max_boxes - len(kept)
        close(oi[n, 0], kept + [-1] * pad)
        close(oc[n], [len(kept)])
        close(ob[n, 0], np.concatenate([boxes[n, 0, kept], np.zeros((pad, 4))]))
        close(os_[n, 0], np.concatenate([scores[n, 0, kept], np.zeros((pad, n_classes))]))


def test_nms_nothing_survives_returns_best_box():
    boxes = np.array([[[[0, 0, 1, 1], [3, 3, 1, 1]]]], np.float32)
    scores = np.array([[[[0.1], [0.2]]]], np.float32)
    b = nd_builder({"boxes": (1, 2, 4), "scores": (1, 2, 1)}, outputs=("ob", "os", "oi", "oc"))
    b.add_nms("nms", ["boxes", "scores"], ["ob", "os", "oi", "oc"], score_threshold=0.5, max_boxes=2)
    ob, os_, oi, oc = run(b, {"boxes": boxes, "scores": scores}, outputs=("ob", "os", "oi", "oc"))
    close(oi[0, 0], [1, -1]), close(oc[0], [1])
