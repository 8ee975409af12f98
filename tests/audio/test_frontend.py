"""The VGGish front end against an independent float64 implementation of the reference definition."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from pippin.audio import AudioError, log_mel_patches, vggish_log_mel, window_starts
from pippin.audio.frontend import mel_matrix, periodic_hann
from pippin.audio.preprocessing_spec import preprocessing_spec
from pippin.pipelines import load


def _reference_mel_weights() -> np.ndarray:
    """HTK-mel triangles over the 257 bins of a 512-point FFT at 16 kHz, built band by band."""
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bin_mels = to_mel(np.arange(257) * 8000.0 / 256)
    low, high = to_mel(125.0), to_mel(7500.0)
    edges = [low + (high - low) * i / 65 for i in range(66)]
    weights = np.zeros((257, 64))
    for band in range(64):
        left, centre, right = edges[band], edges[band + 1], edges[band + 2]
        for b in range(1, 257):  # DC bin stays zero
            m = bin_mels[b]
            if left < m <= centre:
                weights[b, band] = (m - left) / (centre - left)
            elif centre < m < right:
                weights[b, band] = (right - m) / (right - centre)
    return weights


WEIGHTS = _reference_mel_weights()


def reference_patch(window: np.ndarray) -> np.ndarray:
    """float64, frame by frame: 400-sample frames every 160, periodic Hann, |rfft 512|, mel, ln(+0.01)."""
    x = np.asarray(window, dtype=np.float64)
    hann = np.array([0.5 - 0.5 * np.cos(2 * np.pi * k / 400) for k in range(400)])
    rows = []
    start = 0
    while start + 400 <= len(x):
        padded = np.zeros(512)
        padded[:400] = x[start:start + 400] * hann
        rows.append(np.log(np.abs(np.fft.fft(padded))[:257] @ WEIGHTS + 0.01))
        start += 160
    return np.array(rows)[np.newaxis]


def _fsdd_16k(path) -> np.ndarray:
    import soxr

    data, rate = soundfile.read(str(path), dtype="float64")
    return soxr.resample(data, rate, 16000)


def test_constants_match_reference():
    assert np.allclose(periodic_hann(), [0.5 - 0.5 * np.cos(2 * np.pi * k / 400) for k in range(400)], atol=1e-7)
    assert np.allclose(mel_matrix(), WEIGHTS, atol=1e-6)
    assert not mel_matrix().flags.writeable and not periodic_hann().flags.writeable
    assert mel_matrix()[0].max() == 0.0


def test_one_window_has_exactly_96_frames():
    assert vggish_log_mel(np.zeros(15600, np.float32)).shape == (1, 96, 64)
    assert np.allclose(vggish_log_mel(np.zeros(15600, np.float32)), np.log(0.01))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_audio_matches_reference(seed):
    rng = np.random.default_rng(seed)
    windows = (rng.uniform(-1, 1, (3, 15600)) * rng.uniform(0.001, 1, (3, 1))).astype(np.float32)
    got = vggish_log_mel(windows)
    assert got.dtype == np.float32 and got.shape == (3, 1, 96, 64)
    for i in range(3):
        np.testing.assert_allclose(got[i], reference_patch(windows[i]), atol=1e-4, rtol=0)


def test_real_fsdd_audio_matches_reference(fsdd_dir):
    wave = _fsdd_16k(fsdd_dir / "7_jackson_12.wav").astype(np.float32)
    got = log_mel_patches(wave, overlap=0.5)
    padded = np.concatenate([wave, np.zeros(15600, np.float32)])
    for i, start in enumerate(window_starts(len(wave), overlap=0.5)):
        np.testing.assert_allclose(got[i], reference_patch(padded[start:start + 15600]), atol=1e-4, rtol=0)


def test_preprocessing_model_matches_reference(fsdd_dir):
    model = load(preprocessing_spec())
    rng = np.random.default_rng(3)
    speech = _fsdd_16k(fsdd_dir / "3_theo_20.wav")[:15600]
    windows = np.stack([
        rng.normal(0, 0.3, 15600),
        np.concatenate([speech, np.zeros(15600 - len(speech))]),
    ]).astype(np.float32)
    batch = model.predict_batch({"audioSamples": windows})["preprocessedAudio"]
    assert batch.shape == (2, 1, 96, 64)
    for i in range(2):
        np.testing.assert_allclose(batch[i], reference_patch(windows[i]), atol=1e-4, rtol=0)
    single = model.predict({"audioSamples": windows[1]})["preprocessedAudio"]
    np.testing.assert_array_equal(single, batch[1])


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batch_equals_loop_over_items(workers):
    rng = np.random.default_rng(7)
    windows = rng.uniform(-1, 1, (2, 5, 15600)).astype(np.float32)
    batch = vggish_log_mel(windows, workers=workers)
    assert batch.shape == (2, 5, 1, 96, 64)
    loop = np.stack([np.stack([vggish_log_mel(w) for w in row]) for row in windows])
    np.testing.assert_array_equal(batch, loop)
    assert not np.allclose(batch[0, 0], batch[0, 1])


@pytest.mark.parametrize(("n_samples", "overlap", "expected"), [
    (100, 0.5, [0]),
    (15600, 0.5, [0]),
    (15601, 0.5, [0, 7800]),
    (31200, 0.5, [0, 7800, 15600]),
    (31200, 0.0, [0, 15600]),
    (40000, 0.75, [0, 3900, 7800, 11700, 15600, 19500, 23400, 27300]),
])
def test_window_starts(n_samples, overlap, expected):
    assert window_starts(n_samples, overlap=overlap).tolist() == expected


def test_patches_cover_the_clip_and_pad_the_tail():
    rng = np.random.default_rng(1)
    wave = rng.uniform(-1, 1, 20000).astype(np.float32)
    patches = log_mel_patches(wave, overlap=0.5)
    assert patches.shape == (2, 1, 96, 64)
    np.testing.assert_array_equal(patches[0], vggish_log_mel(wave[:15600]))
    tail = np.concatenate([wave[7800:], np.zeros(15600 - (20000 - 7800), np.float32)])
    np.testing.assert_array_equal(patches[1], vggish_log_mel(tail))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: vggish_log_mel(np.zeros(1000)), "15600 samples"),
    (lambda: vggish_log_mel(np.full(15600, np.nan)), "finite"),
    (lambda: log_mel_patches(np.zeros(16000), sample_rate=44100), "sample_rate=44100"),
    (lambda: log_mel_patches(np.zeros((2, 16000))), "mono"),
    (lambda: window_starts(100, overlap=1.0), "overlap"),
])
def test_bad_input_raises_audio_error(call, match):
    with pytest.raises(AudioError, match=match):
        call()
