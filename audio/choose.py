"""``feature_extractor="auto"``: choose the backbone for a dataset by measurement, not by guess.

Neither backbone serves both domains (README, few-shot benchmark: "sounds" wins the
drum kits by 31 points, "speech" wins spoken digits by 54), so the choice is made
per dataset: every clip is embedded with each backbone (which training needs anyway
for the winner), and a head with that backbone's default settings is cross-validated
on the clips, ``n_folds`` folds stratified by label with whole files held out. The
backbone with the higher mean clip accuracy wins; ties go to the first in
``BACKBONES``. Its embeddings are then reused for training.

The folds' head fits are small and hold the GIL, so each runs in a forked process
(``pipelines.update.forked``) started as soon as its backbone's embeddings exist:
one backbone's folds train while the next backbone embeds the clips on the other
threads. With one CPU they run inline, in the same order, with the same results.

Scratch is not a candidate: it trains for minutes where a head trains for seconds, and
it won none of the measured cases (FSDD's 2,700 clips included: 0.990-0.997 against
the speech backbone's 1.000).
"""

from __future__ import annotations

import numpy as np

from .backbones import BACKBONES, get_backbone
from .defaults import DEFAULTS
from .embeddings import embed_files
from .features import ClipFeatures
from .head import EMBEDDING_INPUT, head_for
from .network import PROBS_OUTPUT

__all__ = ["choose_backbone"]


def _folds(clip_targets: np.ndarray, used: np.ndarray, n_folds: int, rng) -> np.ndarray:
    """Fold number of each file [shape=(n_files,)], -1 for unusable ones; labels spread evenly over folds."""
    fold = np.full(len(clip_targets), -1)
    for target in np.unique(clip_targets[used]):
        members = rng.permutation(np.flatnonzero(used & (clip_targets == target)))
        fold[members] = np.arange(len(members)) % n_folds
    return fold


def _fold_counts(features: ClipFeatures, clip_targets: np.ndarray, classes, backbone, window_fold: np.ndarray,
                 f: int, seed: int) -> tuple[int, int]:
    """(correct, tested) clips of fold ``f``: a head trained on the other folds' windows."""
    from ..pipelines import load
    from ..pipelines.update import fit_network

    settings = DEFAULTS[backbone.name]
    window_targets = clip_targets[features.clip_index]
    train, test = window_fold != f, window_fold == f
    if not test.any() or len(np.unique(window_targets[train])) < 2:
        return 0, 0
    trained, _ = fit_network(head_for(backbone, list(classes), settings, seed=seed), features.patches[train],
                             window_targets[train], epochs=settings["epochs"], batch_size=settings["batch_size"],
                             learning_rate=settings["learning_rate"], weight_decay=settings["weight_decay"],
                             random_state=seed)
    probs = np.asarray(load(trained).predict_batch({EMBEDDING_INPUT: features.patches[test]})[PROBS_OUTPUT],
                       dtype=np.float64)
    clips = features.clip_index[test]
    sums = np.zeros((len(clip_targets), probs.shape[1]))
    np.add.at(sums, clips, probs)
    tested = np.unique(clips)
    return int((sums[tested].argmax(axis=1) == clip_targets[tested]).sum()), len(tested)


def _cv_start(features: ClipFeatures, clip_targets: np.ndarray, classes, backbone, *, n_folds: int,
              seed: int) -> list:
    """Start every fold's fit (``forked.start``: a forked child each when there are several CPUs)."""
    from ..pipelines.update.forked import start

    fold = _folds(clip_targets, features.used, n_folds, np.random.default_rng([seed, 0xF01D]))
    window_fold = fold[features.clip_index]
    return [start(lambda f=f: _fold_counts(features, clip_targets, classes, backbone, window_fold, f, seed))
            for f in range(n_folds)]


def _cv_finish(calls: list) -> float:
    """Mean clip accuracy over the folds started by ``_cv_start``."""
    counts = [call.result() for call in calls]
    correct, total = sum(c for c, _ in counts), sum(t for _, t in counts)
    return correct / total if total else 0.0


def choose_backbone(paths, labels, *, overlap: float, seed: int, progress: bool, n_folds: int = 3):
    """Embed ``paths`` with every backbone and keep the one whose head cross-validates best.

    Parameters
    ----------
    paths : list of path-like [shape=(n_files,)]
    labels : list of str [shape=(n_files,)]
    overlap : float in [0, 1)
    seed : int
    progress : bool
    n_folds : int >= 2

    Returns
    -------
    name : str
        The chosen backbone.
    features : ClipFeatures
        Its embeddings of ``paths`` (reused for training).
    scores : dict
        Cross-validated clip accuracy per backbone, for the model's metadata.
    """
    labels = np.asarray(labels, dtype=object).astype(str)
    classes = np.unique(labels)
    clip_targets = np.searchsorted(classes, labels)
    folds, embedded = {}, {}
    for name in BACKBONES:  # each backbone's folds train (forked) while the next one embeds
        backbone = get_backbone(name)
        embedded[name] = embed_files(paths, backbone, overlap=overlap, progress=progress,
                                     description=f"embeddings ({name})")
        folds[name] = _cv_start(embedded[name], clip_targets, classes, backbone, n_folds=n_folds, seed=seed)
    scores = {name: round(_cv_finish(folds[name]), 4) for name in BACKBONES}
    best = max(BACKBONES, key=lambda n: (scores[n], -BACKBONES.index(n)))
    return best, embedded[best], scores
