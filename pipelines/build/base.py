"""What every builder shares: a finished spec on demand, a runnable model, an atomic save."""

from __future__ import annotations

import os
from pathlib import Path

from ...spec import Model
from ...spec import io as spec_io

__all__ = ["SpecBuilder"]


class SpecBuilder:
    """Base of the builders: subclasses implement ``to_spec()``, which returns a new ``Model`` each call."""

    def to_spec(self) -> Model:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @property
    def spec(self) -> Model:
        """A new copy of the spec built so far (editing it leaves the builder as it was)."""
        return self.to_spec()

    def model(self):
        """The built model, loaded by the runtime and ready to predict."""
        from ..runtime.model import load  # the builder checks its output with the runtime, lazily

        return load(self.to_spec())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (a temporary file, then a rename)."""
        return spec_io.save(self.to_spec(), path)
