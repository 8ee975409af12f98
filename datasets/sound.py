"""Labelled sound datasets: a folder per label, a ``path,label`` table, or the FSDD layout.

A ``SoundDataset`` is only a list of files and their labels; reading and
featurizing the audio happens in ``pippin.audio``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["AUDIO_EXTENSIONS", "SoundDataset", "load_sound_dataset", "load_sound_folder", "load_sound_table",
           "load_fsdd"]

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".opus"})
_FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9-]+)_(?P<take>\d+)\.wav$")


@dataclass
class SoundDataset:
    """Audio files and their labels.

    Attributes
    ----------
    paths : list[Path] [shape=(n_files,)]
    labels : list[str] [shape=(n_files,)]
    source : str
        Where the list came from (a folder, a table), for messages and model metadata.
    """

    paths: list[Path]
    labels: list[str]
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.paths = [Path(p) for p in self.paths]
        self.labels = [str(label) for label in self.labels]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        """The labels, sorted, each once."""
        return sorted(set(self.labels))

    def counts(self) -> dict[str, int]:
        """Files per label, in ``classes`` order."""
        return {label: self.labels.count(label) for label in self.classes}

    def subset(self, keep) -> "SoundDataset":
        """The files at the positions ``keep`` (indices or a boolean mask)."""
        indices = [i for i, k in enumerate(keep) if k] if _is_mask(keep, len(self)) else list(keep)
        return SoundDataset([self.paths[i] for i in indices], [self.labels[i] for i in indices], self.source)


def _is_mask(keep, n: int) -> bool:
    keep = list(keep)
    return len(keep) == n and all(isinstance(k, (bool, np.bool_)) for k in keep)


def load_sound_folder(folder: str | os.PathLike) -> SoundDataset:
    """A folder with one sub-folder per label holding that label's audio files (any depth).

    Raises
    ------
    DatasetError
        The folder is missing, or no sub-folder holds an audio file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError("no such folder", where=str(root))
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        paths.extend(files)
        labels.extend([sub.name] * len(files))
    if not paths:
        raise DatasetError(
            "found no audio files in label sub-folders",
            where=str(root),
            hint=f"expected {root}/<label>/<file>.wav (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})",
        )
    return SoundDataset(paths, labels, source=str(root))


def load_sound_table(table: str | os.PathLike, *, path_column: str = "path",
                     label_column: str = "label") -> SoundDataset:
    """A CSV or TSV table with columns ``path`` and ``label``; relative paths are resolved from its folder.

    The delimiter is a tab for ``.tsv``/``.tab`` files, otherwise sniffed from ``,``, ``;`` and tab.

    Raises
    ------
    DatasetError
        The table is missing, lacks a column, or has an empty cell (row named).
    """
    table = Path(table)
    if not table.is_file():
        raise DatasetError("no such table", where=str(table))
    text = table.read_text(encoding="utf-8-sig")
    if table.suffix.lower() in (".tsv", ".tab"):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    for column in (path_column, label_column):
        if column not in columns:
            raise DatasetError(f"no column {column!r}; the table has {columns}", where=str(table),
                               hint="the first row must name the columns, e.g. 'path,label'")
    paths, labels = [], []
    for row_number, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        for column in (path_column, label_column):
            if not row.get(column):
                raise DatasetError(f"empty {column!r}", where=f"{table}: row {row_number}, column {column!r}")
        path = Path(row[path_column])
        paths.append(path if path.is_absolute() else table.parent / path)
        labels.append(row[label_column])
    if not paths:
        raise DatasetError("the table has no rows", where=str(table))
    return SoundDataset(paths, labels, source=str(table))


def load_sound_dataset(source) -> SoundDataset:
    """A dataset from a folder (one sub-folder per label), a ``path,label`` table, or a ``SoundDataset``."""
    if isinstance(source, SoundDataset):
        return source
    path = Path(source)
    if path.is_dir():
        return load_sound_folder(path)
    if path.is_file():
        return load_sound_table(path)
    raise DatasetError("no such folder or table", where=str(path),
                       hint="give a folder with one sub-folder per label, or a CSV/TSV with columns path,label")


def load_fsdd(folder: str | os.PathLike, *, split: str = "train", speakers=None, takes=None) -> SoundDataset:
    """The Free Spoken Digit Dataset: files ``{digit}_{speaker}_{take}.wav``, label = digit.

    Parameters
    ----------
    folder : path-like
        The ``recordings`` folder, or the folder holding it.
    split : {"train", "test", "all"}
        The conventional split: takes 0-4 of every digit and speaker are the test
        set, takes 5-49 the training set.
    speakers : iterable of str, optional
        Keep only these speakers.
    takes : iterable of int, optional
        Keep only these take numbers (after the split).

    Raises
    ------
    DatasetError
        No FSDD-named file is found, or ``split`` is unknown.
    """
    root = Path(folder)
    if (root / "recordings").is_dir():
        root = root / "recordings"
    if not root.is_dir():
        raise DatasetError("no such folder", where=str(root))
    if split not in ("train", "test", "all"):
        raise DatasetError(f"split must be 'train', 'test' or 'all', got {split!r}", where=str(root))
    speakers = None if speakers is None else set(speakers)
    takes = None if takes is None else {int(t) for t in takes}
    paths, labels = [], []
    for path in sorted(root.iterdir()):
        match = _FSDD_NAME.match(path.name)
        if not match:
            continue
        take = int(match["take"])
        if (split == "test" and take > 4) or (split == "train" and take < 5):
            continue
        if (speakers is not None and match["speaker"] not in speakers) or (takes is not None and take not in takes):
            continue
        paths.append(path)
        labels.append(match["digit"])
    if not paths:
        raise DatasetError(f"found no FSDD recordings ({{digit}}_{{speaker}}_{{take}}.wav) for split={split!r}",
                           where=str(root))
    return SoundDataset(paths, labels, source=f"FSDD {split} split of {root}")
