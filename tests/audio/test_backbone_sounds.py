"""The "sounds" backbone (aisfx 0.1.2): NumPy forward vs the original PyTorch model, front end vs
librosa, shipped weights vs a fresh conversion, and the Core ML export vs the NumPy path.

The oracle is the wheel's own model definition (``aisfx/models/cnn2d.py``, run by torch) with the
wheel's checkpoint. The wheel is looked up in ``$PIPPIN_BACKBONE_WHEELS`` or ``/tmp/pkgs``
(``pip download --no-deps aisfx==0.1.2 -d DIR``); without it those tests skip, and fail when
``PIPPIN_REQUIRE_SHARED=1``.
"""

from __future__ import annotations

import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backbone_checks import assert_native_valid_and_parses, published_wheel

from pippin.audio import AudioError
from pippin.audio.backbones import convert_sounds, sounds
from pippin.audio.io import read_audio

N = sounds.WINDOW_SAMPLES
DRUMS = Path("/usr/share/hydrogen/data/drumkits")


def _wheel() -> Path:
    return published_wheel(convert_sounds.WHEEL_NAME, "aisfx==0.1.2")


@pytest.fixture(scope="module")
def wheel() -> Path:
    return _wheel()


@pytest.fixture(scope="module")
def state(wheel):
    """(checkpoint tensors, licence text, wheel sha256); reading the checkpoint needs torch."""
    pytest.importorskip("torch")
    return convert_sounds.read_wheel(wheel)


@pytest.fixture(scope="module")
def exact(state) -> sounds.SoundsBackbone:
    """The backbone with the checkpoint's float32 kernels, converted now."""
    return sounds.SoundsBackbone(_arrays(state, half=False))


def _arrays(state, *, half: bool):
    return convert_sounds.arrays_from_state(state[0], licence_text=state[1], wheel_sha256=state[2], half=half)


def _torch_model(wheel, state, *, half: bool):
    """aisfx's EmbeddingNet('max', 3, 1, 64), defined by the wheel's own source, with the checkpoint."""
    torch = pytest.importorskip("torch")
    source = zipfile.ZipFile(wheel).read("aisfx/models/cnn2d.py").decode()
    module = types.ModuleType("aisfx_cnn2d")
    exec(compile(source, "aisfx/models/cnn2d.py", "exec"), module.__dict__)
    net = module.EmbeddingNet("max", 3, 1, 64)
    tensors = {}
    for key, value in state[0].items():
        if half and key.endswith(".weight") and value.ndim == 4:
            value = value.astype(np.float16).astype(np.float32)
        tensors[key[len("embedding_net."):]] = torch.from_numpy(value)
    net.load_state_dict(tensors)
    return net.eval()


@pytest.fixture(scope="module")
def windows(fsdd_dir) -> np.ndarray:
    """2 seeded noise bursts, 2 FSDD digits (8 kHz, resampled by pippin.audio.io), a drum hit if
    the distribution's drum kits are installed, and a quiet copy of a digit."""
    rng = np.random.default_rng(0)
    t = np.arange(N, dtype=np.float32) / sounds.SAMPLE_RATE
    noise = (0.3 * rng.standard_normal((2, N)) * np.exp(-t * np.array([[2.0], [15.0]]))).astype(np.float32)
    paths = [fsdd_dir / "0_george_0.wav", fsdd_dir / "7_jackson_12.wav"]
    paths += sorted(DRUMS.glob("*/*.wav"))[:1] if DRUMS.is_dir() else []
    real = np.zeros((len(paths), N), np.float32)
    for i, path in enumerate(paths):
        clip = read_audio(path, sample_rate=sounds.SAMPLE_RATE)[:N]
        real[i, :len(clip)] = clip
    return np.concatenate([noise, real, 1e-3 * real[:1]])


def _librosa_frontend(windows: np.ndarray) -> np.ndarray:
    """aisfx's front end written with librosa in float64: peak-normalise, scale to the level of
    Essentia's area-2 window (1/512), centred (zero-padded) STFT 2048/1024, power, 96 HTK mel bands 0-22050 Hz with unit-sum filters, log10(1e4 x + 1),
    divided by 9.457798957824707."""
    librosa = pytest.importorskip("librosa")
    out = []
    for y in windows.astype(np.float64):
        y = y / max(np.abs(y).max(), sounds.PEAK_FLOOR) / 512.0
        mel = librosa.feature.melspectrogram(y=y, sr=44100, n_fft=2048, hop_length=1024, win_length=2048,
                                             window="hann", center=True, pad_mode="constant", power=2.0,
                                             n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0)
        out.append((np.log10(mel * 1e4 + 1.0) / 9.457798957824707).T)
    return np.stack(out)


# -- (a) the NumPy forward equals the original PyTorch model --------------------------------------
def test_forward_matches_pytorch(wheel, state, exact, windows):
    torch = pytest.importorskip("torch")
    spec = sounds.frontend(windows)
    with torch.no_grad():
        want = _torch_model(wheel, state, half=False)(torch.from_numpy(spec)).numpy()
    got = exact.network(spec)
    assert got.dtype == np.float32 and got.shape == (len(windows), sounds.EMBEDDING_DIM)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.abs(want).max() > 1.0 and np.ptp(want, axis=0).max() > 0.5  # a live, varied embedding


def test_shipped_weights_match_pytorch_with_float16_kernels(wheel, state, windows):
    torch = pytest.importorskip("torch")
    spec = sounds.frontend(windows)
    with torch.no_grad():
        want = _torch_model(wheel, state, half=True)(torch.from_numpy(spec)).numpy()
        full = _torch_model(wheel, state, half=False)(torch.from_numpy(spec)).numpy()
    got = sounds.embed(windows)
    assert got.shape == (len(windows), 1, sounds.EMBEDDING_DIM)
    np.testing.assert_allclose(got[:, 0], want, rtol=0, atol=1e-4)
    # the cost of float16 kernels (measured: at most 4e-3 of the largest component)
    assert (np.abs(got[:, 0] - full).max(axis=1) / np.abs(full).max(axis=1)).max() < 1e-2


def test_temporal_embedding_and_batching(windows):
    exact = sounds.load()
    steps = exact.embed(windows[:3], temporal=True, n_threads=2)
    assert steps.shape == (3, 12, sounds.EMBEDDING_DIM)
    np.testing.assert_array_equal(steps.max(axis=1, keepdims=True), exact.embed(windows[:3], n_threads=1))
    one = np.concatenate([exact.embed(windows[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(exact.embed(windows[:3]), one, rtol=0, atol=1e-5)
    assert np.abs(one[0] - one[1]).max() > 0.1


# -- (b) the front end equals an independent librosa computation ----------------------------------
def test_frontend_matches_librosa(windows):
    got = sounds.frontend(windows)
    assert got.dtype == np.float32 and got.shape == (len(windows), sounds.N_FRAMES, sounds.N_MELS)
    np.testing.assert_allclose(got, _librosa_frontend(windows), rtol=0, atol=1e-4)
    # peak normalisation: a quiet copy gives the same spectrogram as the original
    np.testing.assert_allclose(got[-1], got[2], rtol=0, atol=1e-4)


def test_frontend_batches_and_silence(windows):
    batch = sounds.frontend(windows[None, :3])
    assert batch.shape == (1, 3, sounds.N_FRAMES, sounds.N_MELS)
    np.testing.assert_array_equal(batch[0, 1], sounds.frontend(windows[1]))
    assert not np.allclose(batch[0, 0], batch[0, 1])
    assert np.array_equal(sounds.frontend(np.zeros((1, N), np.float32)), np.zeros((1, 100, 96), np.float32))


def test_bad_windows_raise():
    with pytest.raises(AudioError, match="101376 samples"):
        sounds.embed(np.zeros((2, 1000), np.float32))
    with pytest.raises(AudioError, match="finite"):
        sounds.frontend(np.full((1, N), np.nan, np.float32))
    with pytest.raises(AudioError, match=r"shape=\(n, 101376\)"):
        sounds.embed(np.zeros(N, np.float32))


# -- (c) the shipped weight file is the conversion of the pinned wheel ------------------------------
def test_shipped_file_equals_fresh_conversion(state, tmp_path):
    out = tmp_path / "sounds.npz"
    convert_sounds.save_weights(_arrays(state, half=True), out)
    fresh, fresh_meta = convert_sounds.load_weights(out)
    shipped, shipped_meta = convert_sounds.load_weights(sounds.WEIGHTS_PATH)
    assert shipped_meta == fresh_meta
    assert sorted(shipped) == sorted(fresh)
    for name in fresh:
        assert shipped[name].dtype == fresh[name].dtype and np.array_equal(shipped[name], fresh[name]), name
    assert out.read_bytes() == sounds.WEIGHTS_PATH.read_bytes()  # the writer is byte-reproducible


def test_metadata_carries_licence_and_provenance():
    backbone = sounds.load()
    meta = backbone.metadata
    assert meta["licence"] == backbone.licence == "CC BY 4.0"
    assert meta["wheel_sha256"] == convert_sounds.WHEEL_SHA256
    assert (meta["source_package"], meta["source_version"]) == ("aisfx", "0.1.2")
    assert "A.B. Ma and A. Lerch" in backbone.attribution and meta["conv_weight_dtype"] == "float16"
    assert "Attribution 4.0 International" in meta["licence_text"]
    assert sounds.load() is backbone  # cached once per process


def test_wrong_wheel_is_refused(tmp_path):
    fake = tmp_path / convert_sounds.WHEEL_NAME
    fake.write_bytes(b"not a wheel")
    with pytest.raises(AudioError, match="sha256"):
        convert_sounds.read_wheel(fake)


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0,
                               dtype=np.float64).T
    np.testing.assert_allclose(sounds.mel_filters(), want, rtol=0, atol=1e-7)


# -- (d) the Core ML export runs in Pippin's runtime as the NumPy path does --------------------------
NATIVE_KINDS = {"activation", "batchnorm", "convolution", "multiply", "permute", "pooling", "reduce", "reshape",
                "unary"}


@pytest.fixture(scope="module")
def exported():
    """(spec, serialized bytes) of audio [101376] -> sounds_image [1, 100, 96], embedding [512, 1, 1]."""
    from pippin.pipelines.build import NetworkBuilder
    from pippin.spec import dumps

    builder = NetworkBuilder(inputs=[("audioSamples", (N,))], outputs=["sounds_image", "embedding"])
    sounds.load().add_to_network(builder, "audioSamples", "embedding")
    assert builder.shapes["embedding"] == (512, 1, 1) and builder.shapes["sounds_image"] == (1, 100, 96)
    spec = builder.spec
    return spec, dumps(spec)


def test_export_runs_like_numpy(exported, windows):
    from pippin import pipelines

    x = windows[[0, 2, 3, 5]] if len(windows) > 5 else windows[:4]  # noise, real, quiet copy
    out = pipelines.load(exported[0]).predict_batch({"audioSamples": x})
    n = len(x)
    image = np.asarray(out["sounds_image"]).reshape(n, 100, 96)
    np.testing.assert_allclose(image, sounds.frontend(x), rtol=0, atol=1e-4)
    embedding = np.asarray(out["embedding"]).reshape(n, 1, 512)
    np.testing.assert_allclose(embedding, sounds.embed(x), rtol=0, atol=1e-4)


def test_export_validates_is_native_and_parses_with_coremltools(exported):
    spec, data = exported
    assert_native_valid_and_parses(spec, data, native_kinds=NATIVE_KINDS, max_bytes=28_000_000)  # 26,980,890
    cnn = [layer for layer in spec.neuralNetwork.layers if layer.name.startswith("sounds_block")
           and layer.WhichOneof("layer") == "convolution"]
    assert len(cnn) == 8 and all(layer.convolution.weights.float16Value for layer in cnn)


def test_standalone_network_carries_licence_and_rejects_other_inputs():
    from pippin.pipelines.build import NetworkBuilder
    from pippin.audio.backbones import sounds_export

    spec = sounds_export.build_network(temporal=True)
    meta = spec.description.metadata
    assert meta.license == "CC BY 4.0" and "A.B. Ma and A. Lerch" in meta.author
    assert meta.userDefined["backbone.wheel_sha256"] == convert_sounds.WHEEL_SHA256
    assert list(spec.description.output[0].type.multiArrayType.shape) == [512, 12, 1]
    short = NetworkBuilder(inputs=[("x", (16000,))], outputs=["e"])
    with pytest.raises(AudioError, match="101376"):
        sounds.load().add_to_network(short, "x", "e")
