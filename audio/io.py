"""Reading audio files as 16 kHz mono float32, whole or as a stream of 975 ms windows.

soundfile (libsndfile) decodes wav, flac, ogg and mp3 (where the libsndfile build
reads it); soxr resamples any rate to 16 kHz; channels are averaged to mono and
integer PCM comes out scaled to [-1, 1). Long files are read block by block with
a streaming resampler, so memory stays bounded by the block and the windows asked for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr

from .errors import AudioError
from .frontend import PATCH_SAMPLES, SAMPLE_RATE, window_starts

__all__ = ["RESAMPLER", "read_audio", "stream_audio", "iter_windows", "read_windows", "probe"]

_QUALITY = "HQ"
#: The resampler, as recorded in exported models' metadata.
RESAMPLER = f"soxr {soxr.__version__} quality={_QUALITY}"
_BLOCK_FRAMES = 1 << 16  # frames decoded per block (about 4 s at 16 kHz)


@contextlib.contextmanager
def _open(path: Path):
    """Open ``path`` for decoding (a context manager giving a ``soundfile.SoundFile``), naming each way
    it cannot be: missing, a dangling symlink, a symlink loop, a folder, not a regular file (a FIFO
    would block), undecodable, empty.

    The file is opened by Python and handed to libsndfile as a descriptor, so any name the
    file system holds works, valid UTF-8 or not. The descriptor stays ours (``closefd=False``)
    and is closed exactly once, here: when libsndfile owned it, a failed open closed it inside
    libsndfile, and closing it again could close another thread's file that reused the number.
    """
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise AudioError(f"symlink to a missing file ({os.readlink(path)!r})", where=where) from None
        raise AudioError("no such audio file", where=where) from None
    except IsADirectoryError:
        raise AudioError("is a folder, not an audio file", where=where) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError("symlink loop: the link never reaches a file", where=where) from None
        raise AudioError(f"cannot open audio file ({exc.strerror or exc})", where=where) from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise AudioError("is a folder, not an audio file", where=where)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise AudioError("is not a regular file (a FIFO, a device or a socket)", where=where)
    try:
        try:
            handle = soundfile.SoundFile(fd, closefd=False)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(f"cannot decode audio ({exc})", where=where,
                             hint="libsndfile reads wav, flac, ogg and (recent builds) mp3") from None
        with handle:
            if handle.frames == 0 or handle.samplerate <= 0:
                raise AudioError(f"file has no audio samples (frames={handle.frames}, "
                                 f"sample rate={handle.samplerate})", where=where)
            yield handle
    finally:
        os.close(fd)


def probe(path: str | os.PathLike) -> tuple[int, int]:
    """``(n_frames, sample_rate)`` of an audio file, with ``_open``'s named errors.

    Raises
    ------
    AudioError
        Missing, a dangling symlink, a symlink loop, a folder, not a regular file,
        undecodable or empty.
    """
    with _open(Path(path)) as handle:
        return int(handle.frames), int(handle.samplerate)


def stream_audio(path: str | os.PathLike, *, block_frames: int = _BLOCK_FRAMES,
                 sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Decode a file block by block as mono float32 at ``sample_rate`` (16 kHz by default).

    Parameters
    ----------
    path : path-like
        An audio file libsndfile reads.
    block_frames : int > 0
        Source frames decoded per block.
    sample_rate : int > 0
        The rate to resample to (a backbone may need another than VGGish's 16 kHz).

    Yields
    ------
    chunk : np.ndarray [shape=(n_samples,)], float32
        Consecutive pieces of the resampled signal (some may be empty).

    Raises
    ------
    AudioError
        The file is missing, cannot be decoded, or holds no samples.
    """
    path = Path(path)
    with _open(path) as handle:
        resampler = None
        if handle.samplerate != sample_rate:
            resampler = soxr.ResampleStream(handle.samplerate, sample_rate, 1, dtype="float32", quality=_QUALITY)
        try:
            for block in handle.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.isfinite(mono).all():
                    raise AudioError("audio holds NaN or infinite samples", where=str(path))
                yield resampler.resample_chunk(mono) if resampler is not None else np.ascontiguousarray(mono)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"decoding failed part-way ({exc})", where=str(path)) from None
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def read_audio(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole file as mono float32 at ``sample_rate`` (16 kHz by default).

    Returns
    -------
    waveform : np.ndarray [shape=(n_samples,)], float32
    """
    wave = np.concatenate(list(stream_audio(path, sample_rate=sample_rate)))
    if wave.size == 0:
        raise AudioError("file has no audio samples after resampling", where=str(path))
    return wave


def iter_windows(
    path: str | os.PathLike, *, overlap: float = 0.5, batch_windows: int = 256, warn_short: bool = True,
    info: dict | None = None, sample_rate: int = SAMPLE_RATE, window: int = PATCH_SAMPLES, align: str = "start",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A file's analysis windows (975 ms at 16 kHz by default), streamed in batches (bounded memory).

    Windows start where ``pippin.audio.frontend.window_starts`` says; the last one
    (or the only one, for clips shorter than a window) is zero-padded.

    Parameters
    ----------
    path : path-like
    overlap : float in [0, 1)
    batch_windows : int > 0
        Windows per yielded batch.
    warn_short : bool
        Warn (``UserWarning``) when the clip is shorter than one window.
    info : dict, optional
        Filled with ``n_samples`` (the clip's length at ``sample_rate``) once the file is read.
    sample_rate : int > 0
        The rate windows are cut at (16 kHz: VGGish; a backbone may need another).
    window : int > 0
        Samples per window (15,600: 975 ms at 16 kHz).
    align : {"start", "center"}
        Where a clip shorter than one window sits in it: at the start (VGGish), or in
        the middle with silence on both sides (the speech backbone: every one of its
        0.775 s views then sees the word, measured in ``benchmarks/bench_fewshot.py``).

    Yields
    ------
    starts : np.ndarray [shape=(n_windows,)], int64
        First sample (at ``sample_rate``) of each window.
    windows : np.ndarray [shape=(n_windows, window)], float32
    """
    if align not in ("start", "center"):
        raise AudioError(f"align={align!r}, expected 'start' or 'center'")
    hop = int(window_starts(2 * window, overlap=overlap, window=window)[1])
    pending = np.zeros(0, dtype=np.float32)  # signal from sample `offset` on
    offset = next_start = total = 0
    starts: list[int] = []
    windows: list[np.ndarray] = []
    for chunk in stream_audio(path, sample_rate=sample_rate):
        total += chunk.size
        pending = np.concatenate([pending, chunk])
        while next_start + window <= offset + pending.size:
            local = next_start - offset
            starts.append(next_start)
            windows.append(pending[local:local + window].copy())
            next_start += hop
            if len(windows) == batch_windows:
                yield np.asarray(starts, dtype=np.int64), np.stack(windows)
                starts, windows = [], []
        drop = min(next_start - offset, pending.size)
        pending, offset = pending[drop:], offset + drop
    if total == 0:
        raise AudioError("file has no audio samples after resampling", where=str(path))
    if info is not None:
        info["n_samples"] = total
    if total < window and warn_short:
        warnings.warn(f"{path}: clip is {total / sample_rate * 1000:.0f} ms, shorter than one "
                      f"{window / sample_rate * 1000:.0f} ms window; zero-padded", UserWarning, stacklevel=2)
    for start in window_starts(total, overlap=overlap, window=window):
        if start < next_start:
            continue
        local = int(start) - offset
        piece = pending[local:local + window]
        lead = (window - piece.size) // 2 if align == "center" and total < window else 0
        starts.append(int(start) - lead)
        windows.append(np.concatenate([np.zeros(lead, dtype=np.float32), piece,
                                       np.zeros(window - lead - piece.size, dtype=np.float32)]))
    if windows:
        yield np.asarray(starts, dtype=np.int64), np.stack(windows)


def read_windows(path: str | os.PathLike, *, overlap: float = 0.5, warn_short: bool = True,
                 sample_rate: int = SAMPLE_RATE, window: int = PATCH_SAMPLES, align: str = "start"):
    """All of a file's windows at once (see ``iter_windows``).

    Returns
    -------
    starts : np.ndarray [shape=(n_windows,)], int64
    windows : np.ndarray [shape=(n_windows, window)], float32
    """
    parts = list(iter_windows(path, overlap=overlap, warn_short=warn_short, batch_windows=1 << 30,
                              sample_rate=sample_rate, window=window, align=align))
    return np.concatenate([s for s, _ in parts]), np.concatenate([w for _, w in parts])


def windows_of(wave: np.ndarray, *, window: int = PATCH_SAMPLES, overlap: float = 0.5,
               align: str = "start") -> np.ndarray:
    """An in-memory clip's windows, cut as ``iter_windows`` cuts a file.

    Parameters
    ----------
    wave : np.ndarray [shape=(n_samples,)], float32
    window, overlap, align
        As in ``iter_windows``.

    Returns
    -------
    windows : np.ndarray [shape=(n_windows, window)], float32
    """
    wave = np.asarray(wave, dtype=np.float32)
    starts = window_starts(wave.size, overlap=overlap, window=window)
    lead = (window - wave.size) // 2 if align == "center" and wave.size < window else 0
    padded = np.zeros(lead + int(starts[-1]) + window, dtype=np.float32)
    padded[lead:lead + wave.size] = wave
    return np.stack([padded[s:s + window] for s in starts])
