"""Labelled sound datasets: a folder per label, a ``path,label`` table, or the FSDD layout.

A ``SoundDataset`` is only a list of files and their labels; reading and
featurizing the audio happens in ``pippin.audio``.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["AUDIO_EXTENSIONS", "SoundDataset", "load_sound_dataset", "load_sound_folder", "load_sound_table",
           "load_sound_named", "load_fsdd"]

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


def _listed(path: Path) -> bool:
    """An audio name to list: a file, but also what only looks like one (a folder named
    ``x.wav``, a symlink loop, a dangling link), so the reader names it and skips it instead
    of it vanishing unseen. Hidden names are left out."""
    return (path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")
            and (path.is_file() or path.is_symlink() or path.is_dir()))


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
        files = sorted(p for p in sub.rglob("*") if _listed(p))
        paths.extend(files)
        labels.extend([sub.name] * len(files))
    if not paths:
        flat = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
        if flat:
            raise DatasetError(
                f"found {len(flat)} audio files directly in the folder but no label sub-folders; name the label "
                f"with --label-from-name REGEX (e.g. '^(\\d)_' takes the first digit of {sorted(flat)[0].name!r})",
                where=str(root),
                hint="or move each label's files into a sub-folder named after the label",
            )
        raise DatasetError(
            "found no audio files in label sub-folders",
            where=str(root),
            hint=f"expected {root}/<label>/<file>.wav (extensions: {', '.join(sorted(AUDIO_EXTENSIONS))})",
        )
    return SoundDataset(paths, labels, source=str(root))


def load_sound_named(folder: str | os.PathLike, pattern: str) -> SoundDataset:
    """Audio files anywhere under ``folder`` whose name matches ``pattern``; the name gives the label.

    The label is the group named ``label`` if the pattern has one, else its first group,
    else the whole match (``re.search`` on the file name, extension included). Files
    that do not match are left out and counted in ``extra["unmatched"]``, so a pattern
    can also select a split: FSDD's training takes are ``^(\\d)_[a-z]+_([5-9]|\\d\\d)\\.wav$``.

    Raises
    ------
    DatasetError
        The folder is missing, the pattern is not a regular expression, or no file matches.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError("no such folder", where=str(root))
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DatasetError(f"{pattern!r} is not a regular expression ({exc})", where="--label-from-name") from None
    files = sorted(p for p in root.rglob("*") if _listed(p))
    paths, labels, unmatched = [], [], 0
    for path in files:
        match = regex.search(path.name)
        label = None
        if match:
            label = match["label"] if "label" in regex.groupindex else (match[1] if regex.groups else match[0])
        if not label:
            unmatched += 1
            continue
        paths.append(path)
        labels.append(label)
    if not paths:
        example = f"; the first file is {files[0].name!r}" if files else ""
        raise DatasetError(f"no audio file name matches {pattern!r} with a non-empty label ({len(files)} audio "
                           f"files{example})", where=str(root))
    return SoundDataset(paths, labels, source=str(root), extra={"label_from_name": pattern, "unmatched": unmatched})


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
    try:
        text = table.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot read the table: not UTF-8 text (byte {exc.start})", where=str(table),
                           hint="expected a CSV/TSV file with columns path,label") from None
    except OSError as exc:
        raise DatasetError(f"cannot read the table ({exc.strerror or exc})", where=str(table)) from None
    if table.suffix.lower() in (".tsv", ".tab"):
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise DatasetError(f"cannot read the table ({exc})", where=f"{table}: row 1") from None
    for column in (path_column, label_column):
        if column not in columns:
            raise DatasetError(f"no column {column!r}; the table has {columns}", where=str(table),
                               hint="the first row must name the columns, e.g. 'path,label'")
    paths, labels = [], []
    rows = iter(reader)
    for row_number in itertools.count(2):
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(f"cannot read the table ({exc})", where=f"{table}: row {row_number}") from None
        # a row longer than the header keeps its extra cells under the key None: ignored
        row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str) and not isinstance(v, list)}
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
