"""Worker processes for data-parallel training steps: one forked replica of the network per core.

Why processes, measured on the sound CNN (2 cores, shards of 8 patches): shards run
independently on 2 threads gave 1.67-1.73x one thread's throughput, on 2 processes
1.9-2.1x; inside a training step, where the shards meet at 8 points (the batchnorms'
statistics and gradient sums, the loss, the parameter gradients), threads gave only
1.15x: the many small NumPy calls per layer hold the GIL, so the threads queue for
it and each shard task runs ~15% longer. Processes have a GIL each.

How (``ProcessGroup``): rank 0 is the calling process, ranks 1..k-1 are children
forked when training first needs them, so they inherit the built layers, the
optimizer-free parts of the trainer and the compiled kernels without pickling any
of it. Each rank computes a fixed set of shards (``ProcComm.owns``: contiguous
blocks of the shard list). At each meeting point ``ProcComm.allgather`` sends the
rank's per-shard results (a few per-channel sums, or a shard's parameter
gradients) through a pipe to rank 0, which hands every rank the full list; every
rank then reduces it in shard order, so all ranks hold the same statistics and the
result does not depend on k. Rank 0 alone runs the optimizer and sends the new
weights with the next step's shards. Pipes form a star (children send first, rank
0 receives in rank order, then sends), so no two ends ever block on each other.

Only for POSIX ``fork``; elsewhere the trainer keeps its thread pool.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback

from ..errors import PipelineError

__all__ = ["ProcessGroup", "ProcComm", "can_fork"]


def can_fork() -> bool:
    """Whether worker processes can be forked here: POSIX fork, and not inside a daemonic process
    (multiprocessing forbids those children: a fold already running in a forked child, a pool worker)."""
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


class _Failure:
    """An exception raised in a worker, sent to rank 0 in place of its results."""

    def __init__(self, text: str):
        self.text = text


def _recv(conn, rank: int):
    try:
        msg = conn.recv()
    except EOFError:
        raise PipelineError(f"training worker process {rank} stopped unexpectedly") from None
    if isinstance(msg, _Failure):
        raise PipelineError(f"training worker process {rank} failed:\n{msg.text}")
    return msg


class ProcComm:
    """One rank's view of the group: which shards it computes, and the all-gather of per-shard results.

    Parameters
    ----------
    rank, size : int
    conns : list of multiprocessing.connection.Connection
        Rank 0: one per child, in rank order; a child: its pipe to rank 0.
    """

    def __init__(self, rank: int, size: int, conns):
        self.rank, self.size, self.conns = rank, size, conns

    def owns(self, i: int, n: int) -> bool:
        """Whether this rank computes shard ``i`` of ``n`` (contiguous blocks; rank 0 first)."""
        return i * self.size // n == self.rank

    def allgather(self, fn, n: int, *, to_all: bool = True):
        """``[fn(0), ..., fn(n - 1)]``, each computed by the rank owning that shard.

        ``to_all=False`` gathers on rank 0 only (the other ranks get None back).
        """
        mine = {i: fn(i) for i in range(n) if self.owns(i, n)}
        if self.rank == 0:
            got = dict(mine)
            for r, conn in enumerate(self.conns, 1):
                got.update(_recv(conn, r))
            if to_all:
                for conn in self.conns:
                    conn.send(got)
            return [got.get(i) for i in range(n)]
        self.conns[0].send(mine)
        if not to_all:
            return None
        got = _recv(self.conns[0], 0)
        if not isinstance(got, dict):  # ("stop",): rank 0 gave up on this step
            raise EOFError
        return [got.get(i) for i in range(n)]


def _child(serve, rank: int, size: int, pipes) -> None:
    for r, (parent_end, child_end) in enumerate(pipes, 1):
        parent_end.close()
        if r != rank:
            child_end.close()
    conn = pipes[rank - 1][1]
    try:
        serve(ProcComm(rank, size, [conn]))
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException:
        try:
            conn.send(_Failure(traceback.format_exc()))
        except OSError:
            pass


class ProcessGroup:
    """Rank 0 (this process) and ``size - 1`` forked children running ``serve(comm)``.

    ``serve`` loops over ``comm.conns[0].recv()`` messages until it receives ``("stop",)``
    or the pipe closes. ``send(rank, msg)`` talks to one child; ``close`` stops them all.
    """

    def __init__(self, size: int, serve):
        ctx = mp.get_context("fork")
        pipes = [ctx.Pipe(duplex=True) for _ in range(size - 1)]
        self.procs = []
        try:
            for r in range(1, size):
                p = ctx.Process(target=_child, args=(serve, r, size, pipes), daemon=True, name=f"pippin-train-{r}")
                p.start()
                self.procs.append(p)
        finally:
            for _, child_end in pipes:
                child_end.close()
        self.conns = [parent_end for parent_end, _ in pipes]
        self.comm = ProcComm(0, size, self.conns)

    def send(self, rank: int, msg) -> None:
        try:
            self.conns[rank - 1].send(msg)
        except (BrokenPipeError, ConnectionResetError):
            raise PipelineError(f"training worker process {rank} stopped unexpectedly") from None

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []
