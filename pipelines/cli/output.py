"""What a command hands back to ``main``, and how it is printed.

Results go to stdout; errors, warnings and progress to stderr. Under ``--json``
stdout carries exactly one JSON object: ``schema_version``, ``pippin_version``,
``ok``, the payload's own keys beside them, and ``error`` when something failed.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...spec import __version__ as PIPPIN_VERSION
from .exit_codes import OK

SCHEMA_VERSION = 1


@dataclass
class Result:
    """A command's answer: ``payload`` for ``--json``, ``text`` for people, ``code`` to exit with."""

    payload: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    code: int = OK


def _plain(value: Any) -> Any:
    """Turn NumPy scalars/arrays and paths into JSON-ready values (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def envelope(payload: dict[str, Any], *, ok: bool, error: dict | None = None) -> dict:
    """The one JSON object a ``--json`` command prints."""
    obj = {"schema_version": SCHEMA_VERSION, "pippin_version": PIPPIN_VERSION, "ok": ok}
    obj.update(_plain(payload))
    if error is not None:
        obj["error"] = _plain(error)
    return obj


def print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    """A ``pippin: warning: ...`` line on stderr."""
    sys.stderr.write(f"pippin: warning: {message}\n")


def info(message: str) -> None:
    """A progress/status line for people, on stderr (stdout is for results)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
