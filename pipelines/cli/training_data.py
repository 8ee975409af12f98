"""Reading a model's training data from an NPZ file or a CSV/Parquet table.

Both forms are keyed by the model's training input names
(``description.trainingInput``; for a model that declares none, its inputs and
its predicted label):

- NPZ: one array per training input, examples on the leading axis
  (``np.load(..., allow_pickle=False)``);
- table (``.csv``, ``.tsv``, ``.parquet``): one column per scalar input (a label,
  a number); a multiArray input of ``n`` values is spread over columns
  ``NAME_0`` ... ``NAME_{n-1}`` (or held in a single column ``NAME`` when ``n`` is 1),
  reshaped to the declared shape.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PipelineError
from ..runtime.features import MULTIARRAY_DTYPES, declared_shape, feature_kind

__all__ = ["training_inputs", "load_training_data", "n_examples"]


def training_inputs(spec) -> list:
    """The feature descriptions an update of ``spec`` needs."""
    inputs = list(spec.description.trainingInput)
    if inputs:
        return inputs
    found = list(spec.description.input)
    label = [f for f in spec.description.output if f.name == spec.description.predictedFeatureName]
    return found + label


def n_examples(data: dict[str, Any]) -> int:
    """The length of the leading axis shared by every value of ``data``."""
    return len(next(iter(data.values()))) if data else 0


def _from_npz(path: Path, wanted: list) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot read the NPZ file ({exc})", where=str(path),
                            hint="write it with numpy.savez, one array per training input, no object arrays") from None
    data = {}
    for f in wanted:
        if f.name not in arrays:
            raise PipelineError(f"no array {f.name!r} (a training input of the model); the file has {sorted(arrays)}",
                                where=str(path))
        data[f.name] = arrays[f.name]
    return data


def _read_table(path: Path):
    import pandas as pd

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"cannot read the table ({exc})", where=str(path)) from None


def _from_table(path: Path, wanted: list) -> dict[str, Any]:
    table = _read_table(path)
    columns = [str(c) for c in table.columns]
    data = {}
    for f in wanted:
        kind = feature_kind(f)
        if kind != "multiArrayType":
            if f.name not in columns:
                raise PipelineError(f"no column {f.name!r} (a training input of the model); the table has {columns}",
                                    where=str(path))
            column = table[f.name]
            if column.isna().any():
                row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 2
                raise PipelineError("empty cell", where=f"{path}: row {row}, column {f.name!r}")
            data[f.name] = column.to_numpy(dtype=object if kind == "stringType" else None)
            if kind == "stringType":
                data[f.name] = np.array([str(v) for v in data[f.name]], dtype=object)
            continue
        shape = declared_shape(f) or ()
        size = int(np.prod(shape)) if shape else None
        names = [f"{f.name}_{i}" for i in range(size)] if size else sorted(
            (c for c in columns if c.startswith(f.name + "_") and c[len(f.name) + 1:].isdigit()),
            key=lambda c: int(c.rsplit("_", 1)[1]))
        if size == 1 and f.name in columns:
            names = [f.name]
        absent = [c for c in names if c not in columns]
        if absent or not names:
            raise PipelineError(f"multiArray input {f.name!r} of shape {list(shape)} needs columns "
                                f"{f.name}_0 ... {f.name}_{(size or 1) - 1}; missing {absent[:3] or names}",
                                where=str(path))
        try:
            values = table[names].to_numpy(dtype=MULTIARRAY_DTYPES.get(f.type.multiArrayType.dataType, np.float32))
        except (TypeError, ValueError) as exc:
            raise PipelineError(f"columns of {f.name!r} are not all numbers ({exc})", where=str(path)) from None
        data[f.name] = values.reshape((len(table),) + tuple(shape)) if shape else values
    return data


def load_training_data(path: str | os.PathLike, spec) -> dict[str, Any]:
    """Training data for ``spec`` from an NPZ file or a CSV/TSV/Parquet table.

    Returns
    -------
    data : dict[str, np.ndarray]
        One batch array per training input [shape=(n_examples, ...)].

    Raises
    ------
    PipelineError
        The file is unreadable, lacks an input (named) or the arrays disagree in length.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError("no such file", where=str(path))
    wanted = training_inputs(spec)
    if path.suffix.lower() == ".npz":
        data = _from_npz(path, wanted)
    elif path.suffix.lower() in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        data = _from_table(path, wanted)
    else:
        raise PipelineError(f"unknown data format {path.suffix!r}", where=str(path),
                            hint="give an .npz file, a .csv/.tsv/.parquet table, or a folder of labelled audio")
    lengths = {name: len(v) for name, v in data.items()}
    if len(set(lengths.values())) > 1:
        raise PipelineError(f"training inputs have different numbers of examples: {lengths}", where=str(path))
    if not lengths or not next(iter(lengths.values())):
        raise PipelineError("no examples", where=str(path))
    return data
