"""Where a ``linkedModel`` points, and reading model files safely.

One set of rules for the validator and the runtime:

- a link resolves only to a **regular file** inside the linking model's folder, or
  inside a folder the caller allows explicitly (``allowed``); the check is made on
  the resolved path, so ``../``, absolute paths and symlinks that leave those folders
  are refused;
- a file larger than ``MAX_MODEL_BYTES`` is refused before it is read, and so is
  anything that is not a regular file (``/dev/zero``, a FIFO, a folder);
- a chain of links is at most ``MAX_LINK_DEPTH`` deep and may not come back to a
  file already in it (the error names the cycle).

``LinkedModelFile.linkedModelSearchPath`` is a ``:``-separated list of folders, each
absolute or relative to the linking model's folder (empty means ``.``); Apple's
bundle placeholders (entries starting with ``$``) have no meaning on Linux and are
skipped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from .errors import SpecError

__all__ = ["MAX_MODEL_BYTES", "MAX_LINK_DEPTH", "LinkError", "resolve_link", "read_model_bytes",
           "check_chain"]

#: the largest model file Pippin reads (the biggest model it writes is about 27 MB)
MAX_MODEL_BYTES = 1 << 30
#: how many linked models may follow one another
MAX_LINK_DEPTH = 8


class LinkError(SpecError):
    """A linked model that cannot be followed: outside its folder, not a regular file, a cycle..."""


def read_model_bytes(path: str | os.PathLike, *, max_bytes: int | None = None, where: str | None = None) -> bytes:
    """The bytes of a model file, refusing anything but a regular file of at most ``max_bytes``
    (default ``MAX_MODEL_BYTES``).

    Raises
    ------
    SpecError
        Missing, not a regular file (device, FIFO, socket, folder), too large, or unreadable.
    """
    path = Path(path)
    where = str(path) if where is None else where
    max_bytes = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError("no such file", where=where) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", where=where) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"is {_file_kind(info.st_mode)}, expected a regular .mlmodel file", where=where)
        if info.st_size > max_bytes:
            raise SpecError(f"is {info.st_size} bytes, more than the {max_bytes} bytes a model file may have",
                            where=where)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 24, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # the file grew while we read it
                raise SpecError(f"is more than the {max_bytes} bytes a model file may have", where=where)
        return b"".join(chunks)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", where=where) from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    for root in roots:
        try:
            path.relative_to(root)
            return True
        except ValueError:
            continue
    return False


def resolve_link(link_file, *, folder: Path, allowed: Iterable[str | os.PathLike] = (),
                 field: str = "linkedModel.linkedModelFile") -> Path:
    """The resolved path of the file a ``LinkedModelFile`` message names.

    Parameters
    ----------
    link_file : LinkedModelFile
        ``model.linkedModel.linkedModelFile``.
    folder : Path
        The folder of the linking model (links resolve inside it).
    allowed : iterable of path
        Further folders the caller allows links to resolve into.

    Raises
    ------
    LinkError
        No name, a name that leaves the allowed folders, or no such regular file.
    """
    name = link_file.linkedModelFileName.defaultValue
    if not name:
        raise LinkError("linkedModelFileName is empty, expected a file name",
                        where=f"{field}.linkedModelFileName")
    if "\x00" in name:
        raise LinkError(f"linkedModelFileName {name!r} contains a NUL character",
                        where=f"{field}.linkedModelFileName")
    roots = [Path(os.path.realpath(folder))] + [Path(os.path.realpath(p)) for p in allowed]
    entries = link_file.linkedModelSearchPath.defaultValue.split(":")
    searched, outside = [], []
    for entry in entries:
        if entry.startswith("$") or "\x00" in entry:
            continue
        base = Path(entry or ".")
        base = base if base.is_absolute() else Path(folder) / base
        candidate = Path(os.path.realpath(base / name))
        searched.append(str(base))
        if not _inside(candidate, roots):
            outside.append(str(candidate))
            continue
        if os.path.lexists(candidate):
            return candidate
    if outside:
        raise LinkError(
            f"linked model file {name!r} resolves to {outside[0]!r}, outside the linking model's folder "
            f"{str(roots[0])!r}" + (f" and the allowed search paths {[str(r) for r in roots[1:]]}"
                                    if len(roots) > 1 else ""),
            where=f"{field}.linkedModelFileName",
            hint="put the linked file beside the model, or allow its folder explicitly",
        )
    raise LinkError(
        f"linked model file {name!r} not found (searched: {searched or ['(no usable entries)']})",
        where=f"{field}.linkedModelFileName",
        hint="put the file beside the model or fix linkedModelSearchPath",
    )


def check_chain(chain: list[Path], target: Path) -> None:
    """Refuse ``target`` if it is already in ``chain`` (a cycle) or the chain is too deep.

    ``chain`` holds the resolved paths of the models that link, outermost first.
    """
    if target in chain:
        names = [p.name for p in chain[chain.index(target):]] + [target.name]
        raise LinkError(f"linked models form a cycle: {' -> '.join(names)}",
                        where="linkedModel.linkedModelFile.linkedModelFileName")
    if len(chain) >= MAX_LINK_DEPTH:
        raise LinkError(f"linked models are nested more than {MAX_LINK_DEPTH} deep "
                        f"({' -> '.join(p.name for p in chain)} -> {target.name})",
                        where="linkedModel.linkedModelFile.linkedModelFileName")
