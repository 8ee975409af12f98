"""Audio files read ahead by a forked child while this process loads the model: ``ReadAhead``.

``pippin update`` and ``pippin personalize --head`` on a sound classifier spend their
first ~0.6 s on one core whatever the core count: importing the layers (NumPy kernels
compiled by numba, scipy.fft), loading the model, loading the compiled kernels from
numba's cache. Reading the audio files (decode, resample, cut into windows: 0.4-0.5 s
of CPU for FSDD's 2,700 files) needs none of that. So, when this process may use
more than one CPU, a child forked before the model loads reads the files block by
block (the same ``BLOCK``-file blocks ``audio_prefix.FileBlobs`` hands its processes)
and leaves each block's windows in a file in shared memory (``/dev/shm``); whoever
processes a block later (this process, or a worker forked from it once the model is
loaded) takes the child's file, waits for a block the child is reading, or reads a
block nobody has started itself. A block the child cannot read or write (a broken
file, a full ``/dev/shm``) is simply read again by its consumer, which then reports
the error as a serial run would. The windows are the same bytes whoever reads them,
so the models written are too. Consumers map the child's files (no copy) and remove
their names at once; the child stays at most ``MAX_AHEAD`` blocks ahead of them, and
stops (removing its folder) if the command dies.

Measured on FSDD (2,700 files, 2 cores, CPU seconds): the command's own serial start is
0.69 s (0.17 Python and the CLI, 0.32 loading the model with its imports, 0.21 the first
kernels); the child reads the files (0.5 s) meanwhile, so the workers start on read blocks.

The child imports nothing beyond the audio reader (``pippin.audio.io``: soundfile,
soxr, NumPy), which is why the callers start it before ``load``.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import shutil
import tempfile
import time

import numpy as np

__all__ = ["BLOCK", "ReadAhead", "SpecView", "small_pages"]

#: files per block: the unit of work handed to a process (and read ahead)
BLOCK = 64

#: blocks the child keeps read but not yet taken, at most (~2.7 MB each for FSDD's 1-2 s recordings)
MAX_AHEAD = 64

_FREE, _READING, _DONE, _TAKEN, _FAILED, _HANDED = 0, 1, 2, 3, 4, 5


class SpecView:
    """The parts of a loaded model ``pippin.audio.inference.audio_input`` reads, from a spec (nothing loaded)."""

    def __init__(self, spec, where: str | None = None):
        self.spec, self.where = spec, where
        self.input_descriptions = {f.name: f for f in spec.description.input}


def small_pages() -> bool:
    """Ask Linux not to back this process (and the children it forks) with transparent huge pages.

    Why, measured on the sound CNN's frozen layers (2 cores, THP ``always``): a process's first
    64-window chunk faults its ~140 MB working set in as 2 MB pages, 0.2-0.3 s of system time
    (0.04-0.06 s in 4 kB pages; later chunks reuse the memory either way, at the same speed).
    Every forked worker pays that first chunk again, in parallel with the others, so it adds to
    the wall time of a 2-core run as much as to a 1-core one. Returns whether the setting took
    (``prctl(PR_SET_THP_DISABLE)``; elsewhere nothing happens)."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE
    except (OSError, AttributeError):
        return False


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _n_cpus() -> int:
    """CPUs this process may run on (as ``pipelines.layers._blas.n_cpus``, without importing the layers)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` is still running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


class ReadAhead:
    """Files ``paths`` read, block by block, by a forked child; ``take(j)`` hands block ``j`` to a consumer.

    Parameters
    ----------
    paths : list of path
    read : callable
        ``read(i) -> windows [shape=(n_windows, window)]`` of file ``i``.
    key : tuple
        What ``read`` depends on (overlap, window, sample rate, alignment): a consumer whose
        own reading differs must not use these windows (``matches``).
    n_ranks : int
        Processes that will consume the blocks (contiguous ranges, as ``FileBlobs``): the child
        reads the ranges' first blocks first, in turn.
    block : int, optional
        Files per block (default ``BLOCK``).
    first : (paths, read), optional
        Other files read as one unit before the blocks (``read(i)`` reads ``paths[i]``, cut as
        ``key`` says): the user's own recordings that ``pippin personalize`` reads first, while
        its model loads (``take_first``).

    Attributes
    ----------
    source, dataset, first_source, first_dataset
        What ``of`` listed (None when made directly): ``listing`` hands the listings to the
        consumers, so that the files are listed once.
    """

    source = dataset = first_source = first_dataset = None

    def __init__(self, paths, read, key, n_ranks: int, *, block: int | None = None, first=None):
        self.paths, self.key, self._read = list(paths), key, read
        self.first_paths, self._read_first = (list(first[0]), first[1]) if first else ([], None)
        n, self.block = len(self.paths), block or BLOCK
        self.blocks = [(a, min(a + self.block, n)) for a in range(0, n, self.block)]
        ranges = [range(len(self.blocks) * r // n_ranks, len(self.blocks) * (r + 1) // n_ranks) for r in range(n_ranks)]
        order = [j for step in zip(*[list(r) + [None] * (len(self.blocks) - len(r)) for r in ranges]) for j in step
                 if j is not None]
        self._first = len(self.blocks)  # the unit of the ``first`` files, read before the blocks
        if self.first_paths:
            order.insert(0, self._first)
        ctx = mp.get_context("fork")
        self._state = ctx.RawArray("b", len(self.blocks) + 1)
        self._lock = ctx.Lock()
        self._dir = tempfile.mkdtemp(prefix="pippin-read-", dir=_shm_dir())
        self._owner = os.getpid()
        self._proc = ctx.Process(target=self._run, args=(order,), daemon=True, name="pippin-read-ahead")
        try:
            self._proc.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._pid = self._proc.pid

    @classmethod
    def of(cls, source, spec, *, overlap: float = 0.5, where: str | None = None,
           first=None) -> "ReadAhead | None":
        """The labelled audio files of ``source`` (a folder or ``path,label`` table) read ahead for the sound model
        ``spec`` (windows cut as its audio input takes them); None when this process may use one CPU only, cannot
        fork, or ``source`` holds no such files (the caller then reads as usual). ``first``: another labelled
        folder or table, read before them (``take_first``; left out when it cannot be listed)."""
        from ...audio.inference import audio_input, window_align
        from ...audio.io import read_windows
        from ...datasets import load_sound_dataset

        if _n_cpus() < 2:
            return None
        if "fork" not in mp.get_all_start_methods() or mp.current_process().daemon:
            return None
        try:
            view = SpecView(spec, where)
            _, window, rate = audio_input(view)
            align = window_align(view)
            dataset = load_sound_dataset(source)
            paths = list(dataset.paths)
        except Exception:  # not audio for this model, no such table: the command says so itself, later
            return None
        if not paths:
            return None

        def read_path(path):
            return read_windows(path, overlap=overlap, warn_short=False, sample_rate=rate, window=window,
                                align=align)[1]

        first_dataset = None
        if first is not None:
            try:
                first_dataset = load_sound_dataset(first)
            except Exception:  # the command reports it where it reads them
                first_dataset = None
        first_paths = list(first_dataset.paths) if first_dataset is not None else []
        try:
            ahead = cls(paths, lambda i: read_path(paths[i]), (overlap, window, rate, align), _n_cpus(),
                        first=(first_paths, lambda i: read_path(first_paths[i])) if first_paths else None)
        except OSError:  # no temporary folder, no process: the consumers read everything themselves
            return None
        ahead.source, ahead.first_source = source, (first if first_paths else None)
        ahead.dataset, ahead.first_dataset = dataset, (first_dataset if first_paths else None)
        return ahead

    def matches(self, paths, key, block: int) -> bool:
        """Whether these are ``paths`` read as ``key`` says, in blocks of ``block`` files."""
        return self.key == key and self.block == block and [str(p) for p in self.paths] == [str(p) for p in paths]

    def listing(self, source, *, first: bool = False):
        """The dataset ``of`` listed for ``source`` (``first``: for the files read first) when it is the same
        folder or table (or the same dataset object), else None: the caller lists it."""
        mine, listed = (self.first_source, self.first_dataset) if first else (self.source, self.dataset)
        if listed is None or mine is None:
            return None
        if mine is source:
            return listed
        if isinstance(mine, (str, os.PathLike)) and isinstance(source, (str, os.PathLike)):
            return listed if os.path.abspath(mine) == os.path.abspath(source) else None
        return None

    def take_first(self, paths, key):
        """``(windows [shape=(n, window)], windows per file)`` of the ``first`` files, read by the child, when
        they are ``paths`` read as ``key`` says; else (or when the child could not read them) None: the caller
        reads them. The windows are a copy (writable), the child's file is removed."""
        if not self.first_paths or key != self.key or [str(p) for p in paths] != [str(p) for p in self.first_paths]:
            return None
        got = self.take(self._first)
        return None if got is None else (np.array(got[0]), got[1])

    def _file(self, j: int) -> str:
        return os.path.join(self._dir, f"{j}.npy")

    def _claim(self, j: int, as_state: int) -> int:
        """Block ``j``'s state; a free block becomes ``as_state`` (and 0 is returned: it is the caller's)."""
        with self._lock:
            state = self._state[j]
            if state == _FREE:
                self._state[j] = as_state
            return state

    # -- the child -------------------------------------------------------------
    def _run(self, order) -> None:
        for j in order:
            while sum(1 for s in self._state if s == _DONE) >= MAX_AHEAD:  # far enough ahead: wait for takers
                if os.getppid() != self._owner:
                    break
                time.sleep(0.005)
            if os.getppid() != self._owner:  # the command died: leave nothing behind
                shutil.rmtree(self._dir, ignore_errors=True)
                return
            if self._claim(j, _READING) != _FREE:
                continue
            state, path = _FAILED, self._file(j)
            try:
                if j == self._first:
                    parts = [self._read_first(i) for i in range(len(self.first_paths))]
                else:
                    a, b = self.blocks[j]
                    parts = [self._read(i) for i in range(a, b)]
                with open(path + ".part", "wb") as f:
                    np.save(f, np.array([len(p) for p in parts], dtype=np.int64))
                    np.save(f, np.concatenate(parts))
                os.rename(path + ".part", path)
                state = _DONE
            except Exception as exc:  # the consumer reads the block itself (and raises the error where it belongs)
                try:
                    os.unlink(path + ".part")
                except OSError:
                    pass
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    return  # shared memory is full (a small /dev/shm): the consumers read the rest
            finally:
                self._state[j] = state

    # -- consumers (this process and its forked workers) -------------------------
    def take(self, j: int):
        """``(windows [shape=(n, window)], windows per file)`` of block ``j`` read by the child, or None: the
        caller reads the block itself (the child has not started it, or could not read it). The windows are a
        read-only map of the child's file (``np.memmap``), whose name is removed at once."""
        waited = 0
        while True:
            state = self._claim(j, _TAKEN)
            if state in (_FREE, _TAKEN, _FAILED, _HANDED):
                return None
            if state == _DONE:
                with self._lock:
                    self._state[j] = _HANDED
                path = self._file(j)
                try:
                    with open(path, "rb") as f:
                        counts = np.load(f)
                        version = np.lib.format.read_magic(f)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, fortran, dtype = read_header(f)
                        offset = f.tell()
                    # mapped, not copied: the pages stay in shared memory (freed with the array; the name goes now)
                    windows = np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                                        order="F" if fortran else "C")
                    os.unlink(path)
                except (OSError, ValueError):
                    return None
                return windows, [int(c) for c in counts]
            waited += 1  # the child is reading it: a block takes ~10-20 ms
            if waited % 50 == 0 and not _alive(self._pid):
                return None
            time.sleep(0.001)

    def close(self) -> None:
        """Stop the child and remove its files (the process that started it only)."""
        if os.getpid() != self._owner or self._proc is None:
            return
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)
        self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)
