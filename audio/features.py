"""Featurizing many audio files at once: every 975 ms window of every file -> a log-mel patch.

Files are read, resampled, windowed and featurized on a thread pool, one file per
task (libsndfile, soxr, scipy.fft and BLAS all release the GIL; one clip at a
time with reused buffers measured faster than one giant batch). A file that
cannot be used is reported by name in ``skipped`` and left out; it never stops the run.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AudioError
from .frontend import N_MELS, PATCH_FRAMES, PATCH_SAMPLES, SAMPLE_RATE, vggish_log_mel
from .io import iter_windows

__all__ = ["ClipFeatures", "featurize_files"]

logger = logging.getLogger(__name__)


@dataclass
class ClipFeatures:
    """The patches of a list of files, and which file each came from.

    Attributes
    ----------
    patches : np.ndarray [shape=(n_windows, 1, 96, 64)], float32
        Log-mel patches; with a backbone (``pippin.audio.embeddings``), embedding
        sequences [shape=(n_windows, embedding_dim, n_steps, 1)].
    clip_index : np.ndarray [shape=(n_windows,)], int64
        Position (in ``paths``) of the file each window belongs to.
    starts : np.ndarray [shape=(n_windows,)], int64
        First sample (at ``sample_rate``) of each window in its file.
    used : np.ndarray [shape=(n_files,)], bool
        Which files gave windows (False: see ``skipped``).
    skipped : list of {"path": str, "reason": str}
    n_padded : int
        Files shorter than one window (zero-padded).
    sample_rate : int
        The rate ``starts`` count in (16 kHz, or the backbone's).
    """

    patches: np.ndarray
    clip_index: np.ndarray
    starts: np.ndarray
    used: np.ndarray
    skipped: list[dict] = field(default_factory=list)
    n_padded: int = 0
    sample_rate: int = SAMPLE_RATE

    def start_seconds(self) -> np.ndarray:
        """Window starts in seconds [shape=(n_windows,)]."""
        return self.starts / self.sample_rate


def _one_file(path: Path, overlap: float):
    """(starts, patches, padded) of one file, or the AudioError that stopped it."""
    try:
        info: dict = {}
        parts = [(s, vggish_log_mel(w, workers=1))
                 for s, w in iter_windows(path, overlap=overlap, warn_short=False, info=info)]
        padded = info["n_samples"] < PATCH_SAMPLES
        return np.concatenate([s for s, _ in parts]), np.concatenate([p for _, p in parts]), padded
    except AudioError as exc:
        return exc
    except OSError as exc:  # permission denied and the like: still the file's fault, not ours
        return AudioError(f"cannot read file ({exc.strerror or exc})", where=str(path))


def featurize_files(paths, *, overlap: float = 0.5, progress: bool = True,
                    workers: int | None = None, description: str = "features") -> ClipFeatures:
    """Log-mel patches of all windows of all files.

    Parameters
    ----------
    paths : list of path-like [shape=(n_files,)]
    overlap : float in [0, 1)
    progress : bool
        Draw a tqdm bar on stderr.
    workers : int > 0, optional
        Threads (default: one per core).
    description : str
        The progress bar's label.

    Returns
    -------
    features : ClipFeatures
    """
    from .frontend import window_starts

    window_starts(0, overlap=overlap)  # validates overlap before any work
    paths = [Path(p) for p in paths]
    n_workers = workers or os.cpu_count() or 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=description, unit="file", leave=False, disable=None)
    results = []
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for result in pool.map(lambda p: _one_file(p, overlap), paths):
                results.append(result)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return collect_features(paths, results)


def collect_features(paths: list[Path], results: list, *, empty: np.ndarray | None = None,
                     sample_rate: int = SAMPLE_RATE) -> ClipFeatures:
    """One ``ClipFeatures`` from per-file results: ``(starts, features, padded)`` or the file's ``AudioError``."""
    patches, starts, index, skipped = [], [], [], []
    used = np.zeros(len(paths), dtype=bool)
    n_padded = 0
    for position, (path, result) in enumerate(zip(paths, results)):
        if isinstance(result, AudioError):
            skipped.append({"path": str(path), "reason": result.message})
            logger.warning("skipped %s", result)
            continue
        file_starts, file_patches, padded = result
        used[position] = True
        n_padded += padded
        patches.append(file_patches)
        starts.append(file_starts)
        index.append(np.full(len(file_starts), position, dtype=np.int64))
    if n_padded:
        logger.warning("%d of %d files are shorter than one window and were zero-padded", n_padded, len(paths))
    if empty is None:
        empty = np.zeros((0, 1, PATCH_FRAMES, N_MELS), dtype=np.float32)
    return ClipFeatures(
        patches=np.concatenate(patches) if patches else empty,
        clip_index=np.concatenate(index) if index else np.zeros(0, dtype=np.int64),
        starts=np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64),
        used=used,
        skipped=skipped,
        n_padded=n_padded,
        sample_rate=sample_rate,
    )
