"""The VGGish log-mel front end, as Core ML's ``SoundAnalysisPreprocessing`` (vggish) defines it.

One 975 ms window of 16 kHz mono audio (15,600 samples) becomes one log-mel
patch ``[1, 96, 64]``: 400-sample frames every 160 samples (partial frames
dropped), a periodic Hann window, the magnitude of a 512-point real FFT, 64 mel
bands from 125 Hz to 7,500 Hz (HTK mel scale, triangles linear in mel, DC bin
zeroed, no area normalisation), then ``ln(mel + 0.01)``.

This is written here rather than taken from librosa because librosa frames
differently (centre padding: 95 frames, not 96) and its mel matrix differs from
the reference by up to 4e-3. The work per window is one real FFT and one matrix
product; both run in float32 over all frames of a clip at once, and a thread
pool spreads clips over cores (scipy.fft and BLAS release the GIL).

This module is pure numerics (NumPy + scipy.fft): the runtime
(``pippin.pipelines.runtime.sound_analysis``), the trainer and the benchmarks all use it.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from .errors import AudioError
from .parallel import one_blas_thread

__all__ = [
    "SAMPLE_RATE",
    "PATCH_SAMPLES",
    "PATCH_FRAMES",
    "N_MELS",
    "periodic_hann",
    "mel_matrix",
    "window_starts",
    "vggish_log_mel",
    "log_mel_patches",
]

# fact: tensorflow/models:research/audioset/vggish/vggish_params.py (SAMPLE_RATE, STFT 25 ms / 10 ms,
# 64 mel bins, MEL_MIN_HZ 125, MEL_MAX_HZ 7500, LOG_OFFSET 0.01, 96 frames per example)
SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz
# fact: tensorflow/models:research/audioset/vggish/mel_features.py (fft_length = next power of 2 >= window)
FFT_LENGTH = 512
N_BINS = FFT_LENGTH // 2 + 1
N_MELS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
# Core ML's SoundAnalysisPreprocessing input: 975 ms = exactly 96 frames of 400 every 160.
PATCH_SAMPLES = FRAME_LENGTH + (PATCH_FRAMES - 1) * HOP_LENGTH  # 15600
# fact: tensorflow/models:research/audioset/vggish/mel_features.py (HTK mel: 1127 ln(1 + f / 700))
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0

def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@lru_cache(maxsize=8)
def periodic_hann(n_samples: int = FRAME_LENGTH) -> np.ndarray:
    """The periodic Hann window ``0.5 - 0.5 cos(2 pi k / n)``, cached and read-only.

    Returns
    -------
    window : np.ndarray [shape=(n_samples,)], float32
    """
    k = np.arange(n_samples, dtype=np.float64)
    return _read_only((0.5 - 0.5 * np.cos(2.0 * np.pi * k / n_samples)).astype(np.float32))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return _MEL_HIGH_Q * np.log1p(np.asarray(hz, dtype=np.float64) / _MEL_BREAK_HZ)


@lru_cache(maxsize=8)
def mel_matrix(
    *, n_mels: int = N_MELS, n_bins: int = N_BINS, sample_rate: int = SAMPLE_RATE,
    fmin: float = MEL_MIN_HZ, fmax: float = MEL_MAX_HZ,
) -> np.ndarray:
    """The mel filter bank mapping FFT-magnitude bins to mel bands, cached and read-only.

    Triangles are linear in HTK mel, their peaks 1 (no area normalisation), and the
    DC bin contributes nothing. Built in float64, stored in float32.

    Returns
    -------
    weights : np.ndarray [shape=(n_bins, n_mels)], float32
    """
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return _read_only(weights.astype(np.float32))


def window_starts(n_samples: int, *, overlap: float = 0.5, window: int = PATCH_SAMPLES) -> np.ndarray:
    """First sample of each analysis window of a clip (the last one may run past the end).

    Windows are ``window`` samples long and start every ``round(window * (1 - overlap))``
    samples; a clip shorter than one window gets one window (zero-padded later), and
    a tail that a window would cover only partly gets one more window, zero-padded.

    Returns
    -------
    starts : np.ndarray [shape=(n_windows,)], int64
    """
    if not 0.0 <= overlap < 1.0:
        raise AudioError(f"overlap must be in [0, 1), got {overlap!r}")
    hop = max(1, int(round(window * (1.0 - overlap))))
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    n_windows = 1 + math.ceil((n_samples - window) / hop)
    return np.arange(n_windows, dtype=np.int64) * hop


# Mel bands per matrix product: each group of adjacent bands weighs only a narrow run of
# FFT bins, so 4 small products do a quarter of the dense product's work (measured:
# 32 us instead of 134 us per 4 clips; the dense product was a quarter of the front end).
_BAND_GROUPS = 4


@lru_cache(maxsize=1)
def _mel_band_bins() -> tuple[slice, tuple[tuple[slice, slice, np.ndarray], ...]]:
    """The FFT bins some mel band weighs (4..240 at 16 kHz), and the filter bank cut into band groups.

    Returns
    -------
    bins : slice
        The used bins; the others get weight 0 in every band, so skipping them changes nothing.
    groups : tuple of (bin_rows, band_columns, weights)
        ``weights`` [shape=(n_group_bins, n_group_bands)] is the only non-zero block of the
        bank for those bands; ``bin_rows`` indexes the used-bin magnitudes.
    """
    weights = mel_matrix()
    used = np.flatnonzero(weights.any(axis=1))
    bins = slice(int(used[0]), int(used[-1]) + 1)
    bank = weights[bins]
    groups = []
    for bands in np.array_split(np.arange(bank.shape[1]), _BAND_GROUPS):
        rows = np.flatnonzero(bank[:, bands].any(axis=1))
        rows_slice, bands_slice = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(bands[0]), int(bands[-1]) + 1)
        groups.append((rows_slice, bands_slice, _read_only(np.ascontiguousarray(bank[rows_slice, bands_slice]))))
    return bins, tuple(groups)


def _log_mel_group(frames: np.ndarray, buffer: np.ndarray, magnitude: np.ndarray, out: np.ndarray) -> None:
    """Write the log-mel of a few clips' ``frames`` [shape=(k, 96, 400)] into ``out`` [shape=(k * 96, 64)].

    ``buffer`` [shape=(k, 96, 512)] is reused scratch whose last 112 columns stay zero;
    ``magnitude`` [shape=(k * 96, n_used_bins)] is reused scratch.
    """
    import scipy.fft  # here, not at import: audio reading (``pippin.audio.io``) imports this module, and a forked
    # reader (``pipelines.cli.audio_ahead``) starts before scipy.fft's ~0.1 s import is needed

    bins, groups = _mel_band_bins()
    np.multiply(frames, periodic_hann(FRAME_LENGTH), out=buffer[:, :, :FRAME_LENGTH])
    spectrum = scipy.fft.rfft(buffer.reshape(-1, FFT_LENGTH), axis=-1, workers=1)
    np.abs(spectrum[:, bins], out=magnitude)
    for rows, bands, weights in groups:
        np.matmul(magnitude[:, rows], weights, out=out[:, bands])
    out += np.float32(LOG_OFFSET)
    np.log(out, out=out)


def _frames_of_clips(clips: np.ndarray) -> np.ndarray:
    """The 96 overlapping 400-sample frames of each contiguous 15,600-sample window, as one view.

    Returns
    -------
    frames : np.ndarray [shape=(n_clips, 96, 400)], read-only view of ``clips``
    """
    row, step = clips.strides
    return np.lib.stride_tricks.as_strided(
        clips, shape=(clips.shape[0], PATCH_FRAMES, FRAME_LENGTH), strides=(row, HOP_LENGTH * step, step),
        writeable=False,
    )


# Clips per FFT call: a few clips amortize the per-call overhead while the buffers stay in
# cache; measured here 1 clip 6.9k, 4 clips 7.7k, 8 clips 7.9k audio s/s, one giant batch 2-8x slower.
_GROUP = 4


def _patches_of_range(clips: np.ndarray, out: np.ndarray) -> None:
    """[n, 15600] -> out [n, 1, 96, 64], a few clips at a time through reused buffers."""
    bins, _ = _mel_band_bins()
    buffer = np.zeros((_GROUP, PATCH_FRAMES, FFT_LENGTH), dtype=np.float32)
    magnitude = np.empty((_GROUP * PATCH_FRAMES, bins.stop - bins.start), dtype=np.float32)
    frames = _frames_of_clips(clips)
    flat_out = out.reshape(-1, N_MELS)
    for first in range(0, clips.shape[0], _GROUP):
        k = min(_GROUP, clips.shape[0] - first)
        rows = slice(first * PATCH_FRAMES, (first + k) * PATCH_FRAMES)
        _log_mel_group(frames[first:first + k], buffer[:k], magnitude[:k * PATCH_FRAMES], flat_out[rows])


def _default_workers(n_clips: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_clips // 8 or 1, cpus))  # the CPUs this process may use (taskset honoured)


def vggish_log_mel(samples, *, workers: int | None = None) -> np.ndarray:
    """Log-mel patches of 975 ms windows: the ``SoundAnalysisPreprocessing`` (vggish) computation.

    Parameters
    ----------
    samples : np.ndarray [shape=(..., 15600)]
        16 kHz mono audio windows; leading axes are a batch.
    workers : int > 0, optional
        Threads to spread the windows over (default: one per core, fewer for small batches).

    Returns
    -------
    patches : np.ndarray [shape=(..., 1, 96, 64)], float32
        ``ln(mel + 0.01)`` per frame (rows) and mel band (columns).

    Raises
    ------
    AudioError
        ``samples`` does not end in 15,600 samples or is not finite.
    """
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 0 or array.shape[-1] != PATCH_SAMPLES:
        raise AudioError(f"expected windows of {PATCH_SAMPLES} samples [shape=(..., {PATCH_SAMPLES})], "
                         f"got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise AudioError("audio samples must be finite, found NaN or infinity")
    lead = array.shape[:-1]
    flat = np.ascontiguousarray(array.reshape(-1, PATCH_SAMPLES))
    n_clips = flat.shape[0]
    out = np.empty((n_clips, 1, PATCH_FRAMES, N_MELS), dtype=np.float32)
    n_workers = max(1, min(workers if workers is not None else _default_workers(n_clips), n_clips))
    with one_blas_thread():
        if n_workers == 1:
            _patches_of_range(flat, out)
        else:
            bounds = np.linspace(0, n_clips, n_workers + 1).astype(int)
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                jobs = [pool.submit(_patches_of_range, flat[a:b], out[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
                for job in jobs:
                    job.result()
    return out.reshape(*lead, 1, PATCH_FRAMES, N_MELS)


def log_mel_patches(
    waveform, *, sample_rate: int = SAMPLE_RATE, overlap: float = 0.5, workers: int | None = None,
) -> np.ndarray:
    """Cut a clip into 975 ms windows and compute each window's log-mel patch.

    Parameters
    ----------
    waveform : np.ndarray [shape=(n_samples,)]
        Mono audio at 16 kHz (resample first: see ``pippin.audio.io``).
    sample_rate : int
        Must be 16000; stated so a wrong rate fails loudly instead of silently.
    overlap : float in [0, 1)
        Fraction of a window shared with the next one (0.5: a window every 487.5 ms).
    workers : int > 0, optional
        Threads (default: one per core).

    Returns
    -------
    patches : np.ndarray [shape=(n_windows, 1, 96, 64)], float32
        One patch per start in ``window_starts(n_samples, overlap=overlap)``;
        windows running past the end (or a clip shorter than 975 ms) are zero-padded.
    """
    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"the VGGish front end takes {SAMPLE_RATE} Hz audio, got sample_rate={sample_rate!r}",
                         hint="resample first, e.g. with pippin.audio.io.read_audio")
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"expected a mono waveform [shape=(n_samples,)], got shape {tuple(wave.shape)}")
    return vggish_log_mel(cut_windows(wave, overlap=overlap), workers=workers)


def cut_windows(waveform: np.ndarray, *, overlap: float = 0.5) -> np.ndarray:
    """The 975 ms windows of a mono 16 kHz clip, zero-padded at the end.

    Returns
    -------
    windows : np.ndarray [shape=(n_windows, 15600)], float32
    """
    wave = np.asarray(waveform, dtype=np.float32)
    starts = window_starts(wave.shape[0], overlap=overlap)
    needed = int(starts[-1]) + PATCH_SAMPLES
    if needed > wave.shape[0]:
        wave = np.concatenate([wave, np.zeros(needed - wave.shape[0], dtype=np.float32)])
    view = np.lib.stride_tricks.sliding_window_view(wave, PATCH_SAMPLES)
    return view[starts]
