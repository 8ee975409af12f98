"""Peak memory of one similarity fit, measured in a fresh process (used by ``bench_similarity_grid.py``).

    python benchmarks/fit_memory.py DIR LIBRARY SIMILARITY K     (LIBRARY: pippin or implicit)

prints one JSON object: ``peak_above_start`` (bytes), ``start_rss``, ``method``, ``seconds``.
``DIR`` holds the interaction matrix as ``save_matrix`` wrote it.

Why a fresh process per fit: inside a long-lived process a fit's reading depends on what ran
before it. glibc serves a large request from a free chunk of its heap when one is big enough,
whatever the mmap threshold, and memory freed there stays resident until trimmed; numpy's
``np.unique`` (the data generator) leaves such chunks behind. Measured on 20M log-normal
interactions x 5k items (jaccard, before the count kernels of ``recommend/weights.py``): 136 MB
above the start in a fresh process, in three runs, and in one process that loaded the matrix and
warmed up on a small one; 168-218 MB in processes that had generated the data (the matrix and the
fit's arrays sat in the brk heap, 190 MB of it faulted back in after ``malloc_trim``). So each
fit runs here, for Pippin and implicit alike:

1. load the matrix (``np.load``, no memory map: its pages are resident before the fit);
2. glibc maps every allocation of 64 kB or more on its own (``mallopt(M_MMAP_THRESHOLD)``), so
   freed arrays leave the resident set as they are freed: the peak is the fit's live memory;
3. one warm-up fit of the same library and similarity on the first 2,000 users, padded to the
   full shape (same id widths: numba loads the same kernels; Pippin on both of its walks), so
   loading compiled code is not counted;
4. ``gc.collect()``, ``malloc_trim(0)``, then the kernel's high-water mark of the resident set is
   reset (``/proc/self/clear_refs``, value 5) and ``VmRSS`` read as the start;
5. the fit; ``VmHWM`` afterwards is its exact peak (no sampling). Where ``clear_refs`` cannot be
   written, the resident set is sampled every millisecond instead (``method: "sampled"``).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
WARM_USERS = 2_000


def save_matrix(X: sp.csr_matrix, folder: str) -> str:
    """Write ``X`` [shape=(n_users, n_items)] for ``fit_peak``; returns ``folder``."""
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "data.npy"), X.data)
    np.save(os.path.join(folder, "indices.npy"), X.indices)
    np.save(os.path.join(folder, "indptr.npy"), X.indptr)
    np.save(os.path.join(folder, "shape.npy"), np.asarray(X.shape, dtype=np.int64))
    return folder


def load_matrix(folder: str) -> sp.csr_matrix:
    arrays = {name: np.load(os.path.join(folder, f"{name}.npy")) for name in ("data", "indices", "indptr", "shape")}
    return sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(arrays["shape"]))


def fit_peak(folder: str, library: str, similarity: str, k: int) -> dict:
    """Run one fit in a fresh Python process (this file as a script): its JSON result."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), folder, library, similarity, str(k)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fit_memory.py {library} {similarity} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _fitter(library: str, similarity: str, k: int):
    if library == "pippin":
        from pippin.recommend import item_similarity

        return lambda X: item_similarity(X, similarity=similarity, top_k=k, threshold=0.0)
    import implicit.nearest_neighbours as nn

    from bench_similarity_grid import PAIRS

    cls = getattr(nn, PAIRS[similarity])
    return lambda X: cls(K=k, num_threads=0).fit(X, show_progress=False)


def _warm(library: str, fit, X: sp.csr_matrix) -> None:
    """Step 3: the first ``WARM_USERS`` users with empty ones appended back to ``X``'s shape."""
    from bench_similarity_grid import _padded, each_walk

    small = _padded(X[:min(WARM_USERS, X.shape[0])], *X.shape)
    if library != "pippin":
        fit(small)
        return
    for _ in each_walk():
        fit(small)


def measure_here(folder: str, library: str, similarity: str, k: int) -> dict:
    """Steps 1-5 of the module docstring in this process (the script's body)."""
    from bench_similarity_grid import _libc, honest_rss

    honest_rss()  # M_MMAP_THRESHOLD 64 kB
    libc = _libc()
    X = load_matrix(folder)
    fit = _fitter(library, similarity, k)
    _warm(library, fit, X)
    gc.collect()
    libc.malloc_trim(0)
    exact = _reset_high_water_mark()
    start = _status("VmRSS")
    peak = [start]
    done = threading.Event()
    sampler = None
    if not exact:
        def sample():
            while not done.wait(0.001):
                peak[0] = max(peak[0], _status("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    t0 = time.perf_counter()
    out = fit(X)
    seconds = time.perf_counter() - t0
    if exact:
        peak[0] = _status("VmHWM")
    else:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _status("VmRSS"))
    del out
    return {"library": library, "similarity": similarity, "peak_above_start": peak[0] - start, "start_rss": start,
            "method": "VmHWM" if exact else "sampled", "seconds": round(seconds, 3)}


if __name__ == "__main__":
    folder, library, similarity, k = sys.argv[1:5]
    print(json.dumps(measure_here(folder, library, similarity, int(k))))
