"""Reading and writing ``.mlmodel`` files.

``load`` turns every way a file can be unreadable into one ``SpecError`` naming
the file; ``save`` is atomic (temp file in the same folder, fsync, ``os.replace``)
so an interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from google.protobuf.message import DecodeError, Message

from ._proto.Model_pb2 import Model
from .errors import SpecError

__all__ = ["load", "save", "loads", "dumps", "write_atomically"]


def loads(data: bytes, *, where: str = "<bytes>") -> Model:
    """Parse serialized bytes into a ``Model``.

    Unknown fields are kept, so a load/save round trip is byte-identical.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads() takes bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise SpecError("file is empty, expected a serialized Core ML model", where=where)
    model = Model()
    try:
        model.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise SpecError(
            f"not a Core ML model: protobuf could not decode {len(data)} bytes ({exc})",
            where=where,
            hint="the file may be truncated or corrupt, or not an .mlmodel at all",
        ) from None
    except (RuntimeError, ValueError, OverflowError, RecursionError) as exc:
        raise SpecError(f"not a Core ML model: {exc}", where=where) from None
    if not model.HasField("description") and model.specificationVersion == 0:
        raise SpecError(
            "no specificationVersion and no description: not a Core ML model",
            where=where,
        )
    return model


def load(path: str | os.PathLike) -> Model:
    """Read a ``.mlmodel`` file (or an ``.mlpackage``'s ``model.mlmodel``) into a ``Model``.

    Raises
    ------
    SpecError
        The file is missing, unreadable, empty, truncated or not a Core ML model.
    """
    path = Path(path)
    if path.is_dir():
        inner = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
        if not inner.is_file():
            raise SpecError("is a folder, expected a .mlmodel file", where=str(path))
        path = inner
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", where=str(path)) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", where=str(path)) from None
    return loads(data, where=str(path))


def dumps(model: Message) -> bytes:
    """Serialize a ``Model`` (ours, or any message with the same wire format)."""
    if not isinstance(model, Message):
        raise TypeError(f"dumps() takes a protobuf Model, not {type(model).__name__}")
    # deterministic: map entries (metadata.userDefined, ...) in key order, so the
    # same model gives the same bytes in every process
    return model.SerializeToString(deterministic=True)


def save(model: Message, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically and return the path.

    A coremltools ``Model_pb2.Model`` is accepted too: it is written through its
    own serializer, and the bytes are the same format.
    """
    return write_atomically(path, dumps(model))


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` through a temp file in the same folder, fsync, then ``os.replace``.

    An interrupted write leaves the old file (or none) in place, never half a file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SpecError("folder does not exist", where=str(folder))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
