"""Timing helper shared by the benchmark scripts (run them as scripts:
``python benchmarks/bench_<name>.py``, which puts this folder on the path)."""

from __future__ import annotations

import time


def best_of(fn, repeats, clock=time.perf_counter):
    """Best seconds of ``repeats`` calls of ``fn`` by ``clock`` (wall clock by
    default; ``time.process_time`` for this process's CPU time), and its last
    result."""
    best, out = float("inf"), None
    for _ in range(max(int(repeats), 1)):
        start = clock()
        out = fn()
        best = min(best, clock() - start)
    return best, out
