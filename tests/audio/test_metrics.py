"""Classification metrics against hand-counted values."""

from __future__ import annotations

import pytest

from pippin.audio.metrics import classification_report


def test_counts_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "c", "c"]
    r = classification_report(truth, pred, labels=["a", "b", "c"])
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}
    assert r["per_class"]["b"]["precision"] == pytest.approx(0.5) and r["per_class"]["b"]["recall"] == 0.5
    assert r["per_class"]["c"]["precision"] == 0.5 and r["per_class"]["c"]["f1"] == pytest.approx(2 / 3)


def test_unseen_and_never_predicted_labels():
    r = classification_report(["x"], ["y"], labels=["x", "z"])
    assert r["labels"] == ["x", "z", "y"]
    assert r["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["accuracy"] == 0.0
