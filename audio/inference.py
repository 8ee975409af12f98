"""Classifying audio files with a loaded sound-classifier model (the exported pipeline).

Works with any loaded model that takes windows of audio (one FLOAT32 [n_samples]
multiArray input: 975 ms at 16 kHz for the VGGish models, another window and rate
for a backbone, read from the model's ``sample_rate`` metadata) and returns class
probabilities: each file is cut into windows (``pippin.audio.io``), windows of many
files are batched through ``predict_batch``, and a clip's label is the arg-max of its
windows' mean probabilities. With several CPUs and many files, the files are split into
contiguous parts classified by forked processes (``pipelines.update.forked``), this one
taking the first: prediction runs mostly on one thread and holds the GIL between
layers, so processes are what overlap.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile

from .errors import AudioError
from .frontend import PATCH_SAMPLES, SAMPLE_RATE, window_starts
from .io import iter_windows, probe, read_windows

__all__ = ["audio_input", "audio_input_name", "window_align", "classify_files"]

_BATCH_WINDOWS = 256
_FILES_PER_PROCESS = 64  # fewer files per process do not pay for the fork


def audio_input(model) -> tuple[str, int, int]:
    """(input name, samples per window, sample rate) of a sound classifier's audio input.

    The audio input is the model's one-dimensional multiArray input. Its sample rate
    is the ``sample_rate`` in the model's metadata (Pippin writes it into every sound
    model); a model without one is taken as VGGish's 16 kHz when its window is 15,600
    samples, as SoundAnalysisPreprocessing defines.
    """
    where = getattr(model, "where", None)
    found = [(name, int(d.type.multiArrayType.shape[0])) for name, d in model.input_descriptions.items()
             if d.type.WhichOneof("Type") == "multiArrayType" and len(d.type.multiArrayType.shape) == 1]
    if len(found) != 1:
        raise AudioError(f"model takes no single audio input (a one-dimensional multiArray); "
                         f"its inputs are {sorted(model.input_descriptions)}", where=where)
    name, window = found[0]
    rate = model.spec.description.metadata.userDefined.get("sample_rate")
    if rate is not None:
        try:
            return name, window, int(json.loads(rate))
        except (ValueError, TypeError):
            raise AudioError(f"metadata sample_rate={rate!r} is not an integer", where=where) from None
    if window == PATCH_SAMPLES:
        return name, window, SAMPLE_RATE
    raise AudioError(f"model's audio input {name!r} takes {window} samples but its metadata names no sample_rate",
                     where=where, hint="add userDefined metadata 'sample_rate'")


def model_overlap(model, override: float | None = None) -> float:
    """The window overlap to use: ``override``, else the one recorded in the model's metadata, else 0.5."""
    if override is not None:
        return float(override)
    recorded = model.spec.description.metadata.userDefined.get("overlap")
    try:
        return float(recorded) if recorded else 0.5
    except ValueError:
        return 0.5


def window_align(model) -> str:
    """Where the model expects a clip shorter than one window: "start" (default) or "center" (metadata ``align``)."""
    align = model.spec.description.metadata.userDefined.get("align", "start")
    return align if align in ("start", "center") else "start"


def audio_input_name(model) -> str:
    """The name of the model input that takes audio windows (see ``audio_input``)."""
    return audio_input(model)[0]


_STREAM_SECONDS = 60.0  # files longer than this are streamed batch by batch instead of read whole
_FILES_AHEAD = 32  # files read ahead on the thread pool


def _read(path: Path, overlap: float, rate: int, window: int, align: str):
    """A short file's windows, ``None`` for a long file (streamed later), or the AudioError."""
    try:
        frames, samplerate = probe(path)  # names a missing file, a loop, a folder, a FIFO; any file name
        if samplerate > 0 and frames / samplerate > _STREAM_SECONDS:
            return None
        return read_windows(path, overlap=overlap, warn_short=False, sample_rate=rate, window=window, align=align)
    except AudioError as exc:
        return exc
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        return AudioError(f"cannot decode audio ({exc})", where=str(path))
    except OSError as exc:
        return AudioError(f"cannot read file ({exc.strerror or exc})", where=str(path))


class _Batcher:
    """Collects windows of several files into one ``predict_batch`` call, then splits the probabilities."""

    def __init__(self, model, input_name: str, probs_name: str):
        self.model, self.input_name, self.probs_name = model, input_name, probs_name
        self.pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.size = 0
        self.done: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, key: int, starts: np.ndarray, windows: np.ndarray) -> None:
        self.pending.append((key, starts, windows))
        self.size += len(windows)
        if self.size >= _BATCH_WINDOWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        windows = np.concatenate([w for _, _, w in self.pending])
        probabilities = np.asarray(self.model.predict_batch({self.input_name: windows})[self.probs_name],
                                   dtype=np.float64)
        at = 0
        for key, starts, w in self.pending:
            self.done.setdefault(key, []).append((starts, probabilities[at:at + len(w)]))
            at += len(w)
        self.pending, self.size = [], 0


def classify_files(model, paths, *, overlap: float = 0.5, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Per-file and per-window predictions of a loaded sound classifier.

    Short files are read ahead on a thread pool; files over a minute are streamed
    in batches of windows, so memory stays bounded whatever the file length.

    Parameters
    ----------
    model : RunnableModel
        A loaded model with one audio input (975 ms at 16 kHz for VGGish models) and class probabilities
        (``pippin.pipelines.load("sound.mlmodel")``).
    paths : list of path-like [shape=(n_files,)]
    overlap : float in [0, 1)
    progress : bool
        Draw a tqdm bar on stderr.

    Returns
    -------
    results : list of dict
        One per readable file, in input order: ``path``, ``label``, ``probability``
        (the clip label's mean window probability), ``probabilities`` ({label: p}),
        ``windows`` (list of ``{start, end, label, probability}``, times in seconds).
    skipped : list of {"path", "reason"}
        Files that could not be read.
    """
    window_starts(0, overlap=overlap)  # validates overlap before any work
    input_name, window, rate = audio_input(model)
    align = window_align(model)
    class_labels = getattr(model, "class_labels", None)
    probs_name = model.spec.description.predictedProbabilitiesName
    if class_labels is None or not probs_name:
        raise AudioError(f"model is a {model.kind} without class probabilities, not a sound classifier",
                         where=getattr(model, "where", None),
                         hint="use a model made by 'pippin train sound'")
    labels = [str(x) for x in class_labels]
    paths = [Path(p) for p in paths]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="predict", unit="file", leave=False, disable=None)
    try:
        k = min(_n_cpus(), len(paths) // _FILES_PER_PROCESS)
        if k < 2:
            return _classify(model, paths, overlap, (input_name, window, rate, align, probs_name, labels), bar)
        from ..pipelines.update.forked import start
        from .parallel import one_blas_thread

        bounds = [len(paths) * i // k for i in range(k + 1)]
        setup = (input_name, window, rate, align, probs_name, labels)
        with one_blas_thread():  # one BLAS thread per process (the children inherit the limit)
            calls = [start(lambda a=a, b=b: _classify(model, paths[a:b], overlap, setup, None))
                     for a, b in zip(bounds[1:-1], bounds[2:])]
            results, skipped = _classify(model, paths[:bounds[1]], overlap, setup, bar)
            for call, a, b in zip(calls, bounds[1:-1], bounds[2:]):
                part_results, part_skipped = call.result()
                results.extend(part_results)
                skipped.extend(part_skipped)
                if bar is not None:
                    bar.update(b - a)
        return results, skipped
    finally:
        if bar is not None:
            bar.close()


def _n_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _classify(model, paths: list[Path], overlap: float, setup: tuple, bar) -> tuple[list[dict], list[dict]]:
    """``classify_files`` over ``paths`` in this process (``setup``: the model's input and output names)."""
    input_name, window, rate, align, probs_name, labels = setup
    batcher = _Batcher(model, input_name, probs_name)
    failed: dict[int, AudioError] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for first in range(0, len(paths), _FILES_AHEAD):
            chunk = paths[first:first + _FILES_AHEAD]
            reads = pool.map(lambda p: _read(p, overlap, rate, window, align), chunk)
            for key, read in enumerate(reads, start=first):
                if read is None:
                    _stream(batcher, key, paths[key], overlap, failed, rate, window)
                elif isinstance(read, AudioError):
                    failed[key] = read
                else:
                    batcher.add(key, *read)
                if bar is not None:
                    bar.update(1)
        batcher.flush()
    results = [
        _clip_result(paths[key], np.concatenate([s for s, _ in parts]), np.concatenate([p for _, p in parts]), labels,
                     rate, window)
        for key, parts in sorted(batcher.done.items())
    ]
    skipped = [{"path": str(paths[key]), "reason": exc.message} for key, exc in sorted(failed.items())]
    return results, skipped


def _stream(batcher: _Batcher, key: int, path: Path, overlap: float, failed: dict, rate: int, window: int) -> None:
    try:
        for starts, windows in iter_windows(path, overlap=overlap, warn_short=False, sample_rate=rate, window=window):
            batcher.add(key, starts, windows)
    except AudioError as exc:
        batcher.flush()
        batcher.done.pop(key, None)
        failed[key] = exc


def _clip_result(path: Path, starts: np.ndarray, probabilities: np.ndarray, labels: list[str], rate: int,
                 window: int) -> dict:
    mean = probabilities.mean(axis=0)
    best = int(np.argmax(mean))
    window_best = np.argmax(probabilities, axis=1)
    return {
        "path": str(path),
        "label": labels[best],
        "probability": float(mean[best]),
        "probabilities": {label: float(p) for label, p in zip(labels, mean)},
        "windows": [
            {"start": float(s / rate), "end": float((s + window) / rate),
             "label": labels[int(k)], "probability": float(row[k])}
            for s, k, row in zip(starts, window_best, probabilities)
        ],
    }
