"""How long each study runs: the figures of ``sklearn-relevance studies <name> --help``.

Runs ``python -m sklearn_relevance.studies <name> --out <tmp> --quiet`` for
each study in a child process and prints its wall time and its CPU time
(user + system, from ``resource.getrusage(RUSAGE_CHILDREN)``). The studies
run torch with one thread and no worker processes, so the CPU time is what
the run takes on an idle 2-core CPU; the wall time on a shared, loaded
machine is longer (the load average is printed beside it).

Run ``python benchmarks/bench_study_runtimes.py [--quick] [--studies ct mri drr
multimodal]``. The figures in ``sklearn_relevance/studies/catalog.py`` say how
they were measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

STUDIES = ("ct", "mri", "drr", "multimodal")


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(name, quick):
    """(wall seconds, CPU seconds, load average before, after) of one run."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "sklearn_relevance.studies", name, "--out", out,
               "--quiet"] + ["--quick"] * quick
        load0, cpu0, t0 = os.getloadavg()[0], _cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return wall, cpu, load0, os.getloadavg()[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time the --quick runs")
    parser.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES))
    args = parser.parse_args(argv)
    print(f"{'study':<11} {'wall s':>8} {'CPU s':>8} {'load before/after':>18}"
          f"   ({'--quick' if args.quick else 'full'} runs, {os.cpu_count()} CPUs)")
    for name in args.studies:
        wall, cpu, l0, l1 = measure(name, args.quick)
        print(f"{name:<11} {wall:8.1f} {cpu:8.1f} {l0:8.1f} / {l1:<8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
