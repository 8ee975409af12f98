"""Reading a ``.mldelta`` file from a stranger: size limits, and every fault as one error.

A delta is a ZIP archive (see ``delta``'s docstring). Before anything is inflated,
the file must be a regular file of at most ``MAX_FILE_BYTES``; the archive may hold
at most ``MAX_MEMBERS`` members, and what they inflate to is capped at
``max(MIN_INFLATED_BYTES, MAX_RATIO * file size)`` in total (a real delta holds float
weights, which barely compress; a ZIP bomb inflates thousands of times) and at
``MAX_MANIFEST_BYTES`` for the manifest. The cap is enforced on the bytes actually
inflated, not only on the sizes the archive declares. Any archive fault (a bad ZIP,
``zlib.error``, a missing or ragged member, an ``.npy`` that needs pickle) and any
manifest that does not follow the format becomes one ``PipelineError``:
``not a pippin delta file: <what was found>``, naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import PipelineError

__all__ = ["read_archive", "check_manifest", "check_count", "not_a_delta", "OPS", "MAX_FILE_BYTES", "MAX_RATIO",
           "MIN_INFLATED_BYTES", "MAX_MANIFEST_BYTES", "MAX_MEMBERS"]

MAX_FILE_BYTES = 2 << 30  # 2 GiB
MAX_RATIO = 100
MIN_INFLATED_BYTES = 64 << 20  # 64 MiB: small deltas may compress well (metadata, k-NN labels)
MAX_MANIFEST_BYTES = 16 << 20
MAX_MEMBERS = 100_000
MAX_COUNT = 2 ** 53  # example counts stay exact in the float64 merge weights
OPS = {"set", "clear", "array", "bytes", "append", "message", "map"}


def not_a_delta(message: str, where: str) -> PipelineError:
    """The one error for a file that is not a valid delta: ``not a pippin delta file: <message>``."""
    return PipelineError(f"not a pippin delta file: {message}", where=where,
                         hint="give a .mldelta file written by 'pippin diff'")


def check_count(value, *, where: str, name: str = "n_examples") -> int:
    """``value`` as a positive finite integer example count, or a ``PipelineError`` quoting it."""
    ok = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if not ok or not 1 <= int(value) <= MAX_COUNT:
        raise PipelineError(f"{name} is {value!r}, expected a positive whole number of examples (1 to 2**53)",
                            where=where, hint="an example count weights the merge; it must be at least 1")
    return int(value)


def _read_member(archive: zipfile.ZipFile, name: str, budget: list[int], where: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(budget[0] + 1)
    if len(data) > budget[0]:
        raise not_a_delta(f"its members inflate past the {budget[1]} byte limit for a file of this size", where)
    budget[0] -= len(data)
    return data


def read_archive(path: str | os.PathLike) -> tuple[dict, list[np.ndarray]]:
    """(manifest, arrays) of a delta file, within the size limits (see the module docstring).

    Raises
    ------
    PipelineError
        No such file, not a regular file, too large, or any archive or format fault.
    """
    where = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise PipelineError("no such file", where=where) from None
    except OSError as exc:
        raise PipelineError(f"cannot read delta file: {exc.strerror or exc}", where=where) from None
    if not stat.S_ISREG(info.st_mode):
        raise not_a_delta("it is not a regular file", where)
    if info.st_size > MAX_FILE_BYTES:
        raise not_a_delta(f"{info.st_size} bytes, more than the {MAX_FILE_BYTES} byte limit", where)
    limit = max(MIN_INFLATED_BYTES, MAX_RATIO * info.st_size)
    budget = [limit, limit]
    try:
        with zipfile.ZipFile(Path(path)) as archive:
            names = archive.namelist()
            if len(names) > MAX_MEMBERS:
                raise not_a_delta(f"{len(names)} archive members, more than {MAX_MEMBERS}", where)
            declared = sum(i.file_size for i in archive.infolist())
            if declared > limit:
                raise not_a_delta(f"its members declare {declared} bytes inflated, more than the {limit} byte limit "
                           f"for a {info.st_size} byte file", where)
            if "manifest.json" not in names:
                raise not_a_delta("no manifest.json in the archive", where)
            if archive.getinfo("manifest.json").file_size > MAX_MANIFEST_BYTES:
                raise not_a_delta(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes", where)
            manifest = json.loads(_read_member(archive, "manifest.json", budget, where))
            n_arrays = sum(1 for n in names if n.startswith("arrays/"))
            arrays = []
            for i in range(n_arrays):
                member = f"arrays/{i}.npy"
                if member not in names:
                    raise not_a_delta(f"{n_arrays} array members but no {member}", where)
                array = np.load(io.BytesIO(_read_member(archive, member, budget, where)), allow_pickle=False)
                if array.dtype.kind not in "biuf":
                    raise not_a_delta(f"{member} holds {array.dtype} values, expected numbers", where)
                arrays.append(array)
    except PipelineError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            IndexError, TypeError, RuntimeError, NotImplementedError, OverflowError, MemoryError) as exc:
        raise not_a_delta(f"{type(exc).__name__}: {exc}", where) from None
    check_manifest(manifest, n_arrays=len(arrays), lengths=[a.size for a in arrays], where=where)
    return manifest, arrays


def _expect(ok: bool, message: str, where: str) -> None:
    if not ok:
        raise not_a_delta(message, where)


def check_manifest(manifest, *, n_arrays: int, lengths: list[int], where: str) -> None:
    """The manifest follows the format: fields and types, ops, array indices in range, counts.

    Raises ``PipelineError`` ("not a pippin delta file: ...") naming the first fault.
    """
    from .delta import FORMAT, VERSION

    _expect(isinstance(manifest, dict), f"the manifest is a JSON {type(manifest).__name__}, expected an object",
            where)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise not_a_delta(f"manifest format {manifest.get('format')!r} version {manifest.get('version')!r}, "
                   f"expected {FORMAT!r} version {VERSION}", f"{where}: manifest.json")
    for key in ("base_sha256", "updated_sha256"):
        value = manifest.get(key)
        _expect(isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value),
                f"{key} is {str(value)[:80]!r}, expected 64 hex digits", where)
    check_count(manifest.get("n_examples"), where=f"{where}: manifest.json n_examples")
    _expect(manifest.get("n_examples_source", "given") in ["metadata", "given", "default"],
            f"n_examples_source is {manifest.get('n_examples_source')!r}", where)
    changes = manifest.get("changes")
    _expect(isinstance(changes, list), "changes is not a list", where)
    for i, change in enumerate(changes):
        at = f"changes[{i}]"
        _expect(isinstance(change, dict) and isinstance(change.get("path"), str) and isinstance(change.get("op"), str)
                and change["op"] in OPS,
                f"{at} is not an object with a path and an op in {sorted(OPS)}", where)
        if "array" in change or change["op"] in ("array", "bytes", "message") or (
                change["op"] == "append" and "value" not in change):
            index = change.get("array")
            _expect(isinstance(index, int) and not isinstance(index, bool) and 0 <= index < n_arrays,
                    f"{at} refers to array {index!r}, the file holds {n_arrays}", where)
        if "lengths" in change:
            sizes = change["lengths"]
            _expect(isinstance(sizes, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                    for n in sizes) and sum(sizes) == lengths[change["array"]],
                    f"{at} lengths do not add up to its array's {lengths[change['array']]} bytes", where)
        if change["op"] == "map":
            _expect(isinstance(change.get("value"), dict) and isinstance(change.get("delete", []), list),
                    f"{at} is a map change without a value object", where)
    orders = manifest.get("map_orders", {})
    _expect(isinstance(orders, dict) and all(isinstance(k, list) and all(isinstance(x, str) for x in k)
                                             for k in orders.values()),
            "map_orders is not an object of key lists", where)
