"""MovieLens-format files: ``u.data`` (tab-separated user, item, rating, timestamp)
and ``u.item`` (``|``-separated, latin-1, item id then title)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError

__all__ = ["load_movielens", "load_movielens_titles"]

_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def load_movielens(folder: str | os.PathLike) -> pd.DataFrame:
    """Read ``folder/u.data`` (or a ``u.data``-format file itself).

    Returns
    -------
    pandas.DataFrame [shape=(n_ratings, 4)]
        Columns ``user_id``, ``item_id`` (int64), ``rating`` (float64), ``timestamp`` (int64).

    Raises
    ------
    DatasetError
        The file is missing or a line does not hold four integers.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / "u.data"
    if not path.is_file():
        raise DatasetError("no such file", where=str(path), hint="expected a MovieLens folder holding u.data")
    table = pd.read_csv(path, sep="\t", header=None, names=_COLUMNS, dtype=str, keep_default_na=False)
    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise DatasetError(f"{table.iat[row, col]!r} is not a number",
                           where=f"{path}: line {row + 1}, column {col + 1} ({_COLUMNS[col]})",
                           hint="expected four tab-separated integers: user item rating timestamp")
    return pd.DataFrame({
        "user_id": values["user_id"].astype(np.int64),
        "item_id": values["item_id"].astype(np.int64),
        "rating": values["rating"].astype(np.float64),
        "timestamp": values["timestamp"].astype(np.int64),
    })


def load_movielens_titles(folder: str | os.PathLike) -> dict[int, str]:
    """``{item_id: title}`` from ``folder/u.item`` (latin-1)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "u.item"
    if not path.is_file():
        raise DatasetError("no such file", where=str(path))
    titles = {}
    with open(path, encoding="latin-1") as fh:
        for n, line in enumerate(fh, start=1):
            fields = line.rstrip("\n").split("|")
            if len(fields) < 2 or not fields[0].strip().isdigit():
                if line.strip():
                    raise DatasetError(f"expected 'id|title|...', got {line[:40]!r}", where=f"{path}: line {n}")
                continue
            titles[int(fields[0])] = fields[1]
    return titles
