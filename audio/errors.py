"""The error ``pippin.audio`` raises for bad user input."""

from ..spec.errors import PippinError

__all__ = ["AudioError"]


class AudioError(PippinError, ValueError):
    """An audio file, waveform or sound dataset is unusable."""
