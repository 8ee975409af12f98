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


def _separator(sep: str | None) -> str | None:
    """``--sep`` as typed on a command line: ``\\t``, ``tab``, ``space``, ``whitespace`` or the character itself."""
    if sep is None:
        return None
    named = {"\\t": "\t", "tab": "\t", "space": " ", "whitespace": r"\s+", "comma": ",", "semicolon": ";",
             "pipe": "|"}
    return named.get(sep.lower() if len(sep) > 1 else sep, sep)


def read_table(path: str | os.PathLike, *, sep: str | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV/TSV (by extension; ``.txt`` sniffed) or Parquet file into a DataFrame.

    Parameters
    ----------
    path : path-like
    sep : str, optional
        Field separator (``"\\t"`` and ``"tab"`` mean a tab); default: from the extension.
    columns : list of str, optional
        Names of the columns of a header-less file (its first line is data). A file with
        more columns than named keeps the extra ones as ``column_<n>``.

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
            table = pd.read_parquet(path)
            if columns:
                if len(columns) > table.shape[1]:
                    raise DatasetError(f"--columns names {len(columns)} columns, the file has {table.shape[1]}",
                                       where=str(path))
                table.columns = list(columns) + list(map(str, table.columns[len(columns):]))
            return table
        sep = _separator(sep) if sep is not None else _SEPARATORS.get(suffix, ",")
        engine = "python" if sep is None or len(sep) > 1 else "c"
        if not columns:
            return pd.read_csv(path, sep=sep, engine=engine)
        table = pd.read_csv(path, sep=sep, engine=engine, header=None)
        if len(columns) > table.shape[1]:
            raise DatasetError(f"--columns names {len(columns)} columns ({','.join(columns)}), but the file has "
                               f"{table.shape[1]} with separator {sep!r}", where=str(path),
                               hint="check --sep (for a tab, --sep '\\t')")
        table.columns = list(columns) + [f"column_{n}" for n in range(len(columns) + 1, table.shape[1] + 1)]
        return table
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"cannot read the table: {exc}", where=str(path),
                           hint="expected a CSV/TSV file with a header row (or --columns for a header-less one), "
                                "or a Parquet file") from None


def _column(table: pd.DataFrame, name: str, *, role: str, where: str) -> pd.Series:
    if name not in table.columns:
        raise DatasetError(f"no {role} column {name!r}; the table has {list(map(str, table.columns))}",
                           where=where, hint=f"name the {role} column with --{role}-col")
    return table[name]


def _shown(value) -> str:
    """A cell value for a message: Python's repr, never NumPy's (``np.float64(nan)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _id_range_error(values, bad, *, name: str, where: str, first_row: int) -> DatasetError:
    row = int(np.flatnonzero(bad)[0])
    return DatasetError(f"id {_shown(values[row])} does not fit a 64-bit signed integer (Core ML's itemInt64Ids)",
                        where=f"{where}: row {row + first_row}, column {name!r}",
                        hint="use ids between -2**63 and 2**63-1, or text ids (a letter in every id)")


def _check_ids(values: pd.Series, *, name: str, where: str, first_row: int = 2) -> pd.Series:
    missing = np.array(values.isna().to_numpy(), dtype=bool)  # a writable copy
    if values.dtype == object:
        missing |= values.astype(str).str.strip().eq("").to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DatasetError(f"empty id in column {name!r}", where=f"{where}: row {row + first_row}, column {name!r}")
    kind = values.dtype.kind
    if kind == "f":
        numbers = values.to_numpy(np.float64)
        finite = np.isfinite(numbers)
        bad = ~finite | (np.mod(np.where(finite, numbers, 0.0), 1) != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"id {_shown(values.iloc[row])} is not an integer or a string",
                               where=f"{where}: row {row + first_row}, column {name!r}")
        bad = np.abs(numbers) > 2.0 ** 53  # beyond 2**53 a float no longer holds every integer
        if bad.any():
            raise _id_range_error(numbers, bad, name=name, where=where, first_row=first_row)
        values = values.astype(np.int64)
    elif kind == "u":
        numbers = values.to_numpy()
        bad = numbers > np.uint64(_INT64[1])
        if bad.any():
            raise _id_range_error(numbers, bad, name=name, where=where, first_row=first_row)
        values = values.astype(np.int64)
    elif kind == "i":
        values = values.astype(np.int64)
    else:
        raw = values.to_numpy(dtype=object)
        ints = np.array([isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in raw])
        if len(raw) and ints.all():  # Python ints too large for int64 land in an object column
            bad = np.array([not (_INT64[0] <= int(v) <= _INT64[1]) for v in raw])
            if bad.any():
                raise _id_range_error(raw, bad, name=name, where=where, first_row=first_row)
            return values.astype(np.int64)
        values = values.astype(str)
    return values


def _check_numbers(values: pd.Series, *, name: str, where: str, first_row: int = 2) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"value {_shown(values.iloc[row])} is not a finite number",
                           where=f"{where}: row {row + first_row}, column {name!r}")
    return numbers


def load_interactions(source, *, user: str, item: str, rating: str | None = None,
                      timestamp: str | None = None, where: str | None = None, sep: str | None = None,
                      columns: list[str] | None = None) -> pd.DataFrame:
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
    sep, columns : optional
        For a file: its field separator, and the column names of a header-less file
        (see ``read_table``); rows are then numbered from 1, else the header is row 1.

    Returns
    -------
    pandas.DataFrame [shape=(n_interactions, 2..4)]
        Columns ``user``, ``item`` (and ``rating``, ``timestamp`` when named) under
        their original names, with a fresh 0..n-1 index.

    Raises
    ------
    DatasetError
        A column is missing, the table has no rows, an id is empty or out of range, or a
        rating/timestamp is not a number.
    """
    first_row = 2
    if isinstance(source, pd.DataFrame):
        table, where = source, where or "<table>"
    elif isinstance(source, (str, os.PathLike)):
        table, where = read_table(source, sep=sep, columns=columns), where or str(source)
        first_row = 1 if columns else 2
    else:
        raise TypeError(f"load_interactions() takes a path or a DataFrame, not {type(source).__name__}")
    out = {}
    for name, role in ((user, "user"), (item, "item")):
        out[name] = _check_ids(_column(table, name, role=role, where=where).reset_index(drop=True),
                               name=name, where=where, first_row=first_row)
    for name, role in ((rating, "rating"), (timestamp, "timestamp")):
        if name is not None:
            out[name] = _check_numbers(_column(table, name, role=role, where=where).reset_index(drop=True),
                                       name=name, where=where, first_row=first_row)
    if not len(table):
        raise DatasetError("the table has no rows (only a header)", where=where,
                           hint="a header-less file needs --columns, e.g. --columns user_id,item_id,rating,ts")
    return pd.DataFrame(out)
