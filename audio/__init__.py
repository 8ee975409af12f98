"""``pippin.audio``: the VGGish front end, audio reading, and the sound-classifier trainer.

``SoundClassifier`` is imported on first use, so that the runtime can import the
pure feature code (``pippin.audio.frontend``) without pulling in the trainer.
"""

from .errors import AudioError
from .frontend import log_mel_patches, vggish_log_mel, window_starts

__all__ = ["AudioError", "SoundClassifier", "log_mel_patches", "vggish_log_mel", "window_starts"]


def __getattr__(name):
    if name == "SoundClassifier":
        from .classifier import SoundClassifier

        return SoundClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
