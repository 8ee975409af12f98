"""Reading user-item interaction tables (CSV, TSV, Parquet or a DataFrame), checked once.

``load_interactions`` returns a DataFrame with the named columns only, in the
order user, item[, rating][, timestamp]; a missing column, an empty id or a
non-numeric rating raises one ``DatasetError`` naming the file, the row and the
column. Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError

__all__ = ["load_interactions", "read_table"]

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None, ".data": "\t"}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV/TSV (by extension; ``.txt`` sniffed) or Parquet file into a DataFrame.

    Raises
    ------
    DatasetError
        The file is missing, unreadable, or not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError("no such file", where=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = _SEPARATORS.get(suffix, ",")
        return pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the table: {exc}", where=str(path),
                           hint="expected a CSV/TSV file with a header row, or a Parquet file") from None


def _column(table: pd.DataFrame, name: str, *, role: str, where: str) -> pd.Series:
    if name not in table.columns:
        raise DatasetError(f"no {role} column {name!r}; the table has {list(map(str, table.columns))}",
                           where=where, hint=f"name the {role} column with --{role}-col")
    return table[name]


def _check_ids(values: pd.Series, *, name: str, where: str) -> pd.Series:
    missing = values.isna().to_numpy()
    if values.dtype == object:
        missing |= values.astype(str).str.strip().eq("").to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DatasetError(f"empty id in column {name!r}", where=f"{where}: row {row + 2}, column {name!r}")
    if values.dtype.kind == "f":
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            row = int(np.flatnonzero(np.mod(values.to_numpy(), 1) != 0)[0])
            raise DatasetError(f"id {values.iloc[row]!r} is not an integer or a string",
                               where=f"{where}: row {row + 2}, column {name!r}")
        values = values.astype(np.int64)
    elif values.dtype.kind not in "iu":
        values = values.astype(str)
    return values


def _check_numbers(values: pd.Series, *, name: str, where: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"value {values.iloc[row]!r} is not a finite number",
                           where=f"{where}: row {row + 2}, column {name!r}")
    return numbers


def load_interactions(source, *, user: str, item: str, rating: str | None = None,
                      timestamp: str | None = None, where: str | None = None) -> pd.DataFrame:
    """Load and check an interaction table.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        A ``.csv``/``.tsv``/``.parquet`` file, or a table already in memory.
    user, item : str
        Id columns; ids are integers or strings.
    rating, timestamp : str, optional
        Numeric columns to keep.
    where : str, optional
        Name used in errors (default: the path, or ``"<table>"``).

    Returns
    -------
    pandas.DataFrame [shape=(n_interactions, 2..4)]
        Columns ``user``, ``item`` (and ``rating``, ``timestamp`` when named) under
        their original names, with a fresh 0..n-1 index.

    Raises
    ------
    DatasetError
        A column is missing, an id is empty, or a rating/timestamp is not a number.
    """
    if isinstance(source, pd.DataFrame):
        table, where = source, where or "<table>"
    elif isinstance(source, (str, os.PathLike)):
        table, where = read_table(source), where or str(source)
    else:
        raise TypeError(f"load_interactions() takes a path or a DataFrame, not {type(source).__name__}")
    out = {}
    for name, role in ((user, "user"), (item, "item")):
        out[name] = _check_ids(_column(table, name, role=role, where=where).reset_index(drop=True),
                               name=name, where=where)
    for name, role in ((rating, "rating"), (timestamp, "timestamp")):
        if name is not None:
            out[name] = _check_numbers(_column(table, name, role=role, where=where).reset_index(drop=True),
                                       name=name, where=where)
    return pd.DataFrame(out)
