"""Embedding many audio files with a pretrained backbone: every window of every file -> an embedding sequence.

Files are read, resampled and cut into the backbone's windows on a thread pool
(libsndfile and soxr release the GIL), and the windows of many files go through
the backbone together, in batches, so its matrix products stay large; the
backbone spreads each batch over the cores itself. Each clip is embedded once
per run: the head then trains for many epochs on these arrays alone.
A file that cannot be used is reported by name in ``skipped`` and left out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import AudioError
from .features import ClipFeatures, collect_features
from .frontend import window_starts
from .io import iter_windows, read_audio, windows_of
from .parallel import n_cpus

__all__ = ["embed_files", "embed_copies", "embed_windows"]

_BATCH_WINDOWS = 64  # windows per backbone call: large products, bounded memory (64 x 2.3 s x 44.1 kHz = 26 MB)
_FILES_AHEAD = 32


def embed_windows(backbone, windows: np.ndarray) -> np.ndarray:
    """Head inputs of a batch of windows, in the layout the exported backbone stage gives.

    Parameters
    ----------
    backbone : object from ``pippin.audio.backbones.get_backbone``
    windows : np.ndarray [shape=(n, window_samples)], float32

    Returns
    -------
    embeddings : np.ndarray [shape=(n, embedding_dim, n_steps, 1)], float32
    """
    parts = [backbone.sequence(windows[i:i + _BATCH_WINDOWS]) for i in range(0, len(windows), _BATCH_WINDOWS)]
    n_steps, dim = backbone.sequence_shape()
    seq = np.concatenate(parts) if parts else np.zeros((0, n_steps, dim), np.float32)
    return np.ascontiguousarray(seq.transpose(0, 2, 1)[..., None])


def _read(path: Path, backbone, overlap: float):
    """(starts, windows, padded) of one file, or the AudioError that stopped it."""
    try:
        info: dict = {}
        parts = list(iter_windows(path, overlap=overlap, warn_short=False, info=info, batch_windows=1 << 30,
                                  sample_rate=backbone.sample_rate, window=backbone.window_samples,
                                  align=backbone.align))
        starts = np.concatenate([s for s, _ in parts])
        windows = np.concatenate([w for _, w in parts])
        return starts, windows, info["n_samples"] < backbone.window_samples
    except AudioError as exc:
        return exc
    except OSError as exc:
        return AudioError(f"cannot read file ({exc.strerror or exc})", where=str(path))


def _empty(backbone) -> np.ndarray:
    return np.zeros((0, backbone.embedding_dim, backbone.n_steps, 1), dtype=np.float32)


def _embed_chunks(paths: list[Path], backbone, read, *, parallel: bool, progress: bool,
                  description: str) -> ClipFeatures:
    """Read files ``_FILES_AHEAD`` at a time (``read(path)`` -> (starts, windows, padded) or AudioError) and
    embed each chunk's windows in one go, so the backbone's products stay large. With ``parallel``, the
    next chunk's files are read on the pool while the current chunk embeds (same results, in order)."""
    empty = _empty(backbone)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=description, unit="file", leave=False, disable=None)
    pool = ThreadPoolExecutor(max_workers=n_cpus()) if parallel else None
    results: list = []
    chunks = [paths[first:first + _FILES_AHEAD] for first in range(0, len(paths), _FILES_AHEAD)]
    ahead = [pool.submit(read, p) for p in chunks[0]] if pool is not None and chunks else None
    try:
        for k, chunk in enumerate(chunks):
            if pool is None:
                reads = [read(p) for p in chunk]
            else:  # the next chunk's files are read while this one embeds: no core idles between the two
                reads = [f.result() for f in ahead]
                ahead = [pool.submit(read, p) for p in chunks[k + 1]] if k + 1 < len(chunks) else []
            good = [r for r in reads if not isinstance(r, AudioError)]
            embedded = embed_windows(backbone, np.concatenate([w for _, w, _ in good])) if good else empty
            results.extend(spread_embeddings(reads, embedded))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    return collect_features(paths, results, empty=empty, sample_rate=backbone.sample_rate)


def embed_files(paths, backbone, *, overlap: float = 0.5, progress: bool = True,
                description: str = "embeddings") -> ClipFeatures:
    """Embedding sequences of all windows of all files.

    Parameters
    ----------
    paths : list of path-like [shape=(n_files,)]
    backbone : object from ``pippin.audio.backbones.get_backbone``
    overlap : float in [0, 1)
    progress : bool
        Draw a tqdm bar on stderr.

    Returns
    -------
    features : ClipFeatures
        ``patches`` holds the embeddings [shape=(n_windows, embedding_dim, n_steps, 1)];
        ``starts`` are in samples at ``backbone.sample_rate``.
    """
    window_starts(0, overlap=overlap)  # validates overlap before any work
    return _embed_chunks([Path(p) for p in paths], backbone, lambda p: _read(p, backbone, overlap), parallel=True,
                         progress=progress, description=description)


def embed_copies(paths, backbone, *, copies: int, augmenter, seed: int, overlap: float = 0.5,
                 progress: bool = True) -> ClipFeatures:
    """Embeddings of ``copies`` changed versions of every file (``pippin.audio.wave_augment``), for training only.

    One generator seeded by ``seed`` walks the files in order (so files are read one
    after another), and a seeded run is reproducible. A file that cannot be read gives
    no copies (``embed_files`` reports it).

    Returns
    -------
    features : ClipFeatures
        ``clip_index`` points into ``paths``; [shape=(n_windows, embedding_dim, n_steps, 1)].
    """
    rng = np.random.default_rng([seed, 0xC0B1])

    def read(path: Path):
        try:
            wave = read_audio(path, sample_rate=backbone.sample_rate)
        except AudioError:
            return np.zeros(0, np.int64), np.zeros((0, backbone.window_samples), np.float32), False
        windows = np.concatenate([windows_of(augmenter(wave, backbone.sample_rate, rng),
                                             window=backbone.window_samples, overlap=overlap, align=backbone.align)
                                  for _ in range(copies)])
        return np.zeros(len(windows), np.int64), windows, False

    return _embed_chunks([Path(p) for p in paths], backbone, read, parallel=False, progress=progress,
                         description="augmented copies")


def spread_embeddings(reads: list, embedded: np.ndarray) -> list:
    """Give each file its rows of ``embedded`` ([total windows of the readable files, dim]).

    ``reads`` holds, per file in order, an ``AudioError`` or ``(starts, windows, padded)``;
    the result keeps the errors and replaces each file's windows by its embeddings.
    """
    out, at = [], 0
    for r in reads:
        if isinstance(r, AudioError):
            out.append(r)
            continue
        starts, windows, padded = r
        out.append((starts, embedded[at:at + len(windows)], padded))
        at += len(windows)
    return out
