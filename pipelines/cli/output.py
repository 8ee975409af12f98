"""What a command hands back to ``main``, and how it is printed.

Results go to stdout; errors, warnings and progress to stderr. Under ``--json``
stdout carries exactly one JSON object: ``schema_version``, ``pippin_version``,
``ok``, the payload's own keys beside them, and ``error`` when something failed.

One path for everything people read on stderr: ``info`` (a stage or epoch line) and
``warn`` (``pippin: warning: ...``, each distinct message once per command) write
through ``tqdm.write``, so a progress bar on a terminal is cleared and redrawn around
the line instead of colliding with it. ``capture_library_output`` routes the library's
``logging`` records and ``warnings.warn`` calls into the same two functions while a
command runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
import warnings
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


# C0 controls but tab and newline, DEL, C1 controls, the bidirectional overrides that
# reorder what a terminal shows, and lone surrogates (bytes of a file name that is not
# UTF-8, which a UTF-8 stdout cannot even encode); one-line output escapes newlines too
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_ONE_LINE = re.compile(f"[{_CONTROLS}\n]")


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\r``, ``\\u202e``), so strings a model
    carries (names, labels, descriptions, item ids) cannot drive the terminal; newlines stay
    unless ``one_line``. Every text-mode print in ``main`` goes through it."""
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


_warned: set[str] = set()


def _line(text: str) -> None:
    text = terminal_safe(text)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        sys.stderr.write(text + "\n")
    else:
        tqdm.write(text, file=sys.stderr)
    sys.stderr.flush()


def warn(message: str) -> None:
    """A ``pippin: warning: ...`` line on stderr, once per distinct message and command."""
    if message in _warned:
        return
    _warned.add(message)
    _line(f"pippin: warning: {message}")


_quiet = [False]  # set by capture_library_output for the running command (-q)


def info(message: str) -> None:
    """A progress/status line for people, on stderr (stdout is for results); none under ``-q``."""
    if not _quiet[0]:
        _line(message)


class _Handler(logging.Handler):
    """Library log records -> ``warn`` (WARNING and above) or ``pippin: info: ...`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not end the command
            message = str(record.msg)
        if record.levelno >= logging.WARNING:
            warn(message)
        else:
            _line(f"pippin: {record.levelname.lower()}: {message}")


@contextlib.contextmanager
def capture_library_output(level: int, *, quiet: bool = False):
    """While a command runs: Pippin's log records at ``level`` and up, and Python warnings,
    reach stderr through ``warn``/``info`` only (one format, each warning once); with
    ``quiet`` (``-q``), ``info`` lines are dropped."""
    _warned.clear()
    _quiet[0] = quiet
    handler = _Handler(level)
    logger = logging.getLogger("pippin")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        with warnings.catch_warnings():  # restores showwarning and the filters afterwards
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: warn(str(message))
            yield
    finally:
        _quiet[0] = False
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
