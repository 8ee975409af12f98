"""Reading and writing ``.mlmodel`` files.

``load`` turns every way a file can be unreadable into one ``SpecError`` naming
the file; ``save`` is atomic (temp file in the same folder, fsync, ``os.replace``)
so an interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

from google.protobuf.message import DecodeError, Message

from ._proto.Model_pb2 import Model
from .errors import SpecError
from .links import read_model_bytes

__all__ = ["load", "save", "loads", "dumps", "write_atomically", "check_output_path"]


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
        The file is missing, unreadable, not a regular file (a device, a FIFO), larger
        than ``links.MAX_MODEL_BYTES``, empty, truncated or not a Core ML model.
    """
    path = Path(path)
    if path.is_dir():
        inner = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
        if not inner.is_file():
            raise SpecError("is a folder, expected a .mlmodel file", where=str(path))
        path = inner
    return loads(read_model_bytes(path), where=str(path))


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


def check_output_path(path: str | os.PathLike) -> Path:
    """Check, before any long work, that a model can be written to ``path``; return it.

    Raises
    ------
    SpecError
        One line naming the path: its folder is missing or not a folder, the path is an
        existing folder, or the folder (or an existing file) cannot be written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SpecError("is a folder, expected the path of a model file to write", where=str(path),
                        hint="give a file name, e.g. DIR/model.mlmodel")
    if not folder.exists():
        raise SpecError("folder does not exist", where=str(folder))
    if not folder.is_dir():
        raise SpecError("is not a folder, so no model can be written inside it", where=str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError("folder is not writable", where=str(folder))
    if path.exists() and not os.access(path, os.W_OK):
        raise SpecError("file is not writable", where=str(path))
    return path


def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it the old way (briefly sets it; put back at once)
    os.umask(mask)
    return mask


def _remove_stale_temps(folder: Path, name: str) -> int:
    """Remove ``.NAME.<pid>.*.tmp`` files whose writing process no longer runs (a save killed
    mid-write) and pid-less ones from older Pippin versions untouched for an hour; return the count."""
    removed = 0
    prefix = f".{name}."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        middle = entry.name[len(prefix):-len(".tmp")]
        pid_text, _, rest = middle.partition(".")
        try:
            if pid_text.isdigit() and rest:
                pid = int(pid_text)
                if pid == os.getpid() or _alive(pid):
                    continue
            elif time.time() - entry.stat(follow_symlinks=False).st_mtime < 3600:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` through a temp file in the same folder, fsync, then ``os.replace``.

    An interrupted write leaves the old file (or none) in place, never half a file; the
    temp file is named ``.NAME.<pid>.<random>.tmp`` and the next save to ``NAME`` removes
    those left by processes that were killed. The file keeps the permissions of the file
    it replaces (a new file gets ``0666`` less the umask, as ``open`` would).

    Raises
    ------
    SpecError
        One line naming the path: a missing or read-only folder, an existing folder as
        the path, a full disk or any other write error.
    """
    path = check_output_path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as exc:
        raise SpecError(f"cannot write model file: {exc.strerror or exc}", where=str(path)) from None
    _remove_stale_temps(folder, path.name)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise SpecError(f"cannot write model file: {exc.strerror or exc}", where=str(path)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path
