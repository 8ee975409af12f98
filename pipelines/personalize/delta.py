"""Personalization deltas: what an update changed in a model, small enough to back up or sync.

``diff(base, updated)`` walks the two specs field by field and keeps only what
differs; ``apply(base, delta)`` replays those changes on the base and gives back
the updated model, and ``apply_bytes`` its file, equal to the updated file byte for byte (
``diff`` checks this before returning; since Python's protobuf writes map
entries, such as ``metadata.userDefined``, in an order that changes from process
to process, the delta also records the updated file's map entry order and
``apply_bytes`` restores it, see ``delta_wire``); ``merge(base, deltas)`` combines several
users' deltas of one base (federated averaging).

Delta file format (``.mldelta``, no pickle anywhere): a ZIP archive holding
``manifest.json`` and one ``arrays/<i>.npy`` per array (NumPy's ``.npy`` format,
read with ``allow_pickle=False``). The manifest is::

    {"format": "pippin-delta", "version": 1,
     "base_sha256": "<hex digest of the base file's bytes>",
     "updated_sha256": "<hex digest of the updated file's bytes>",
     "n_examples": <examples the update saw, a whole number >= 1; weights merge>,
     "n_examples_source": "metadata" | "given" | "default",
     "changes": [{"path": "neuralNetworkClassifier.layers[3].innerProduct.weights.floatValue",
                  "op": "array", "array": 0}, ...],
     "map_orders": {"description.metadata.userDefined": ["<hex of key record>", ...]}}

``path`` names a field from the ``Model`` root (``name[i]`` indexes a repeated
field). ``op`` is one of: ``set`` (a scalar, JSON ``value``), ``clear`` (field
removed), ``array`` (a repeated number field replaced by ``array``), ``bytes``
(a bytes field, as a uint8 array), ``append`` (elements added after the base's
own: serialized messages concatenated in ``array`` with their byte lengths in
``lengths``, or numbers in ``array``), ``message`` (a whole sub-message, serialized,
written where the base had none or a different-length list), ``map`` (a map
field's added or changed entries, JSON ``value``, and removed keys, ``delete``).

``n_examples_source`` says where the count came from: the updated model's
``pippin.examples_seen`` metadata (``pippin update`` and ``pippin personalize`` add
the examples they used), the caller (``--examples``), or the default 1.

Reading (``delta_read``): size limits and every archive or format fault as one
``PipelineError`` "not a pippin delta file: ...". ``apply`` checks both recorded
hashes: the base's before, the result's after (an edited manifest is refused, both
digests named).

Merging: ``array`` changes present in every delta are averaged with weights
``n_examples`` (``float16Value`` bytes are averaged as float16); ``append``
changes are concatenated (a k-NN index gets every user's examples); any other
change must be equal in all deltas. Each delta must reproduce its own recorded
update first, and deltas that change the model in incompatible ways are refused,
naming both: one that replaces or clears a field (a k-NN personalization replaces
the pipeline's stages) while another changes something inside it (a network
update of a stage's weights), in either order.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...spec import Model
from ...spec import io as spec_io
from .delta_read import check_count, not_a_delta, read_archive
from .delta_walk import Differ, replay, resolve
from .delta_wire import map_orders, reorder_maps
from ..errors import PipelineError

write_atomically = spec_io.write_atomically

__all__ = ["Delta", "diff", "apply", "apply_bytes", "merge", "fingerprint", "write_atomically"]

FORMAT, VERSION = "pippin-delta", 1


def _bytes_of(model: Any) -> bytes:
    if isinstance(model, (str, os.PathLike)):
        try:
            return Path(model).read_bytes()
        except OSError as exc:
            raise PipelineError(f"cannot read model file: {exc.strerror or exc}", where=str(model)) from None
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    spec = getattr(model, "spec", model)
    return spec.SerializeToString()


def fingerprint(model: Any) -> str:
    """SHA-256 hex digest of a model file's bytes (or of a spec's serialization)."""
    return hashlib.sha256(_bytes_of(model)).hexdigest()


@dataclass
class Delta:
    """The changes one update made to a base model.

    Attributes
    ----------
    base_sha256, updated_sha256 : str
    n_examples : int >= 1
        How many examples the update saw (the merge weight).
    n_examples_source : {"metadata", "given", "default"}
        Where the count came from: the updated model's ``pippin.examples_seen``
        metadata, the caller (``--examples``), or the default 1 (neither said).
    changes : list[dict]
        Manifest entries (see the module docstring).
    arrays : list[np.ndarray]
        The arrays the changes refer to by index.
    """

    base_sha256: str
    updated_sha256: str
    n_examples: int = 1
    changes: list[dict] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    map_orders: dict = field(default_factory=dict)
    n_examples_source: str = "given"
    where: str = field(default="", compare=False)  # the file it was read from, for messages

    def manifest(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "base_sha256": self.base_sha256,
                "updated_sha256": self.updated_sha256,
                "n_examples": check_count(self.n_examples, where=self.where or "<delta>"),
                "n_examples_source": self.n_examples_source, "changes": self.changes, "map_orders": self.map_orders}

    def label(self, index: int) -> str:
        """How messages name this delta: its file, else its position."""
        return f"delta {index} ({self.where})" if self.where else f"delta {index}"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the delta file atomically."""
        path = Path(path)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(self.manifest(), indent=1))
            for i, array in enumerate(self.arrays):
                member = io.BytesIO()
                np.save(member, np.asarray(array), allow_pickle=False)
                archive.writestr(f"arrays/{i}.npy", member.getvalue())
        return write_atomically(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Delta":
        """Read a delta file written by ``save``, within size limits (``delta_read``).

        Raises
        ------
        PipelineError
            "not a pippin delta file: ..." for any archive or format fault, an example
            count that is not a positive whole number, or a file past the size limits.
        """
        manifest, arrays = read_archive(path)
        return cls(manifest["base_sha256"], manifest["updated_sha256"], int(manifest["n_examples"]),
                   list(manifest["changes"]), arrays, dict(manifest.get("map_orders", {})),
                   manifest.get("n_examples_source", "given"), where=str(path))


def diff(base: Any, updated: Any, *, n_examples: int | None = None) -> Delta:
    """The changes that turn ``base`` into ``updated``.

    Parameters
    ----------
    base, updated : path, bytes, spec or RunnableModel
    n_examples : int >= 1, optional
        Examples the update saw; default: the ``pippin.examples_seen`` metadata that
        ``pippin update`` and ``pippin personalize`` record (updated minus base), else 1
        (``n_examples_source`` says which).

    Raises
    ------
    PipelineError
        The two models are of different kinds, or the updated file cannot be
        reproduced from the base (it was not written by a protobuf serializer).
    """
    base_bytes, updated_bytes = _bytes_of(base), _bytes_of(updated)
    a, b = spec_io.loads(base_bytes, where="base"), spec_io.loads(updated_bytes, where="updated")
    if a.WhichOneof("Type") != b.WhichOneof("Type"):
        raise PipelineError(f"base is a {a.WhichOneof('Type')} model but updated is a {b.WhichOneof('Type')}",
                            hint="diff a model against its own update")
    differ = Differ()
    differ.message(a, b, "")
    source = "given"
    if n_examples is None:
        n_examples, source = _recorded_examples(a, b)
    n_examples = check_count(n_examples, where="n_examples")
    delta = Delta(hashlib.sha256(base_bytes).hexdigest(), hashlib.sha256(updated_bytes).hexdigest(),
                  n_examples, differ.changes, differ.arrays, map_orders(updated_bytes, Model.DESCRIPTOR), source)
    if _replayed_bytes(base_bytes, delta) != updated_bytes:
        raise PipelineError("the updated file cannot be reproduced byte for byte from the base "
                            "(it was not written by a protobuf serializer in canonical field order)",
                            hint="load and re-save the updated model with pippin, then diff again")
    return delta


def _recorded_examples(base: Model, updated: Model) -> tuple[int, str]:
    """(examples the update saw, "metadata") from ``pippin.examples_seen``, else (1, "default")."""
    seen = []
    for m in (base, updated):
        try:
            seen.append(int(m.description.metadata.userDefined.get("pippin.examples_seen", "0")))
        except ValueError:
            seen.append(0)
    return (seen[1] - seen[0], "metadata") if seen[1] > seen[0] else (1, "default")


def apply(base: Any, delta: Delta | str | os.PathLike) -> Model:
    """The updated model: ``base`` with ``delta``'s changes replayed (see ``apply_bytes`` for the file).

    Raises
    ------
    PipelineError
        ``delta`` was made for another base (its fingerprint differs).
    """
    return spec_io.loads(apply_bytes(base, delta), where="applied")


def apply_bytes(base: Any, delta: Delta | str | os.PathLike) -> bytes:
    """The updated model file's bytes, identical to the file ``delta`` was diffed from.

    Raises
    ------
    PipelineError
        ``delta`` was made for another base (its fingerprint differs), a change cannot
        be replayed, or the result's SHA-256 is not the updated model's the delta
        records (the delta was edited or damaged): both digests are named.
    """
    if not isinstance(delta, Delta):
        delta = Delta.load(delta)
    data = _bytes_of(base)
    digest = hashlib.sha256(data).hexdigest()
    if digest != delta.base_sha256:
        raise PipelineError(f"the delta was made for base {delta.base_sha256[:12]}..., "
                            f"this base is {digest[:12]}...",
                            where=str(base) if isinstance(base, (str, os.PathLike)) else "<base>",
                            hint="apply a delta to the exact model file it was diffed against")
    out = _replayed_bytes(data, delta)
    got = hashlib.sha256(out).hexdigest()
    if got != delta.updated_sha256:
        raise PipelineError(f"the delta records the updated model's SHA-256 as {delta.updated_sha256}, "
                            f"but applying it gives {got}: the delta was edited or damaged",
                            where=delta.where or "<delta>", hint="diff the two models again")
    return out


def _replayed_bytes(data: bytes, delta: Delta) -> bytes:
    """The base file's bytes with ``delta``'s changes replayed and its map orders restored (no hash checks)."""
    spec = _replayed(spec_io.loads(data, where="base"), delta.changes, delta.arrays, where=delta.where or "<delta>")
    return reorder_maps(spec.SerializeToString(), Model.DESCRIPTOR, delta.map_orders)


def _replayed(spec: Model, changes: list[dict], arrays: list[np.ndarray], *, where: str) -> Model:
    """``spec`` with ``changes`` replayed; a change that does not fit the model is one ``PipelineError``."""
    for i, change in enumerate(changes):
        try:
            replay(spec, change, arrays)
        except PipelineError as exc:
            raise not_a_delta(f"changes[{i}]: {exc.message}", where) from None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
            raise not_a_delta(f"changes[{i}] ({change.get('op')} at {change.get('path')!r}) does not fit the model "
                       f"({type(exc).__name__}: {exc})", where) from None
    return spec


def merge(base: Any, deltas: list[Delta | str | os.PathLike]) -> Model:
    """Federated averaging of several deltas of one base, weighted by their example counts.

    Numeric parameters changed in every delta become ``sum(n_i * p_i) / sum(n_i)``;
    appended examples (a k-NN index) are concatenated; other changes must agree. Each
    delta's hashes are verified; incompatible deltas are refused (see the module docstring).

    Raises
    ------
    PipelineError
        No delta, another base, a count below 1, a delta that does not give its recorded
        update, or incompatible or disagreeing deltas.
    """
    deltas = [d if isinstance(d, Delta) else Delta.load(d) for d in deltas]
    if not deltas:
        raise PipelineError("merge needs at least one delta")
    data = _bytes_of(base)
    digest = hashlib.sha256(data).hexdigest()
    for i, d in enumerate(deltas):
        check_count(d.n_examples, where=f"{d.label(i)}: n_examples")
        if d.base_sha256 != digest:
            raise PipelineError(f"{d.label(i)} was made for another base ({d.base_sha256[:12]}..., "
                                f"this base is {digest[:12]}...)", hint="merge only deltas of the same base model")
        apply_bytes(data, d)  # each delta on its own gives the update it records
    _check_compatible(deltas)
    changes, arrays = _merge_changes(deltas, spec_io.loads(data, where="base"))
    return _replayed(spec_io.loads(data, where="base"), changes, arrays, where="merged deltas")


def _check_compatible(deltas: list[Delta]) -> None:
    """Refuse deltas where one replaces or clears a field another changes inside, naming both."""
    by_delta = [{c["path"]: c for c in d.changes} for d in deltas]
    for i, d in enumerate(deltas):
        for change in d.changes:
            outer = change["path"]
            for j, other in enumerate(by_delta):
                if j == i:
                    continue
                inner = next((p for p in other if p.startswith(outer + ".") or p.startswith(outer + "[")), None)
                if inner is not None:
                    first, second = sorted((i, j))
                    raise PipelineError(
                        f"{deltas[first].label(first)} and {deltas[second].label(second)} change the model in "
                        "incompatible ways: "
                        f"{d.label(i)} replaces {outer!r} ({change['op']}), inside which {deltas[j].label(j)} "
                        f"changes {inner!r}", hint="merge deltas of the same kind of update (network updates "
                        "together, k-NN personalizations together); to combine a network update and a k-NN "
                        "personalization, apply the update, then personalize the result")


def _base_values(base: Model, change: dict) -> np.ndarray:
    node, fd = resolve(base, change["path"])
    value = getattr(node, fd.name)
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=np.uint8)
    return np.asarray(list(value), dtype=np.float64)


def _merge_changes(deltas: list[Delta], base: Model) -> tuple[list[dict], list[np.ndarray]]:
    weights = np.array([d.n_examples for d in deltas], dtype=np.float64)
    weights /= weights.sum()
    paths: dict[str, list] = {}
    for i, d in enumerate(deltas):
        for change in d.changes:
            paths.setdefault(change["path"], [None] * len(deltas))[i] = change
    out, arrays = [], []
    for path, per_delta in paths.items():
        present = [(i, c) for i, c in enumerate(per_delta) if c is not None]
        ops = {c["op"] for _, c in present}
        if ops <= {"array"} or (ops == {"bytes"} and path.endswith("float16Value")):
            out.append({"path": path, "op": ops.pop(), "array": len(arrays)})
            arrays.append(_average(path, per_delta, deltas, weights, base))
        elif ops == {"append"}:
            out.extend(_concatenate(path, present, deltas, arrays))
        elif ops == {"map"}:
            node, name = _node_field(base, path)
            before = dict(getattr(node, name))
            merged, deleted = {}, []
            for _, c in present:
                merged.update(c["value"])
                deleted += [k for k in c.get("delete", []) if k not in deleted]
            if "pippin.examples_seen" in merged:
                seen = int(before.get("pippin.examples_seen", "0")) + sum(d.n_examples for d in deltas)
                merged["pippin.examples_seen"] = str(seen)
            out.append({"path": path, "op": "map", "value": merged, "delete": deleted})
        else:
            first = present[0][1]
            for i, c in present[1:]:
                if not _same_change(c, deltas[i], first, deltas[present[0][0]]):
                    raise PipelineError(f"{deltas[present[0][0]].label(present[0][0])} and {deltas[i].label(i)} "
                                        f"disagree on {path!r} ({first['op']} vs {c['op']}), which cannot be "
                                        "averaged", hint="merge deltas of the same kind of update; two k-NN "
                                        "personalizations each replace the stages: personalize once, then merge "
                                        "'pippin update' deltas of that personalized model")
            copy = dict(first)
            if "array" in copy:
                copy["array"] = len(arrays)
                arrays.append(deltas[present[0][0]].arrays[first["array"]])
            out.append(copy)
    return out, arrays


def _node_field(base: Model, path: str):
    node, fd = resolve(base, path)
    return node, fd.name


def _average(path, per_delta, deltas, weights, base) -> np.ndarray:
    half = path.endswith("float16Value")
    parts = []
    for c, d in zip(per_delta, deltas):
        values = d.arrays[c["array"]] if c is not None else _base_values(base, {"path": path})
        values = values.astype(np.uint8).view(np.float16).astype(np.float64) if half else values.astype(np.float64)
        parts.append(values)
    if len({p.shape for p in parts}) != 1:
        raise PipelineError(f"deltas change {path!r} to different sizes {[p.shape for p in parts]}, "
                            "so they cannot be averaged")
    mean = np.tensordot(weights, np.stack(parts), axes=1)  # float64 accumulation of the weighted sum
    return mean.astype(np.float16).view(np.uint8) if half else mean


def _concatenate(path, present, deltas, arrays) -> list[dict]:
    if "value" in present[0][1]:
        return [{"path": path, "op": "append", "value": [v for _, c in present for v in c["value"]]}]
    blobs = [deltas[i].arrays[c["array"]] for i, c in present]
    merged = {"path": path, "op": "append", "array": len(arrays)}
    if "lengths" in present[0][1]:
        merged["lengths"] = [n for _, c in present for n in c["lengths"]]
    arrays.append(np.concatenate(blobs))
    return [merged]


def _same_change(a: dict, da: Delta, b: dict, db: Delta) -> bool:
    if {k: v for k, v in a.items() if k != "array"} != {k: v for k, v in b.items() if k != "array"}:
        return False
    return "array" not in a or np.array_equal(da.arrays[a["array"]], db.arrays[b["array"]])
