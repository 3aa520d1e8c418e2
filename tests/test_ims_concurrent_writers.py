"""Concurrent writers of one imzML target leave one complete, readable pair."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from sklearn_relevance.ims import read_imzml, write_imzml

COORDS = [[1, 1], [2, 1], [1, 2]]
MZ = [100.0, 200.0, 300.0, 400.0]


def _data(writer, round_):
    return np.full((3, 4), 10.0 * round_ + writer, np.float32)


def _check_pair(path, round_, n_writers):
    X = read_imzml(path).X  # refused if the .ibd and .imzML came from two writers
    assert X[0, 0] in {10.0 * round_ + w for w in range(n_writers)}
    np.testing.assert_array_equal(X, np.full_like(X, X[0, 0]))
    left = [p.name for p in path.parent.iterdir()]
    assert sorted(left) == ["t.ibd", "t.imzML"], left


@pytest.mark.parametrize("slow_rename", [False, True])
def test_threads_writing_one_target_leave_one_complete_pair(tmp_path, monkeypatch,
                                                            slow_rename):
    # slow_rename widens the window between the two renames of a pair (where two
    # writers' halves interleaved before the lock): every round then races there
    if slow_rename:
        real = os.replace

        def replace(src, dst):
            real(src, dst)
            time.sleep(0.002)

        monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "t.imzML"
    n_writers, rounds = 3, 15 if slow_rename else 40
    for r in range(rounds):
        barrier, errors = threading.Barrier(n_writers), []

        def write(w, r=r, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                write_imzml(path, _data(w, r), COORDS, MZ)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(n_writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        _check_pair(path, r, n_writers)


_WORKER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from sklearn_relevance.ims import write_imzml

    real = os.replace

    def replace(src, dst):  # a wide window between the two renames of a pair
        real(src, dst)
        time.sleep(0.002)

    os.replace = replace
    w, path = int(sys.argv[1]), sys.argv[2]
    for line in sys.stdin:
        r = int(line)
        write_imzml(path, np.full((3, 4), 10.0 * r + w, np.float32),
                    [[1, 1], [2, 1], [1, 2]], [100.0, 200.0, 300.0, 400.0])
        print("done", flush=True)
""")


def test_processes_writing_one_target_leave_one_complete_pair(tmp_path):
    path = tmp_path / "t.imzML"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    n_writers = 3
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(w), str(path)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env) for w in range(n_writers)]
    try:
        for r in range(12):
            for p in workers:  # all start their write at about the same time
                p.stdin.write(f"{r}\n")
                p.stdin.flush()
            for p in workers:
                assert p.stdout.readline().strip() == "done", p.poll()
            _check_pair(path, r, n_writers)
    finally:
        for p in workers:
            p.stdin.close()
        for p in workers:
            assert p.wait(timeout=60) == 0
