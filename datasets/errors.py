"""The error ``pippin.datasets`` raises for bad user input."""

from ..spec.errors import PippinError

__all__ = ["DatasetError"]


class DatasetError(PippinError, ValueError):
    """A dataset folder or table is malformed."""
