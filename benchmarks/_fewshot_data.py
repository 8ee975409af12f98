"""Splits, audio windows and cached embeddings for ``bench_fewshot.py``.

Protocols (the issue's "How it is checked", made precise):

- **Drums, kits held out** (``kit_folds``): the 13 kits that have a mapped sample
  are dealt into 5 folds by size (largest kit first, into the fold with the fewest
  clips so far, as scikit-learn's ``GroupKFold`` does); each fold is tested once
  with a head trained on the other four. Accuracy is per clip, averaged over folds.
- **FSDD few-shot** (``fsdd_fewshot_splits``): for each of the six speakers, that
  speaker's 500 recordings are the test set; the training set is ``k`` recordings
  of each digit *in total*, drawn from the other five speakers as evenly as
  possible (k = 5: one per speaker; k = 20: four per speaker), takes drawn at
  random from all 50 (seeded). Accuracy is averaged over the six speakers and over
  draws. (The looser reading, ``k`` per digit *per speaker*, gives five times more
  training clips; ``per_speaker=True`` builds it.)
- **Personalization** (``personalization_split``): a base head is trained on eight
  digits (FSDD conventional training split, takes 5-49, all speakers); two new
  digits are taught from 5 training-split recordings each (drawn at random, seeded);
  new-digit accuracy is measured on the conventional test split (takes 0-4, 30
  recordings per digit), old-digit accuracy on the old digits' test recordings
  before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import soundfile
import soxr

from pippin.audio.io import windows_of

CACHE = Path(os.environ.get("PIPPIN_FEWSHOT_CACHE", "/tmp/pippin-fewshot-cache"))
CACHE_VERSION = 2  # bump when a backbone's numerics change (2: the sounds front end's Essentia level)
_FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9-]+)_(?P<take>\d+)\.wav$")


# -- splits -----------------------------------------------------------------------
def kit_folds(groups, *, n_folds: int = 5) -> list[np.ndarray]:
    """Test-set masks [shape=(n_files,)] of ``n_folds`` folds that keep each group (kit) whole."""
    groups = np.asarray(groups)
    kits, counts = np.unique(groups, return_counts=True)
    sizes = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for i in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(sizes))
        fold_of[kits[i]] = f
        sizes[f] += counts[i]
    fold = np.array([fold_of[g] for g in groups])
    return [fold == f for f in range(n_folds)]


def fsdd_table(paths) -> dict[str, np.ndarray]:
    """digit, speaker and take of each FSDD file name [shape=(n_files,)]."""
    rows = [_FSDD_NAME.match(Path(p).name) for p in paths]
    return {"digit": np.array([m["digit"] for m in rows]), "speaker": np.array([m["speaker"] for m in rows]),
            "take": np.array([int(m["take"]) for m in rows])}


def fsdd_fewshot_splits(table: dict, *, k: int, seed: int = 0, per_speaker: bool = False):
    """Leave-one-speaker-out few-shot splits: yields ``(speaker, train_idx, test_idx)``.

    ``k`` recordings per digit in total from the five training speakers (spread as
    evenly as possible, the remainder going to speakers in a seeded random order), or
    ``k`` per digit per speaker with ``per_speaker=True``; the held-out speaker's
    recordings are all tested.
    """
    rng = np.random.default_rng(seed)
    speakers = sorted(set(table["speaker"].tolist()))
    for held in speakers:
        others = [s for s in speakers if s != held]
        train = []
        for digit in sorted(set(table["digit"].tolist())):
            quota = np.full(len(others), k if per_speaker else k // len(others))
            if not per_speaker:
                quota[rng.permutation(len(others))[:k % len(others)]] += 1
            for speaker, q in zip(others, quota):
                pool = np.flatnonzero((table["speaker"] == speaker) & (table["digit"] == digit))
                train.extend(rng.choice(pool, size=min(q, len(pool)), replace=False).tolist())
        yield held, np.array(sorted(train)), np.flatnonzero(table["speaker"] == held)


def personalization_split(table: dict, *, new_digits=("8", "9"), n_new: int = 5, seed: int = 0) -> dict:
    """Index arrays ``base_train``, ``new_train``, ``old_test``, ``new_test`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    is_new = np.isin(table["digit"], list(new_digits))
    train, test = table["take"] >= 5, table["take"] < 5
    new_train = np.concatenate([rng.choice(np.flatnonzero(train & (table["digit"] == d)), size=n_new, replace=False)
                                for d in new_digits])
    return {"base_train": np.flatnonzero(train & ~is_new), "new_train": np.sort(new_train),
            "old_test": np.flatnonzero(test & ~is_new), "new_test": np.flatnonzero(test & is_new)}


# -- audio and embeddings --------------------------------------------------------------
def read_clip(path, rate: int) -> np.ndarray:
    """A whole file as mono float32 at ``rate`` Hz [shape=(n_samples,)]."""
    wave, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    return wave if sr == rate else soxr.resample(wave, sr, rate, quality="HQ").astype(np.float32)


def embed_files(paths, *, embed, rate: int, window: int, overlap: float, name: str,
                max_windows: int | None = None, align: str = "start", augment=None, seed: int = 0,
                cache: bool = True):
    """Embeddings of every window of every file, cached under ``CACHE``.

    ``augment(wave, rate, rng)`` (optional) changes each clip before it is cut,
    with one generator seeded by ``seed`` walking the files in order.

    Returns
    -------
    steps : np.ndarray [shape=(n_windows, n_steps, dim)], float32
    clip_index : np.ndarray [shape=(n_windows,)], int64
    """
    paths = [str(p) for p in paths]
    source = f"{getattr(embed, '__module__', '')}.{getattr(embed, '__qualname__', repr(embed))}"
    key = hashlib.sha1(repr((paths, rate, window, overlap, max_windows, align,
                             augment is not None, seed, source, CACHE_VERSION)).encode()).hexdigest()[:16]
    file = CACHE / f"{name}-{key}.npz"
    if cache and file.is_file():
        with np.load(file) as z:
            return z["steps"], z["clip_index"]
    windows, index = [], []
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        wave = read_clip(path, rate)
        if augment is not None:
            wave = augment(wave, rate, rng)
        w = windows_of(wave, window=window, overlap=overlap, align=align)[:max_windows]  # as SoundClassifier cuts
        windows.append(w)
        index.extend([i] * len(w))
    steps = np.concatenate([embed(np.concatenate(windows[i:i + 64])) for i in range(0, len(windows), 64)])
    index = np.array(index, np.int64)
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(file, steps=steps, clip_index=index)
    return steps, index

