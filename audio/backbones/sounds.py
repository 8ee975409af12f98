"""The "sounds" backbone: the aisfx 0.1.2 sound-effects CNN, run in NumPy.

A window of 101,376 samples of 44.1 kHz mono audio (2.30 s) becomes one 512-d
embedding. aisfx offers two front ends: Essentia's (used for its paper; Essentia is
not a Pippin dependency) and librosa's, which is followed here, as in the issue's
calibration. Its spectrogram is fed as ``[time, mel]``, the orientation the network and
the Essentia path use (aisfx's librosa path hands ``[mel, time]`` to its blocking, which
cuts along the wrong axis). For one block of 100 frames:

- Peak normalisation: the window is divided by its largest absolute sample (floored
  at ``PEAK_FLOOR``, so silence stays silence). aisfx divides a whole file by its
  peak; here the unit is the window, which is the same for any clip up to 2.3 s and
  is what the exported Core ML model can do on its own.
- Framing: 2048-sample frames every 1024 samples, centred (1024 zeros on each side),
  so 101,376 samples give exactly 100 frames; periodic Hann window; power of the
  2048-point real FFT (1025 bins). A shorter clip zero-padded to the window gives
  aisfx's block (whose missing frames are zero rows, as silence gives here) except
  for the one frame straddling the clip's end.
- Mel: 96 HTK-mel bands from 0 to 22,050 Hz, each filter scaled to unit sum
  (the filterbank of ``librosa.filters.mel(..., htk=True, norm=1)``, built here).
- Compression and scaling: ``log10(1e4 * mel + 1) / 9.457798957824707``.
- CNN: input ``[time 100, mel 96]``; four blocks of (3x3 conv, batchnorm, ReLU) x 2,
  the first three followed by 2x2 max pooling, channels 64/128/256/512; then the
  mean over the mel axis and the max over time.

The convolutions run as matrix products over a few windows at a time (channels-last,
im2col over the horizontal taps only, batch normalisation folded into the kernels in
float32), in a thread pool over chunks of windows with single-threaded BLAS (faster
here than one multi-threaded BLAS call, because the copies then run in parallel too).

Weights come from ``data/sounds.npz`` (see ``convert_sounds``); ``load()`` reads them once per process.
The model and its weights are CC BY 4.0, A.B. Ma and A. Lerch (``ATTRIBUTION``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft

from ..errors import AudioError
from ..parallel import map_chunks
from .convert_sounds import ATTRIBUTION, CHANNELS, LICENCE, load_weights

__all__ = ["SAMPLE_RATE", "WINDOW_SAMPLES", "EMBEDDING_DIM", "N_FRAMES", "N_MELS", "WEIGHTS_PATH", "SoundsBackbone",
           "load", "frontend", "embed", "prepare_network", "forward", "mel_filters", "hann"]

# fact: aisfx 0.1.2 aisfx/inference.py (SAMPLE_RATE 44100, SPEC_BLOCK_LENGTH 2048, SPEC_HOP_LENGTH 1024,
# MEL_BINS 96, F_MIN 0, F_MAX 22050, EMB_BLOCK_LENGTH 100 frames per embedding)
SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
N_FRAMES = 100
# Centred frames: 1 + n // HOP frames, so (N_FRAMES - 1) * HOP samples give N_FRAMES.
WINDOW_SAMPLES = (N_FRAMES - 1) * HOP  # 101376, 2.30 s
EMBEDDING_DIM = CHANNELS[-1]  # 512
# fact: aisfx 0.1.2 aisfx/spectrogram/spectrogram_librosa.py (log10(spec * 10000 + 1), htk mel, norm=1, power 2)
LOG_SCALE = 1e4
# fact: aisfx 0.1.2 aisfx/preprocessing.py (spectrogram_normalize 'original': min 0, max 9.457798957824707)
NORM_MAX = 9.457798957824707
# Peaks below this (-80 dBFS) are not raised further: a silent window stays silent.
PEAK_FLOOR = 1e-4
# The network was trained on Essentia spectrograms, whose windowing normalises the Hann window
# to an area of 2 (2 / 1024 for 2048 samples), i.e. 1/512 of the level aisfx's librosa path gives.
# Measured on the drum kits held out (benchmarks/bench_fewshot.py): a linear probe scores 0.855
# at this level against 0.782 at the librosa level (any gain from 1/1000 to 1/50 gives 0.85-0.86).
WINDOW_GAIN = 2.0 / (N_FFT / 2)
# The time positions left after three 2x2 poolings (100 -> 50 -> 25 -> 12).
N_STEPS_TEMPORAL = N_FRAMES // 8
WEIGHTS_PATH = Path(__file__).parent / "data" / "sounds.npz"

_CHUNK = 4  # windows per work item: block 1 copies 7.5 MB of columns per window


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """The mel filterbank, cached and read-only.

    HTK mel scale ``2595 log10(1 + f / 700)``; 98 edges equally spaced in mel from
    ``F_MIN`` to ``F_MAX``; triangles linear in Hz between neighbouring edges; each
    filter scaled to unit sum. Equal to ``librosa.filters.mel(sr=44100, n_fft=2048,
    n_mels=96, fmin=0, fmax=22050, htk=True, norm=1)`` (tested), without importing librosa.

    Returns
    -------
    weights : np.ndarray [shape=(1025, 96)], float32
        Power-spectrum bin (rows) to mel band (columns); each column sums to 1.
    """
    bins_hz = np.linspace(0.0, SAMPLE_RATE / 2.0, N_FFT // 2 + 1)
    top = 2595.0 * np.log10(1.0 + np.array([F_MIN, F_MAX]) / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(top[0], top[1], N_MELS + 2) / 2595.0) - 1.0)
    rising = (bins_hz - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins_hz) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights /= weights.sum(axis=1, keepdims=True)
    return _read_only(np.ascontiguousarray(weights.T, dtype=np.float32))


@lru_cache(maxsize=1)
def hann() -> np.ndarray:
    """The periodic Hann window of ``N_FFT`` samples, read-only [shape=(2048,)], float32."""
    k = np.arange(N_FFT, dtype=np.float64)
    return _read_only((0.5 - 0.5 * np.cos(2.0 * np.pi * k / N_FFT)).astype(np.float32))


def check_windows(windows) -> np.ndarray:
    """``windows`` as a float32 array [shape=(..., WINDOW_SAMPLES)], or ``AudioError``."""
    array = np.asarray(windows)
    if array.ndim == 0 or array.shape[-1] != WINDOW_SAMPLES or not np.issubdtype(array.dtype, np.floating):
        raise AudioError(f"expected float windows of {WINDOW_SAMPLES} samples at {SAMPLE_RATE} Hz "
                         f"[shape=(..., {WINDOW_SAMPLES})], got {array.dtype} shape {tuple(array.shape)}",
                         where="sounds backbone", hint="cut clips with the backbone's window_samples")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise AudioError("audio samples must be finite, found NaN or infinity", where="sounds backbone")
    return array


def _frontend_rows(flat: np.ndarray) -> np.ndarray:
    """[k, WINDOW_SAMPLES] float32 -> [k, N_FRAMES, N_MELS] float32."""
    peak = np.maximum(np.abs(flat).max(axis=1, keepdims=True), np.float32(PEAK_FLOOR))
    padded = np.zeros((flat.shape[0], WINDOW_SAMPLES + N_FFT), dtype=np.float32)
    padded[:, N_FFT // 2:N_FFT // 2 + WINDOW_SAMPLES] = flat / peak * np.float32(WINDOW_GAIN)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP] * hann()
    spectrum = scipy.fft.rfft(frames, axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    mel = power.astype(np.float32, copy=False) @ mel_filters()
    return (np.log10(mel * np.float32(LOG_SCALE) + np.float32(1.0)) * np.float32(1.0 / NORM_MAX)).astype(np.float32)


def frontend(windows) -> np.ndarray:
    """The normalised log-mel spectrogram the CNN takes, one per window.

    Parameters
    ----------
    windows : np.ndarray [shape=(..., 101376)]
        44.1 kHz mono audio windows; leading axes are a batch.

    Returns
    -------
    spectrogram : np.ndarray [shape=(..., 100, 96)], float32
        Frames (rows) by mel bands (columns), ``log10(1e4 mel + 1) / 9.4578``.

    Raises
    ------
    AudioError
        ``windows`` does not end in 101,376 samples or is not finite.
    """
    array = check_windows(windows)
    flat = array.reshape(-1, WINDOW_SAMPLES)
    out = np.empty((flat.shape[0], N_FRAMES, N_MELS), dtype=np.float32)
    for first in range(0, flat.shape[0], 16):
        out[first:first + 16] = _frontend_rows(flat[first:first + 16])
    return out.reshape(*array.shape[:-1], N_FRAMES, N_MELS)


def prepare_network(arrays: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Fold batch normalisation into the kernels, in the im2col layout.

    Parameters
    ----------
    arrays : dict of str to np.ndarray
        The members of ``sounds.npz`` (``convert_sounds.convert``).

    Returns
    -------
    layers : tuple of (kernel, bias)
        Eight convolutions: ``kernel`` [shape=(9 * c_in, c_out)] (rows ordered dy, dx,
        c_in) and ``bias`` [shape=(c_out,)], float32, read-only.
    """
    eps = np.float32(arrays["bn_eps"])
    layers = []
    for b in range(1, len(CHANNELS) + 1):
        for i in (1, 2):
            kernel = arrays[f"block{b}.conv{i}.weight"].astype(np.float32)
            gamma, beta, mean, var = (arrays[f"block{b}.bn{i}.{k}"].astype(np.float32)
                                      for k in ("gamma", "beta", "mean", "var"))
            scale = gamma / np.sqrt(var + eps)
            matrix = kernel.transpose(2, 3, 1, 0).reshape(-1, kernel.shape[0]) * scale
            layers.append((_read_only(np.ascontiguousarray(matrix)), _read_only(beta - mean * scale)))
    return tuple(layers)


def _conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3x3 convolution, padding 1, plus bias and ReLU: [k, h, w, c] -> [k, h, w, c_out].

    Only the three horizontal taps are unrolled (im2col over dx, ``3 c`` columns); the
    three vertical taps are three products over row ranges shifted by one image row,
    which copies a third of what a full im2col would (measured 2x faster for block 1).
    """
    k, h, w, c = x.shape
    padded = np.zeros((k, h + 2, w + 2, c), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = x
    cols = np.empty((k, h + 2, w, 3, c), dtype=np.float32)
    for dx in range(3):
        cols[:, :, :, dx] = padded[:, :, dx:dx + w]
    cols = cols.reshape(k, (h + 2) * w, 3 * c)
    taps = kernel.reshape(3, 3 * c, -1)
    y = np.empty((k, h * w, taps.shape[2]), dtype=np.float32)
    for i in range(k):
        np.matmul(cols[i, :h * w], taps[0], out=y[i])
        y[i] += cols[i, w:w + h * w] @ taps[1]
        y[i] += cols[i, 2 * w:2 * w + h * w] @ taps[2]
    y += bias
    np.maximum(y, 0.0, out=y)
    return y.reshape(k, h, w, -1)


def _max_pool(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, odd edges dropped: [k, h, w, c] -> [k, h // 2, w // 2, c]."""
    k, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(k, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _forward_chunk(spectrogram: np.ndarray, layers) -> np.ndarray:
    """[k, 100, 96] -> [k, 12, 512] (mean over mel, before the max over time)."""
    x = spectrogram[..., None]
    for index, (kernel, bias) in enumerate(layers):
        x = _conv_relu(x, kernel, bias)
        if index % 2 == 1 and index < len(layers) - 1:
            x = _max_pool(x)
    return x.mean(axis=2)


def _map_chunks(fn, n: int, n_threads: int | None) -> list:
    """``fn(a, b)`` over ``_CHUNK``-sized ranges of ``range(n)``, on the cores (``pippin.audio.parallel``)."""
    return map_chunks(fn, n, chunk=_CHUNK, n_threads=n_threads)


def forward(spectrogram, layers, *, temporal: bool = False, n_threads: int | None = None) -> np.ndarray:
    """The CNN on normalised log-mel spectrograms.

    Parameters
    ----------
    spectrogram : np.ndarray [shape=(n, 100, 96)]
        From ``frontend``.
    layers : tuple
        From ``prepare_network``.
    temporal : bool
        Return the 12 time positions (mean over mel) instead of their maximum.
    n_threads : int > 0, optional
        Threads (default: one per core).

    Returns
    -------
    embedding : np.ndarray [shape=(n, 512)] or [shape=(n, 12, 512)] if ``temporal``, float32
    """
    spec = np.ascontiguousarray(spectrogram, dtype=np.float32)
    n = spec.shape[0]
    out = np.empty((n, N_STEPS_TEMPORAL, EMBEDDING_DIM), dtype=np.float32)

    def run(a, b):
        out[a:b] = _forward_chunk(spec[a:b], layers)

    _map_chunks(run, n, n_threads)
    return out if temporal else out.max(axis=1)


class SoundsBackbone:
    """The "sounds" backbone behind the shared backbone interface.

    Parameters
    ----------
    arrays : dict of str to np.ndarray
        The members of a ``sounds.npz`` (``convert_sounds.convert``); ``load()`` gives
        the shipped one.

    Attributes
    ----------
    name, sample_rate, window_samples, embedding_dim, hop_samples, receptive_samples
        The interface constants (one embedding per window: both sample counts are the window's).
    licence, attribution : str
        From the weight file's metadata.
    metadata : dict
        Provenance: source package, version, wheel sha256, licence, attribution.
    layers : tuple of (kernel, bias)
        The eight convolutions with batch normalisation folded (``prepare_network``).
    """

    name = "sounds"
    sample_rate = SAMPLE_RATE
    window_samples = WINDOW_SAMPLES
    embedding_dim = EMBEDDING_DIM
    hop_samples = WINDOW_SAMPLES  # one embedding per window
    receptive_samples = WINDOW_SAMPLES

    def __init__(self, arrays: dict[str, np.ndarray]):
        arrays = dict(arrays)
        meta = arrays.pop("metadata", None)
        self.metadata = json.loads(str(meta)) if meta is not None else {}
        self.licence = self.metadata.get("licence", LICENCE)
        self.attribution = self.metadata.get("attribution", ATTRIBUTION)
        self.arrays = arrays
        self.layers = prepare_network(arrays)

    def n_steps(self, n_samples: int = WINDOW_SAMPLES) -> int:
        """Embeddings per window: always 1 (aisfx takes the maximum over the block's time)."""
        return 1

    def frontend(self, windows) -> np.ndarray:
        """See ``frontend``: [shape=(..., 101376)] -> [shape=(..., 100, 96)], float32."""
        return frontend(windows)

    def network(self, spectrogram, *, temporal: bool = False, n_threads: int | None = None) -> np.ndarray:
        """See ``forward``: [shape=(n, 100, 96)] -> [shape=(n, 512)] (or [n, 12, 512] if ``temporal``)."""
        return forward(spectrogram, self.layers, temporal=temporal, n_threads=n_threads)

    def embed(self, windows, *, temporal: bool = False, n_threads: int | None = None) -> np.ndarray:
        """Embeddings of 2.3 s windows of 44.1 kHz audio: front end then CNN.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, 101376)]
            44.1 kHz mono audio windows, float.
        temporal : bool
            Keep the network's 12 time positions instead of their maximum.
        n_threads : int > 0, optional
            Threads (default: one per core).

        Returns
        -------
        embeddings : np.ndarray [shape=(n, 1, 512)] or [shape=(n, 12, 512)] if ``temporal``, float32
            One step per window by default (aisfx's maximum over time).

        Raises
        ------
        AudioError
            ``windows`` is not ``[n, 101376]`` or is not finite.
        """
        array = check_windows(windows)
        if array.ndim != 2:
            raise AudioError(f"expected windows [shape=(n, {WINDOW_SAMPLES})], got shape {tuple(array.shape)}",
                             where="sounds backbone")
        n = array.shape[0]
        out = np.empty((n, N_STEPS_TEMPORAL, EMBEDDING_DIM), dtype=np.float32)

        def run(a, b):
            out[a:b] = _forward_chunk(_frontend_rows(array[a:b]), self.layers)

        _map_chunks(run, n, n_threads)
        return out if temporal else out.max(axis=1, keepdims=True)

    def add_to_network(self, builder, input_name: str, output_name: str, *, prefix: str = "sounds_") -> None:
        """Append the front end and the CNN as native Core ML 3 layers.

        See :func:`pippin.audio.backbones.sounds_export.add_to_network`.
        """
        from .sounds_export import add_to_network

        add_to_network(self, builder, input_name, output_name, prefix=prefix)

    def __repr__(self) -> str:
        return f"SoundsBackbone(sample_rate={SAMPLE_RATE}, window_samples={WINDOW_SAMPLES}, dim={EMBEDDING_DIM})"


@lru_cache(maxsize=4)
def _load_cached(path: str) -> SoundsBackbone:
    if not Path(path).is_file():
        raise AudioError("the sounds backbone's weight file is missing", where=path,
                         hint="reinstall pippin, or rebuild it with python -m pippin.audio.backbones.convert_sounds")
    arrays, metadata = load_weights(path)
    arrays["metadata"] = np.asarray(json.dumps(metadata, sort_keys=True))
    return SoundsBackbone(arrays)


def load(path: str | os.PathLike | None = None) -> SoundsBackbone:
    """The sounds backbone with the shipped weights (or those in ``path``), loaded once per process."""
    return _load_cached(str(WEIGHTS_PATH if path is None else Path(path).resolve()))


def embed(windows, *, temporal: bool = False, n_threads: int | None = None) -> np.ndarray:
    """``SoundsBackbone.embed`` with the shipped weights: [shape=(n, 101376)] -> [shape=(n, 1, 512)]."""
    return load().embed(windows, temporal=temporal, n_threads=n_threads)
