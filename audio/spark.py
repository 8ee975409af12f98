"""Sound-classifier inference over a Spark DataFrame of audio paths, equal to ``pippin predict``.

``predict(model_path, df, path_col="path")`` broadcasts the model file's bytes once;
each task loads it once (cached per Python worker) and classifies its batch of files
with ``pippin.audio.inference.classify_files``, the function behind ``pippin predict``,
so labels, probabilities and windows are the CLI's. The audio files must be readable
at the same path from every executor (a shared or distributed file system mount).
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets.spark import check_columns, require_pyspark
from .errors import AudioError

__all__ = ["predict", "SCHEMA"]

# One row per input row: the clip's label and probability, every label's mean
# probability, and one struct per window (times in seconds); ``error`` names why a
# file was skipped (its other fields are then null).
SCHEMA = ("{path} string, label string, probability double, probabilities map<string, double>, "
          "windows array<struct<start: double, end: double, label: string, probability: double>>, error string")

_LOADED: dict[str, object] = {}


def _model(data: bytes, digest: str):
    if digest not in _LOADED:
        from ..pipelines import load

        _LOADED.clear()
        _LOADED[digest] = load(data)
    return _LOADED[digest]


def _classify(batches, *, shared, digest: str, path_col: str, overlap: float | None):
    from .inference import classify_files, model_overlap

    model = _model(shared.value, digest)
    for frame in batches:
        paths = [str(p) for p in frame[path_col]]
        results, skipped = classify_files(model, paths, overlap=model_overlap(model, overlap), progress=False)
        by_path = {r["path"]: r for r in results}
        errors = {s["path"]: s["reason"] for s in skipped}
        rows = []
        for path in paths:
            key = str(Path(path))
            r = by_path.get(key)
            if r is None:
                rows.append({path_col: path, "label": None, "probability": np.nan, "probabilities": None,
                             "windows": None, "error": errors.get(key, "not classified")})
            else:
                rows.append({path_col: path, "label": r["label"], "probability": r["probability"],
                             "probabilities": r["probabilities"], "windows": r["windows"], "error": None})
        yield pd.DataFrame(rows, columns=[path_col, "label", "probability", "probabilities", "windows", "error"])


def predict(model_path, df, *, path_col: str = "path", overlap: float | None = None):
    """Classify every audio file named in ``df[path_col]`` with a sound-classifier model file.

    Parameters
    ----------
    model_path : path-like
        A sound classifier .mlmodel (``pippin train sound``, or any model ``pippin predict`` runs).
    df : pyspark.sql.DataFrame
        One audio path per row [shape=(n_files,)].
    path_col : str
    overlap : float in [0, 1), optional
        Window overlap; default the model's, else 0.5.

    Returns
    -------
    pyspark.sql.DataFrame
        ``SCHEMA``: per file ``label``, ``probability``, ``probabilities`` and ``windows``
        (``start``, ``end``, ``label``, ``probability`` per window), or ``error``.

    Raises
    ------
    AudioError
        The model file is missing or not a sound classifier, or ``path_col`` is not a column.
    """
    require_pyspark()
    from .inference import audio_input

    check_columns(df, {"path": path_col}, where="df", error=AudioError)
    path = Path(model_path)
    if not path.is_file():
        raise AudioError("no such model file", where=str(path))
    data = path.read_bytes()
    model = _model(data, hashlib.sha256(data).hexdigest())
    audio_input(model)  # not a sound model: fail here, on the driver, not in every task
    if getattr(model, "class_labels", None) is None:
        raise AudioError(f"model is a {model.kind} without class probabilities, not a sound classifier",
                         where=str(path), hint="use a model made by 'pippin train sound'")
    shared = df.sparkSession.sparkContext.broadcast(data)
    digest = hashlib.sha256(data).hexdigest()
    paths = df.select(df[path_col].cast("string").alias(path_col))
    return paths.mapInPandas(partial(_classify, shared=shared, digest=digest, path_col=path_col, overlap=overlap),
                             SCHEMA.format(path=f"`{path_col}`"))
