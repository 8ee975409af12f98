"""The error every Pippin package raises for bad user input.

``PippinError`` lives here, in the bottom layer, so every package can subclass it
without importing anything above ``spec``. Each error carries ``where`` (a file,
then a location inside it) and ``hint``; the one-line CLI text and the JSON error
object are both rendered from those attributes.
"""

from __future__ import annotations

__all__ = ["PippinError", "SpecError"]


class PippinError(Exception):
    """Base class of every error Pippin raises for bad input.

    Parameters
    ----------
    message : str
        What was found and what was expected; one sentence, no trailing period.
    where : str, optional
        The file, then the location inside it, e.g.
        ``"m.mlmodel: neuralNetwork.layers[3](conv1).convolution.kernelSize"``.
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = str(message)
        self.where = None if where is None else str(where)
        self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict:
        """The ``error`` object of the CLI's ``--json`` output."""
        return {
            "type": type(self).__name__,
            "where": self.where,
            "message": self.message,
            "hint": self.hint,
        }


class SpecError(PippinError, ValueError):
    """A model file or spec that cannot be read, or that breaks the format's rules."""
