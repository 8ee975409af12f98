"""NonMaximumSuppression: greedy box selection by score with an IoU threshold."""

from __future__ import annotations

import numpy as np

from .base import Layer, register


def iou_center(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x, y, width, height) center-format box with each of ``boxes`` [shape=(m, 4)]."""
    lo = np.maximum(box[:2] - box[2:] / 2, boxes[:, :2] - boxes[:, 2:] / 2)
    hi = np.minimum(box[:2] + box[2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float, score_threshold: float,
                        max_boxes: int, per_class: bool) -> np.ndarray:
    """Indices of the kept boxes, best first, for one set ``boxes`` [m, 4], ``scores`` [m, C].

    A box scoring below ``score_threshold`` (its best class) is rejected; a box whose IoU
    with an already kept box (of the same class, with ``per_class``) exceeds
    ``iou_threshold`` is suppressed. If nothing survives, the best box is returned alone.
    """
    best = scores.max(axis=1)
    classes = scores.argmax(axis=1)
    order = [int(i) for i in np.argsort(-best, kind="stable") if best[i] >= score_threshold]
    kept: list[int] = []
    for i in order:  # greedy and sequential by definition
        if len(kept) == max_boxes:
            break
        others = [k for k in kept if not per_class or classes[k] == classes[i]]
        if others and (iou_center(boxes[i], boxes[others]) > iou_threshold).any():
            continue
        kept.append(i)
    return np.array(kept or [int(np.argmax(best))], dtype=np.int64)


@register
class NonMaximumSuppression(Layer):
    """Boxes (B, N, 4) in (x, y, width, height) and scores (B, N, C) -> the surviving boxes,
    their scores and indices padded to ``maxBoxes`` (0, 0 and -1), and their count per batch
    item; thresholds and maxBoxes optionally from inputs 3 to 5."""

    kind = "NonMaximumSuppression"

    def forward(self, boxes, scores, iou=None, score=None, max_boxes=None):
        p = self.p
        def first(blob, default):
            return float(np.asarray(blob).reshape(-1)[0]) if blob is not None else default

        iou_t, score_t = first(iou, p.iouThreshold), first(score, p.scoreThreshold)
        limit = int(first(max_boxes, p.maxBoxes))
        lead = boxes.shape[:-2]
        flat_boxes = boxes.reshape(-1, *boxes.shape[-2:])
        flat_scores = scores.reshape(-1, *scores.shape[-2:])
        out_boxes = np.zeros((len(flat_boxes), limit, 4), np.float32)
        out_scores = np.zeros((len(flat_boxes), limit, flat_scores.shape[-1]), np.float32)
        out_index = np.full((len(flat_boxes), limit), -1, np.float32)
        counts = np.zeros(len(flat_boxes), np.float32)
        for j, (b, s) in enumerate(zip(flat_boxes, flat_scores)):
            kept = non_max_suppression(b, s, iou_threshold=iou_t, score_threshold=score_t, max_boxes=limit,
                                       per_class=p.perClassSuppression)[:limit]
            out_boxes[j, :len(kept)], out_scores[j, :len(kept)] = b[kept], s[kept]
            out_index[j, :len(kept)], counts[j] = kept, len(kept)
        return (out_boxes.reshape(*lead, limit, 4), out_scores.reshape(*lead, limit, -1),
                out_index.reshape(*lead, limit), counts.reshape(lead))
