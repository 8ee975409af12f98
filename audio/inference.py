"""Classifying audio files with a loaded sound-classifier model (the exported pipeline).

Works with any loaded model that takes 975 ms windows of 16 kHz audio (a
FLOAT32 [15600] multiArray input) and returns class probabilities: each file is
cut into windows (``pippin.audio.io``), windows of many files are batched through
``predict_batch``, and a clip's label is the arg-max of its windows' mean probabilities.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import AudioError
from .frontend import PATCH_SAMPLES, SAMPLE_RATE
from .io import read_windows

__all__ = ["audio_input_name", "classify_files"]

_BATCH_WINDOWS = 256


def audio_input_name(model) -> str:
    """The model input that takes 975 ms windows (a multiArray of 15,600 values)."""
    for name, description in model.input_descriptions.items():
        array = description.type.multiArrayType
        if description.type.WhichOneof("Type") == "multiArrayType" and list(array.shape) == [PATCH_SAMPLES]:
            return name
    raise AudioError(f"model takes no 975 ms audio input (a multiArray of {PATCH_SAMPLES} values); "
                     f"its inputs are {sorted(model.input_descriptions)}", where=getattr(model, "where", None))


def _read(path: Path, overlap: float):
    try:
        return read_windows(path, overlap=overlap, warn_short=False)
    except AudioError as exc:
        return exc
    except OSError as exc:
        return AudioError(f"cannot read file ({exc.strerror or exc})", where=str(path))


def classify_files(model, paths, *, overlap: float = 0.5, progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Per-file and per-window predictions of a loaded sound classifier.

    Parameters
    ----------
    model : RunnableModel
        A loaded model with a [15600] audio input and class probabilities
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
    input_name = audio_input_name(model)
    labels = [str(x) for x in model.class_labels]
    probs_name = model.spec.description.predictedProbabilitiesName
    paths = [Path(p) for p in paths]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="predict", unit="file", leave=False)
    results, skipped, pending = [], [], []

    def flush():
        if not pending:
            return
        windows = np.concatenate([w for _, _, w in pending])
        probabilities = np.asarray(model.predict_batch({input_name: windows})[probs_name], dtype=np.float64)
        at = 0
        for path, starts, w in pending:
            results.append(_clip_result(path, starts, probabilities[at:at + len(w)], labels))
            at += len(w)
        pending.clear()

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for path, read in zip(paths, pool.map(lambda p: _read(p, overlap), paths)):
                if isinstance(read, AudioError):
                    skipped.append({"path": str(path), "reason": read.message})
                else:
                    pending.append((path, read[0], read[1]))
                    if sum(len(w) for _, _, w in pending) >= _BATCH_WINDOWS:
                        flush()
                if bar is not None:
                    bar.update(1)
            flush()
    finally:
        if bar is not None:
            bar.close()
    return results, skipped


def _clip_result(path: Path, starts: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict:
    mean = probabilities.mean(axis=0)
    best = int(np.argmax(mean))
    window_best = np.argmax(probabilities, axis=1)
    return {
        "path": str(path),
        "label": labels[best],
        "probability": float(mean[best]),
        "probabilities": {label: float(p) for label, p in zip(labels, mean)},
        "windows": [
            {"start": float(s / SAMPLE_RATE), "end": float((s + PATCH_SAMPLES) / SAMPLE_RATE),
             "label": labels[int(k)], "probability": float(row[k])}
            for s, k, row in zip(starts, window_best, probabilities)
        ],
    }
