"""Labelled audio files straight to an updatable sound pipeline's frozen blobs, on every core.

Before ``pippin update`` trains a sound classifier's head, each window of every file
goes through three stages that do not change during training: reading (decode,
resample, cut into 975 ms windows), the pipeline's frozen front end (VGGish log-mel
patches) and the network's frozen layers before its updatable ones (``FrozenPrefix``).
On FSDD (2,700 files) they are ~95% of the command's CPU time, and only the last
one used to run on more than one core. Here all three run file block by file block:
the files are cut into fixed blocks of ``BLOCK`` files, contiguous ranges of blocks go
to processes forked after the model is loaded (this process takes the first range),
and each process sends back only the frozen blobs (128 floats a window for the
sound CNN, against 15,600 samples a window for the audio itself).

The blocks and the chunks inside them (``CHUNK`` windows) depend on the files alone,
never on the core count, and each chunk is computed with one BLAS thread: the bytes
of the blobs, and so of the updated model, are the same on any number of cores.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..errors import PipelineError
from . import gc_hold
from .audio_ahead import BLOCK
from .output import info

__all__ = ["BLOCK", "CHUNK", "FileBlobs", "frozen_examples"]
#: windows per chunk of the network's frozen layers. 8, not ``Trainer.frozen_prefix``'s 64: the same bytes (each
#: window's values do not depend on its chunk), and the sound CNN's activations of a chunk stay nearer the core's own
#: cache. FSDD (CPU seconds, per-process estimate under others' load): at 64 -> 16 (idle) update 3.76 -> 3.34 s on 1
#: core, 2.40 -> 2.06 s on 2; at 16 -> 8 (load 8-11) personalize --head 2.07-2.15 -> 1.99-2.07 s on 1 core,
#: 1.34-1.37 -> 1.28-1.32 s on 2, update 4.06 -> 3.92 s and 2.49 -> 2.33 s
CHUNK = 8


@contextlib.contextmanager
def _serial_stages(model):
    """The frozen stages' own thread pools held to one thread (the processes are the parallelism)."""
    saved = [(stage, stage.workers) for stage in model.stages[:-1] if hasattr(stage, "workers")]
    try:
        for stage, _ in saved:
            stage.workers = 1
        yield
    finally:
        for stage, workers in saved:
            stage.workers = workers


class FileBlobs:
    """Labelled audio files read on forked processes (kept there), then the frozen blobs of chosen windows.

    Two steps, so that a caller can choose windows by their labels before any network runs
    (``pippin personalize --head`` keeps at most N windows per old class): building reads
    every file (contiguous ranges of the ``BLOCK``-file blocks on ``n_jobs`` processes, this
    one taking the first) and gives ``labels``; ``blobs(indices)`` runs the frozen stages and
    the frozen layers over those windows only, each process over the ones it holds, in
    chunks of at most ``CHUNK`` chosen windows of one block. Use as a context manager (it
    owns the processes); ``of`` returns None when the model has no frozen prefix.

    Attributes
    ----------
    labels : list of str [shape=(n_windows,)]
        Each window's file label, files in order.
    n_files : int
    frontier : list of str
        The blobs ``blobs`` returns (``FrozenPrefix.frontier``).
    """

    def __init__(self, paths, file_labels, model, prefix, read, network_inputs, n_jobs, ahead=None):
        from ..update.procs import ProcessGroup, can_fork
        from ..update.shards import resolve_workers

        self.paths, self.model, self.prefix, self.frontier = paths, model, prefix, prefix.frontier
        self._read, self._inputs, self._ahead = read, network_inputs, ahead
        self._last = None  # (indices' bytes, blobs) of the last ``blobs`` call
        self._finished = False  # ``finish``: the forked processes were told to end
        self.blocks = [(a, min(a + BLOCK, len(paths))) for a in range(0, len(paths), BLOCK)]
        k = min(resolve_workers(n_jobs), len(self.blocks)) if can_fork() else 1
        self.bounds = [len(self.blocks) * j // k for j in range(k + 1)]  # block ranges, one per process
        self._group = ProcessGroup(k, self._serve) if k > 1 else None
        try:
            self._mine = self._read_part(0)
            parts = [self._mine[1]] + [self._receive(r) for r in range(1, k)]
        except BaseException:
            self.close()
            raise
        counts = []
        for rank, part in enumerate(parts):
            if isinstance(part, int):  # a file failed to read: raise its own error here
                self.close()
                read(part)
                raise PipelineError("a forked reader failed on this file, which reads here", where=str(paths[part]))
            counts.extend(part)
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # first window of each file
        self.labels = [label for label, count in zip(file_labels, counts) for _ in range(count)]
        self.n_files = len(paths)

    # -- both sides ------------------------------------------------------------
    def _read_part(self, rank):
        """This rank's blocks read: ``({block: windows}, windows per file)``, or ``(None, index of a failing file)``."""
        held, counts = {}, []
        for j in range(self.bounds[rank], self.bounds[rank + 1]):
            got = self._ahead.take(j) if self._ahead is not None else None
            if got is not None:  # read by the read-ahead child (``audio_ahead``)
                held[j] = got[0]
                counts.extend(got[1])
                continue
            a, b = self.blocks[j]
            windows = []
            for i in range(a, b):
                try:
                    windows.append(self._read(i))
                except Exception:  # the caller reads it again, to raise the error itself
                    return None, i
                counts.append(len(windows[-1]))
            held[j] = np.concatenate(windows)
        return held, counts

    def _blobs_part(self, held, chosen, starts):
        """Frozen blobs of ``chosen`` (sorted window indices within this rank's blocks; ``starts``: each file's
        first window), or None if there are none."""
        from ...audio.parallel import one_blas_thread

        parts = []
        with one_blas_thread(), _serial_stages(self.model):
            for j, windows in held.items():
                first = starts[self.blocks[j][0]]
                lo, hi = np.searchsorted(chosen, [first, first + len(windows)])
                rows = chosen[lo:hi] - first
                for c in range(0, len(rows), CHUNK):
                    parts.append(self.prefix(self._inputs(windows[rows[c:c + CHUNK]])))
        return {b: np.concatenate([p[b] for p in parts]) for b in self.frontier} if parts else None

    def _serve(self, comm):
        """A forked process: read its blocks, send the counts, then the blobs of the windows it is asked for."""
        conn = comm.conns[0]
        held, counts = self._read_part(comm.rank)
        conn.send(("ok", counts))
        while True:
            msg = conn.recv()
            if msg[0] != "blobs":
                return
            conn.send(("ok", (self._blobs_part(held, msg[1], msg[2]), self._extra_part(msg[3]))))

    # -- this process ----------------------------------------------------------
    def _receive(self, rank):
        try:
            msg = self._group.conns[rank - 1].recv()
        except EOFError:
            raise PipelineError(f"audio reader process {rank} stopped unexpectedly") from None
        if not (isinstance(msg, tuple) and msg[0] == "ok"):
            raise PipelineError(f"audio reader process {rank} failed:\n{getattr(msg, 'text', msg)}")
        return msg[1]

    def _extra_part(self, chunks: dict) -> dict:
        """``{c: blobs}`` of other windows' chunks ``{c: windows [shape=(<= CHUNK, window)]}``."""
        from ...audio.parallel import one_blas_thread

        if not chunks:
            return {}
        with one_blas_thread(), _serial_stages(self.model):
            return {c: self.prefix(self._inputs(w)) for c, w in chunks.items()}

    def blobs(self, indices, extra=None):
        """``{name: [shape=(len(indices), ...)]}``: the frozen blobs of windows ``indices`` (in that order).

        With ``extra`` (other windows [shape=(n, window)]: the user's own recordings, say),
        returns ``(blobs of indices, blobs of extra)``; extra's ``CHUNK``-window chunks are
        spread over the processes as well (the chunks, hence the bytes, do not depend on
        which process computes them). The last result is kept: asking again for the same
        ``indices`` costs nothing.
        """
        indices = np.asarray(indices, dtype=np.int64)
        key = indices.tobytes()
        if extra is None and self._last is not None and self._last[0] == key:
            return self._last[1]
        chosen = np.unique(indices)
        ranks = len(self.bounds) - 1
        if self._finished and ranks > 1:
            raise PipelineError("the audio reader processes have finished; only the last blobs are kept")
        window_bounds = [self.starts[self.blocks[self.bounds[r]][0]] if self.bounds[r] < len(self.blocks)
                         else self.starts[-1] for r in range(ranks)] + [self.starts[-1]]
        split = [chosen[(chosen >= window_bounds[r]) & (chosen < window_bounds[r + 1])] for r in range(ranks)]
        jobs = [{} for _ in range(ranks)]
        load = [len(part) for part in split]  # windows each process runs; this one also trains afterwards
        for c, a in enumerate(range(0, 0 if extra is None else len(extra), CHUNK)):
            r = min(range(ranks), key=lambda q: (load[q], q == 0))  # the least loaded, a forked one on a tie
            jobs[r][c] = extra[a:a + CHUNK]
            load[r] += len(jobs[r][c])
        for r in range(1, ranks):
            self._group.send(r, ("blobs", split[r], self.starts, jobs[r]))
        got = [(self._blobs_part(self._mine[0], split[0], self.starts), self._extra_part(jobs[0]))]
        got += [self._receive(r) for r in range(1, ranks)]
        parts = [p for p, _ in got if p is not None]
        if not parts:
            result = {b: np.zeros((0,)) for b in self.frontier}
        else:
            every = {b: np.concatenate([p[b] for p in parts]) for b in self.frontier}
            where = np.searchsorted(chosen, indices)
            result = {b: v[where] for b, v in every.items()}
        self._last = (key, result)
        if extra is None:
            return result
        chunks = {c: part for _, e in got for c, part in e.items()}
        others = ({b: np.concatenate([chunks[c][b] for c in sorted(chunks)]) for b in self.frontier} if chunks
                  else {b: np.zeros((0,)) for b in self.frontier})
        return result, others

    def finish(self) -> None:
        """Tell the forked processes to end now, without waiting: they exit while this process goes on with the
        blobs it has (``close`` still waits for them). Afterwards only the last ``blobs`` result is available."""
        if self._group is not None and not self._finished:
            for conn in self._group.conns:
                try:
                    conn.send(("stop",))
                except OSError:
                    pass
        self._finished = True

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @classmethod
    def of(cls, source, model, *, overlap: float = 0.5, n_jobs: int | None = None,
           windows_like=None, ahead=None) -> "FileBlobs | None":
        """The files of ``source`` (a labelled folder or ``path,label`` table) for ``model`` (an updatable
        sound pipeline: frozen stages taking the audio windows, then an updatable neural network), read;
        None when ``model`` is not one, or its update would run every layer in every step. Windows are
        cut as ``windows_like`` (default: ``model``) takes them (its metadata's sample rate, say).
        ``ahead``: the same files being read by a ``audio_ahead.ReadAhead`` child (used when it cuts the
        windows the same way; the caller closes it)."""
        from ...audio.inference import audio_input, window_align
        from ...audio.io import read_windows
        from ...audio.parallel import one_blas_thread
        from ...datasets import load_sound_dataset
        from ..update.core_ml_update import FrozenPrefix

        stages = getattr(model, "stages", None)
        if not stages or len(stages) < 2 or not stages[-1].spec.isUpdatable:
            return None
        audio, window, rate = audio_input(windows_like or model)
        align = window_align(windows_like or model)
        dataset = (ahead.listing(source) if ahead is not None else None) or load_sound_dataset(source)
        paths = list(dataset.paths)
        if not paths:
            return None
        last = stages[-1]

        def read(i):
            return read_windows(paths[i], overlap=overlap, warn_short=False, sample_rate=rate, window=window,
                                align=align)[1]

        def network_inputs(windows):
            values = model.frozen_features({audio: windows})
            return {name: values[name] for name in last.input_descriptions if name in values}

        with one_blas_thread(), _serial_stages(model):  # also loads the kernels before any fork
            first = read(0)
            prefix = FrozenPrefix.of(last, network_inputs(first[:1])) if len(first) else None
        if prefix is None:
            return None
        gc_hold.release()  # the modules, the model and the kernels are loaded; before the workers fork
        if ahead is not None and not ahead.matches(paths, (overlap, window, rate, align), BLOCK):
            ahead = None
        info(f"reading {len(paths)} audio file{'s' if len(paths) != 1 else ''} from {dataset.source or source}")
        return cls(paths, list(dataset.labels), model, prefix, read, network_inputs, n_jobs, ahead)


def frozen_examples(source, model, *, overlap: float = 0.5, n_jobs: int | None = None, ahead=None):
    """``(frozen blobs, labels, n_files)`` of labelled audio for ``model.update(..., frozen=blobs)``, or None.

    Parameters
    ----------
    source : path or SoundDataset
        A folder with one sub-folder per label, or a ``path,label`` table.
    model : PipelineModel
        An updatable sound pipeline (frozen stages taking the audio windows, then an
        updatable neural network).
    n_jobs : int, optional
        Processes (None: every CPU this process may use); the result does not depend on it.
    ahead : audio_ahead.ReadAhead, optional
        The same files already being read by a forked child.

    Returns
    -------
    frozen : dict of str to np.ndarray [shape=(n_windows, ...)]
        The network's frozen blobs (``FrozenPrefix.frontier``) for every window, files in order.
    labels : list of str [shape=(n_windows,)]
        Each window's file label.
    n_files : int

    None when ``model`` is not such a pipeline, or when its update would run every layer
    in every step (no frozen prefix): the caller then reads the windows themselves.
    """
    files = FileBlobs.of(source, model, overlap=overlap, n_jobs=n_jobs, ahead=ahead)
    if files is None:
        return None
    with files:
        return files.blobs(np.arange(len(files.labels))), files.labels, files.n_files
