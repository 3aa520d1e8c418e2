"""Timing helper shared by the benchmark scripts (run them as scripts:
``python benchmarks/bench_<name>.py``, which puts this folder on the path)."""

from __future__ import annotations

import time


def best_of(fn, repeats):
    """Best wall-clock seconds of ``repeats`` calls of ``fn``, and its last result."""
    best, out = float("inf"), None
    for _ in range(max(int(repeats), 1)):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out
