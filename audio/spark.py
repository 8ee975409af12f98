"""Sound-classifier inference over a Spark DataFrame of audio paths, equal to ``pippin predict``.

``predict(model_path, df, path_col="path")`` broadcasts the model file's bytes once;
each task loads it once (cached per Python worker) and classifies its batch of files
with ``pippin.audio.inference.classify_files``, the function behind ``pippin predict``,
so labels, probabilities and windows are the CLI's. The audio files must be readable
at the same path from every executor (a shared or distributed file system mount).

Training the same way: ``featurize(df, feature_extractor=...)`` turns a DataFrame of
labelled audio (paths, or the files' bytes) into one row per window holding the exact
array the single-machine trainer computes for it (a log-mel patch for ``"scratch"``, an
embedding sequence of the ``"speech"`` or ``"sounds"`` backbone), with the functions
``SoundClassifier.fit`` uses, file by file (they do not depend on which files share a
task: checked bit for bit in ``tests/spark``). Save it as Parquet, and
``fit(features_df, SoundClassifier(...))`` trains the classifier on the driver from
those arrays, in file order: the same model, byte for byte, as ``SoundClassifier.fit``
on the same files in the same order. Only training runs on the driver (it collects the
features: ``n_windows`` x 24 KB for scratch, 3.8 KB for speech, 24 KB for sounds).
The ``"sounds"`` backbone's augmented copies (``augment=True``: 4 changed copies of
each training clip, one seeded random stream walking the files in order) are embedded
on the driver as on one machine, so they need the paths readable there; with
``augment=False`` every audio file is read on the executors only.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets.spark import check_columns, require_pyspark
from .errors import AudioError

__all__ = ["predict", "SCHEMA", "featurize", "fit", "FEATURE_SCHEMA"]

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


# One row per window of a usable file, one row (window null, ``error`` set) per unusable file.
# ``clip`` numbers the input rows in DataFrame order; ``features`` is the window's float32
# array, C order, of the shape ``feature_shape(feature_extractor)``.
FEATURE_SCHEMA = ("clip long, path string, label string, feature_extractor string, overlap double, window int, "
                  "start long, padded boolean, features binary, error string")
_FEATURE_COLUMNS = [c.split()[0] for c in FEATURE_SCHEMA.split(", ")]


def feature_shape(feature_extractor: str) -> tuple[int, ...]:
    """The array of one window: (1, 96, 64) log-mel patch, or (embedding_dim, n_steps, 1) for a backbone."""
    if feature_extractor == "scratch":
        from .frontend import N_MELS, PATCH_FRAMES

        return (1, PATCH_FRAMES, N_MELS)
    from .backbones import get_backbone

    backbone = get_backbone(feature_extractor)
    return (backbone.embedding_dim, backbone.n_steps, 1)


def _file_results(paths, extractor: str, overlap: float) -> list:
    """Per file: (starts, features, padded) or its AudioError, as ``featurize_files`` / ``embed_files``."""
    if extractor == "scratch":
        from .features import _one_file

        return [_one_file(p, overlap) for p in paths]
    from .backbones import get_backbone
    from .embeddings import _read, embed_windows, spread_embeddings

    backbone = get_backbone(extractor)
    reads = [_read(p, backbone, overlap) for p in paths]
    good = [r for r in reads if not isinstance(r, AudioError)]
    if not good:
        return reads
    return spread_embeddings(reads, embed_windows(backbone, np.concatenate([w for _, w, _ in good])))


def _featurize(batches, *, path_col: str, label_col: str, extractor: str, overlap: float, as_bytes: bool):
    import tempfile

    for frame in batches:
        with tempfile.TemporaryDirectory(prefix="pippin-audio-") as tmp:
            if as_bytes:  # the files' contents: through a temporary file, read by the same code as a path
                paths, names = [], [f"row {c}" for c in frame["clip"]]
                for c, data in zip(frame["clip"], frame[path_col]):
                    target = Path(tmp) / f"{c}"
                    if data is not None:
                        target.write_bytes(bytes(data))
                    paths.append(target)
            else:
                names = [str(p) for p in frame[path_col]]
                paths = [Path(p) for p in names]
            results = _file_results(paths, extractor, overlap)
        rows = []
        for clip, name, label, result in zip(frame["clip"], names, frame[label_col], results):
            base = {"clip": int(clip), "path": name, "label": None if label is None else str(label),
                    "feature_extractor": extractor, "overlap": float(overlap)}
            if isinstance(result, AudioError):
                rows.append({**base, "window": None, "start": None, "padded": None, "features": None,
                             "error": result.message})
                continue
            starts, features, padded = result
            features = np.ascontiguousarray(features, dtype=np.float32)
            for w in range(len(starts)):
                rows.append({**base, "window": w, "start": int(starts[w]), "padded": bool(padded),
                             "features": features[w].tobytes(), "error": None})
        yield pd.DataFrame(rows, columns=_FEATURE_COLUMNS)


def featurize(df, *, feature_extractor: str, path_col: str = "path", label_col: str = "label",
              overlap: float = 0.5):
    """Every window of every labelled audio file of ``df`` -> the array the trainer learns from.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One file per row [shape=(n_files,)]: ``path_col`` holds its path (readable from the
        executors) or its bytes (a binary column), ``label_col`` its label.
    feature_extractor : {"scratch", "speech", "sounds"}
        As ``SoundClassifier``; "auto" chooses by training on every backbone's features,
        so it is not offered here: choose with ``pippin train sound`` on a sample.
    overlap : float in [0, 1)

    Returns
    -------
    pyspark.sql.DataFrame
        ``FEATURE_SCHEMA``, one row per window (``features``: float32 bytes of shape
        ``feature_shape(feature_extractor)``), one row with ``error`` per unusable file;
        ``clip`` numbers the files in ``df``'s order. Input for ``fit``.

    Raises
    ------
    AudioError
        A column is missing, or the extractor or overlap is not valid.
    """
    require_pyspark()
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from .backbones import BACKBONES
    from .frontend import window_starts

    if feature_extractor not in ("scratch", *BACKBONES):
        raise AudioError(f"feature_extractor={feature_extractor!r}, expected one of "
                         f"{['scratch', *BACKBONES]}", where="featurize")
    window_starts(0, overlap=overlap)  # AudioError naming a bad overlap, before any work
    check_columns(df, {"path": path_col, "label": label_col}, where="df", error=AudioError)
    as_bytes = isinstance(df.schema[path_col].dataType, T.BinaryType)
    clip = F.monotonically_increasing_id()  # increasing in the DataFrame's order; fit renumbers 0..n-1
    files = df.select(clip.alias("clip"), df[path_col] if as_bytes else df[path_col].cast("string").alias(path_col),
                      df[label_col].cast("string").alias(label_col))
    task = partial(_featurize, path_col=path_col, label_col=label_col, extractor=feature_extractor,
                   overlap=float(overlap), as_bytes=as_bytes)
    return files.mapInPandas(task, FEATURE_SCHEMA)


def fit(features_df, classifier, *, source: str | None = None, on_epoch=None):
    """Train ``classifier`` (a ``SoundClassifier``) from ``featurize``'s rows; returns it fitted.

    The rows are collected on the driver in file order (``clip``, then ``window``) and
    handed to ``SoundClassifier.fit(..., features=...)``: the same model as ``fit`` on the
    same files in the same order. ``source`` is recorded as the training data's source.

    Raises
    ------
    AudioError
        The rows come from another extractor or overlap than ``classifier``'s, or are not
        ``featurize``'s, or the classifier refuses the data (fewer than two labels, ...).
    """
    require_pyspark()
    from ..datasets.sound import SoundDataset
    from .backbones import get_backbone
    from .features import ClipFeatures
    from .frontend import SAMPLE_RATE

    check_columns(features_df, {c: c for c in _FEATURE_COLUMNS}, where="features_df", error=AudioError)
    rows = features_df.select(*_FEATURE_COLUMNS).toPandas()
    extractor = classifier.feature_extractor
    found = sorted(set(rows["feature_extractor"]))
    if found != [extractor] or sorted(set(rows["overlap"])) != [float(classifier.overlap)]:
        raise AudioError(f"features of {found} with overlap {sorted(set(rows['overlap']))}, but the classifier has "
                         f"feature_extractor={extractor!r}, overlap={classifier.overlap!r}", where="features_df",
                         hint="featurize with the classifier's feature_extractor and overlap")
    rows = rows.sort_values(["clip", "window"], na_position="first", kind="stable").reset_index(drop=True)
    files = rows.drop_duplicates("clip")
    position = pd.Series(np.arange(len(files)), index=files["clip"].to_numpy())
    windows = rows[rows["error"].isna()]
    shape = feature_shape(extractor)
    patches = np.frombuffer(b"".join(windows["features"]), dtype=np.float32).reshape(-1, *shape)
    used = np.zeros(len(files), dtype=bool)
    clip_index = position.loc[windows["clip"].to_numpy()].to_numpy(np.int64)
    used[clip_index] = True
    errors = files[files["error"].notna()]
    padded = windows.drop_duplicates("clip")["padded"].astype(bool)
    rate = SAMPLE_RATE if extractor == "scratch" else get_backbone(extractor).sample_rate
    features = ClipFeatures(patches=patches, clip_index=clip_index, starts=windows["start"].to_numpy(np.int64),
                            used=used, skipped=[{"path": p, "reason": r} for p, r in zip(errors["path"],
                                                                                       errors["error"])],
                            n_padded=int(padded.sum()), sample_rate=rate)
    labels = files["label"].tolist()
    if any(label is None for label in labels):
        raise AudioError(f"{sum(label is None for label in labels)} files have no label", where="features_df")
    dataset = SoundDataset([Path(p) for p in files["path"]], labels, source=source or "a Spark DataFrame")
    return classifier.fit(dataset, on_epoch=on_epoch, features=features)
