"""Timing shared by the benchmark scripts (imported as ``timing``: scripts run from this folder)."""

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """Call ``fn`` once to warm up, then ``repeats`` times; the median wall-clock seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
