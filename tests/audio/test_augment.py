"""PatchAugmenter: time shifts bring in silence, masks hide runs of frames and bands, seeded runs repeat."""

from __future__ import annotations

import numpy as np
import pytest

from pippin.audio.augment import SILENCE, PatchAugmenter
from pippin.audio.frontend import LOG_OFFSET


def _patches(n=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 1, 1, 96, 64)).astype(np.float32)


def test_silence_is_the_log_mel_of_zeros():
    assert SILENCE == pytest.approx(np.log(LOG_OFFSET))


def test_shift_only_moves_frames_and_fills_with_silence():
    x = _patches()
    y = PatchAugmenter(max_shift=5, time_mask=0, band_mask=0).augment(x, np.random.default_rng(3))
    assert y.shape == x.shape and y.dtype == np.float32
    for a, b in zip(x[:, 0, 0], y[:, 0, 0]):
        shift = next(s for s in range(-5, 6) if np.array_equal(np.roll(a, s, axis=0)[max(s, 0):96 + min(s, 0)],
                                                                 b[max(s, 0):96 + min(s, 0)]))
        edge = b[:shift] if shift > 0 else b[96 + shift:]
        assert np.all(edge == np.float32(SILENCE))


def test_masks_hide_one_run_of_frames_and_one_of_bands_with_the_patch_mean():
    x = _patches(n=40)
    y = PatchAugmenter(max_shift=0, time_mask=6, band_mask=4).augment(x, np.random.default_rng(1))
    changed = y != x
    for a, c, b in zip(x[:, 0, 0], changed[:, 0, 0], y[:, 0, 0]):
        frames, bands = np.flatnonzero(c.all(axis=1)), np.flatnonzero(c.all(axis=0))
        assert len(frames) <= 6 and len(bands) <= 4
        if len(frames):
            assert np.all(np.diff(frames) == 1)
        assert np.allclose(b[c], a.mean(), atol=1e-6)  # every hidden value is the patch mean
        rows_or_cols = np.zeros_like(c)
        rows_or_cols[frames, :] = True
        rows_or_cols[:, bands] = True
        assert np.array_equal(c, rows_or_cols)
    assert changed.any()


def test_same_generator_same_batch_and_input_untouched():
    x = _patches()
    keep = x.copy()
    aug = PatchAugmenter()
    a = aug({"p": x}, np.random.default_rng(9))["p"]
    b = aug({"p": x}, np.random.default_rng(9))["p"]
    assert np.array_equal(a, b) and np.array_equal(x, keep)
    assert not np.array_equal(a, aug({"p": x}, np.random.default_rng(10))["p"])


def test_nothing_to_do_returns_a_copy():
    x = _patches()
    y = PatchAugmenter(0, 0, 0).augment(x, np.random.default_rng(0))
    assert np.array_equal(x, y) and y is not x
