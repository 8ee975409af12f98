"""Walking two model specs field by field (for ``delta.diff``), and replaying changes (for ``apply``).

Change paths and ops are described in ``pippin.pipelines.personalize.delta``'s docstring.
"""

from __future__ import annotations

import re

import numpy as np

from ...spec import Model
from ..errors import PipelineError

__all__ = ["Differ", "replay", "resolve"]

_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def _is_map(fd) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _repeated(fd) -> bool:
    return fd.is_repeated


def _has(message, fd) -> bool:
    if _repeated(fd):
        return len(getattr(message, fd.name)) > 0
    if fd.has_presence:
        return message.HasField(fd.name)
    return getattr(message, fd.name) != fd.default_value


class Differ:
    def __init__(self):
        self.changes: list[dict] = []
        self.arrays: list[np.ndarray] = []

    def _array(self, values) -> int:
        self.arrays.append(values)
        return len(self.arrays) - 1

    def message(self, a, b, prefix: str) -> None:
        for fd in b.DESCRIPTOR.fields:
            path = f"{prefix}{fd.name}"
            if not _has(a, fd) and not _has(b, fd):
                continue
            if not _has(b, fd):
                self.changes.append({"path": path, "op": "clear"})
            elif _is_map(fd):
                before, after = dict(getattr(a, fd.name)), dict(getattr(b, fd.name))
                if before != after:  # only the entries that changed, so replay repeats the update's edits
                    self.changes.append({"path": path, "op": "map",
                                         "value": {k: v for k, v in after.items() if before.get(k) != v},
                                         "delete": [k for k in before if k not in after]})
            elif _repeated(fd):
                self.repeated(fd, getattr(a, fd.name), getattr(b, fd.name), path)
            elif fd.message_type is not None:
                if not _has(a, fd) and getattr(b, fd.name).ByteSize() > 0:
                    self.message(getattr(a, fd.name), getattr(b, fd.name), path + ".")
                elif not _has(a, fd):
                    blob = np.frombuffer(getattr(b, fd.name).SerializeToString(), dtype=np.uint8)
                    self.changes.append({"path": path, "op": "message", "array": self._array(blob)})
                elif getattr(a, fd.name) != getattr(b, fd.name):
                    self.message(getattr(a, fd.name), getattr(b, fd.name), path + ".")
            elif getattr(a, fd.name) != getattr(b, fd.name) or _has(a, fd) != _has(b, fd):
                value = getattr(b, fd.name)
                if isinstance(value, bytes):
                    self.changes.append({"path": path, "op": "bytes",
                                         "array": self._array(np.frombuffer(value, dtype=np.uint8))})
                else:
                    self.changes.append({"path": path, "op": "set", "value": value})

    def repeated(self, fd, a, b, path: str) -> None:
        if fd.message_type is None:
            if list(a) == list(b):
                return
            values = np.asarray(list(b)) if fd.type not in (fd.TYPE_STRING, fd.TYPE_BYTES) else None
            appended = len(b) > len(a) and list(b[:len(a)]) == list(a)
            if values is None:
                op = "append" if appended else "set"
                self.changes.append({"path": path, "op": op, "value": list(b[len(a):] if appended else b)})
            elif appended:
                self.changes.append({"path": path, "op": "append", "array": self._array(values[len(a):])})
            else:
                self.changes.append({"path": path, "op": "array", "array": self._array(values)})
            return
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    self.message(x, y, f"{path}[{i}].")
            return
        start = len(a) if len(b) > len(a) and all(x == y for x, y in zip(a, b)) else 0
        blobs = [m.SerializeToString() for m in b[start:]]
        op = "append" if start else "message"
        self.changes.append({"path": path, "op": op, "array": self._array(
            np.frombuffer(b"".join(blobs), dtype=np.uint8)), "lengths": [len(x) for x in blobs]})


def resolve(root, path: str):
    """(parent message, field descriptor, index or None) of a manifest path."""
    steps = path.split(".")
    node = root
    for step in steps[:-1]:
        match = _STEP.match(step)
        if not match:
            raise PipelineError(f"malformed change path {path!r}")
        node = getattr(node, match.group(1))
        if match.group(2) is not None:
            node = node[int(match.group(2))]
    match = _STEP.match(steps[-1])
    if not match or match.group(1) not in node.DESCRIPTOR.fields_by_name:
        raise PipelineError(f"change path {path!r} names no field of the model")
    return node, node.DESCRIPTOR.fields_by_name[match.group(1)]


def replay(spec: Model, change: dict, arrays: list[np.ndarray]) -> None:
    node, fd = resolve(spec, change["path"])
    op, name = change["op"], fd.name
    if op == "clear":
        node.ClearField(name)
    elif op == "set":
        if _repeated(fd):
            node.ClearField(name)
            getattr(node, name).extend(change["value"])
        else:
            setattr(node, name, change["value"])
    elif op == "map":
        entries = getattr(node, name)
        for key in change.get("delete", []):
            del entries[key]
        for key, value in change["value"].items():
            entries[key] = value
    elif op == "bytes":
        setattr(node, name, arrays[change["array"]].astype(np.uint8).tobytes())
    elif op == "array":
        node.ClearField(name)
        getattr(node, name).extend(arrays[change["array"]].tolist())
    elif op == "append" and "value" in change:
        getattr(node, name).extend(change["value"])
    elif op in ("append", "message"):
        data = arrays[change["array"]].astype(np.uint8).tobytes()
        if fd.message_type is None:
            getattr(node, name).extend(arrays[change["array"]].tolist())
        elif not _repeated(fd):
            getattr(node, name).SetInParent()
            getattr(node, name).ParseFromString(data)
        else:
            if op == "message":
                node.ClearField(name)
            offset = 0
            for length in change["lengths"]:
                getattr(node, name).add().ParseFromString(data[offset:offset + length])
                offset += length
    else:
        raise PipelineError(f"unknown change op {op!r} at {change['path']!r}")
