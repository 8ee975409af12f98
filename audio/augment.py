"""Training-time augmentation of log-mel patches: random time shifts and SpecAugment-style masks.

Why: small spoken-word and sound datasets (FSDD has ~45 takes per digit and
speaker) are memorised within a few epochs; moving the event in time and
hiding a few frames or bands makes the CNN use the whole pattern rather than
one cue. Everything happens on the already computed patches (no audio is
re-read), vectorized over the mini-batch, driven by the trainer's seeded
generator so a seeded run stays reproducible.

Patches are VGGish log-mel values ``ln(mel + 0.01)``: silence is ``ln(0.01)``,
which is what a time shift brings in at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frontend import LOG_OFFSET

__all__ = ["PatchAugmenter"]

SILENCE = float(np.log(LOG_OFFSET))


@dataclass(frozen=True)
class PatchAugmenter:
    """Augment a mini-batch of patches; pass as ``fit_network(..., augment=PatchAugmenter())``.

    Parameters
    ----------
    max_shift : int >= 0
        Frames (10 ms each) a patch moves left or right, uniformly; vacated frames are silence.
    time_mask : int >= 0
        Longest run of frames set to the patch mean (one run per patch, length uniform in [0, time_mask]).
    band_mask : int >= 0
        Longest run of mel bands set to the patch mean (one run per patch).
    """

    max_shift: int = 4
    time_mask: int = 6
    band_mask: int = 4

    def describe(self) -> dict:
        """The settings, for a model's metadata."""
        return {"max_shift_frames": self.max_shift, "time_mask_frames": self.time_mask, "band_mask_bands": self.band_mask}

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict:
        """``batch`` maps input names to ``[n, ..., frames, bands]`` arrays; returns new arrays."""
        return {name: self.augment(x, rng) for name, x in batch.items()}

    def augment(self, patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """patches [shape=(n, ..., frames, bands)] -> augmented copy of the same shape and dtype."""
        x = np.array(patches, copy=True)
        n, frames, bands = x.shape[0], x.shape[-2], x.shape[-1]
        flat = x.reshape(n, -1, frames, bands)
        if self.max_shift:
            shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=n)
            source = np.arange(frames)[None, :] - shifts[:, None]          # [n, frames]
            outside = (source < 0) | (source >= frames)
            gathered = np.take_along_axis(flat, np.clip(source, 0, frames - 1)[:, None, :, None], axis=2)
            gathered[np.broadcast_to(outside[:, None, :, None], gathered.shape)] = SILENCE
            flat = gathered
        means = flat.mean(axis=(-2, -1), keepdims=True)
        for size, axis_len, axis in ((self.time_mask, frames, -2), (self.band_mask, bands, -1)):
            if not size:
                continue
            width = rng.integers(0, size + 1, size=n)
            start = rng.integers(0, axis_len - width + 1)
            position = np.arange(axis_len)[None, :]
            hidden = (position >= start[:, None]) & (position < (start + width)[:, None])  # [n, axis_len]
            shape = (n, 1, axis_len, 1) if axis == -2 else (n, 1, 1, axis_len)
            flat = np.where(hidden.reshape(shape), means, flat)
        return flat.reshape(x.shape).astype(x.dtype, copy=False)

