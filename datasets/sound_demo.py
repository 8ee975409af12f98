"""A small demo sound dataset, generated at run time: five kinds of synthetic sound.

Nothing is shipped: ``make_demo_sounds`` writes seeded 16 kHz wav files into a
folder with one sub-folder per kind, so a fresh install can train, export and
run a sound classifier in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from .errors import DatasetError
from .sound import SoundDataset

__all__ = ["DEMO_KINDS", "make_demo_sounds"]

_RATE = 16000


def _tone(rng, t):
    freq = rng.uniform(300, 900)
    return np.sin(2 * np.pi * freq * t + 3 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))


def _chirp(rng, t):
    f0, f1 = rng.uniform(200, 500), rng.uniform(2500, 5000)
    period = rng.uniform(0.4, 0.8)
    phase_t = t % period
    return np.sin(2 * np.pi * (f0 * phase_t + (f1 - f0) * phase_t ** 2 / (2 * period)))


def _noise(rng, t):
    envelope = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3).astype(float)
    return rng.normal(0, 0.5, t.size) * envelope


def _clicks(rng, t):
    out = np.zeros(t.size)
    step = int(_RATE / rng.uniform(4, 12))
    decay = np.exp(-np.arange(400) / rng.uniform(30, 80))
    for start in range(int(rng.integers(0, step)), t.size - 400, step):
        out[start:start + 400] += decay * np.sin(2 * np.pi * rng.uniform(1500, 3000) * np.arange(400) / _RATE)
    return out


def _hum(rng, t):
    base = rng.uniform(90, 180)
    return sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))


#: kind name -> generator(rng, times) of one clip
DEMO_KINDS = {"tone": _tone, "chirp": _chirp, "noise": _noise, "clicks": _clicks, "hum": _hum}


def make_demo_sounds(folder: str | os.PathLike, *, clips_per_kind: int = 8, seconds: float = 2.0,
                     seed: int = 0) -> SoundDataset:
    """Write the demo dataset (``folder/<kind>/<kind>_<i>.wav``, 16 kHz PCM16) and list what it wrote.

    Parameters
    ----------
    folder : path-like
        Created if missing; existing demo files are overwritten.
    clips_per_kind : int > 0
    seconds : float > 0
        Length of each clip.
    seed : int
        Same seed, same files.

    Returns
    -------
    dataset : SoundDataset [shape=(5 * clips_per_kind,)]
    """
    if clips_per_kind < 1 or seconds <= 0:
        raise DatasetError(f"need clips_per_kind >= 1 and seconds > 0, got {clips_per_kind!r} and {seconds!r}")
    root = Path(folder)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * _RATE)) / _RATE
    paths, labels = [], []
    for kind, generate in DEMO_KINDS.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_kind):
            signal = generate(rng, t)
            signal = signal / (np.abs(signal).max() + 1e-9) * rng.uniform(0.2, 0.8)
            signal = signal + rng.normal(0, 0.01, t.size)
            path = root / kind / f"{kind}_{i}.wav"
            soundfile.write(str(path), np.clip(signal, -1, 1), _RATE, subtype="PCM_16")
            paths.append(path)
            labels.append(kind)
    return SoundDataset(paths, labels, source=f"pippin demo sounds (seed={seed}) in {root}")
