"""Reading audio: formats, resampling, mono, scaling, windows, streaming and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile

from pippin.audio import AudioError
from pippin.audio.features import featurize_files
from pippin.audio.frontend import cut_windows, vggish_log_mel
from pippin.audio.io import read_audio, read_windows, iter_windows


def _write(path, data, rate, **kw):
    soundfile.write(str(path), data, rate, **kw)
    return path


def test_int16_pcm_is_scaled_to_unit_range(tmp_path):
    ints = np.array([-32768, -16384, 0, 16384, 32767] * 100, dtype=np.int16)
    wave = read_audio(_write(tmp_path / "a.wav", ints, 16000, subtype="PCM_16"))
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave[:5], ints[:5] / 32768.0)


def test_stereo_is_averaged_to_mono(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (3000, 2)).astype(np.float32)
    wave = read_audio(_write(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT"))
    np.testing.assert_allclose(wave, stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize(("rate", "fmt"), [(8000, "wav"), (44100, "flac"), (22050, "ogg"), (22050, "mp3")])
def test_any_rate_is_resampled_to_16k(tmp_path, rate, fmt):
    t = np.arange(int(rate * 1.5)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    wave = read_audio(_write(tmp_path / f"t.{fmt}", tone, rate))
    assert abs(len(wave) - 24000) <= (1200 if fmt == "mp3" else 2)  # mp3 frames pad the end
    spectrum = np.abs(np.fft.rfft(wave[2000:18000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 2  # 1 Hz bins over 16000 samples


def test_streamed_windows_equal_whole_file_windows(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.uniform(-0.9, 0.9, 44100 * 5 + 77).astype(np.float32)
    path = _write(tmp_path / "long.flac", data, 44100)
    whole = read_audio(path)
    starts, windows = read_windows(path, overlap=0.5)
    np.testing.assert_array_equal(windows, cut_windows(whole, overlap=0.5))
    small = list(iter_windows(path, overlap=0.25, batch_windows=3))
    assert max(len(s) for s, _ in small) == 3
    np.testing.assert_array_equal(np.concatenate([w for _, w in small]), cut_windows(whole, overlap=0.25))


def test_short_clip_is_padded_with_a_warning(tmp_path):
    path = _write(tmp_path / "short.wav", np.full(800, 0.25), 16000)
    with pytest.warns(UserWarning, match="short.wav"):
        starts, windows = read_windows(path)
    assert starts.tolist() == [0] and windows.shape == (1, 15600)
    assert np.all(windows[0, 800:] == 0) and np.allclose(windows[0, :800], 0.25, atol=1e-4)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("garbage.wav", b"RIFF\x00\x00not really audio", "garbage.wav"),
    ("empty.wav", None, "empty.wav"),
    ("missing.wav", "absent", "missing.wav"),
])
def test_unusable_files_raise_audio_error_naming_them(tmp_path, name, content, match):
    path = tmp_path / name
    if content is None:
        _write(path, np.zeros((0, 1)), 16000)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(AudioError, match=match):
        read_audio(path)


def test_featurize_skips_bad_files_and_keeps_order(tmp_path):
    rng = np.random.default_rng(4)
    good = _write(tmp_path / "good.wav", rng.uniform(-0.5, 0.5, 20000), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    short = _write(tmp_path / "short.wav", rng.uniform(-0.5, 0.5, 1000), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # per-file warnings are collected, not raised
        features = featurize_files([good, bad, short], progress=False, workers=2)
    assert features.used.tolist() == [True, False, True]
    assert [s["path"] for s in features.skipped] == [str(bad)]
    assert features.clip_index.tolist() == [0, 0, 2] and features.n_padded == 1
    np.testing.assert_array_equal(features.patches[:2], vggish_log_mel(cut_windows(read_audio(good))))
