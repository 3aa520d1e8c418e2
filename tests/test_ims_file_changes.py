"""imzML files that change after they were opened: every read detects it and raises."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sklearn_relevance.ims import read_imzml, write_imzml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _grid(n):
    return [[i % 8 + 1, i // 8 + 1] for i in range(n)]


def _continuous(path, n=40, L=50, seed=0):
    X = np.random.default_rng(seed).random((n, L), dtype=np.float32)
    write_imzml(path, X, _grid(n), np.linspace(100, 600, L))
    return X


def _processed(path, n=40, k=30, seed=0):
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(seed)
    with ImzMLWriter(str(path), mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i, xy in enumerate(_grid(n)):
            w.addSpectrum(np.sort(rng.uniform(100, 600, k)), rng.random(k, dtype=np.float32),
                          (*xy, 1))


def _ibd(path):
    return path.with_suffix(".ibd")


@pytest.mark.parametrize("kwargs", [{}, {"mz_range": (200, 400)}, {"n_bins": 20}])
def test_truncated_ibd_after_opening_raises(tmp_path, kwargs):
    path = tmp_path / "a.imzML"
    _continuous(path)
    X = read_imzml(path, lazy=True, **kwargs).X
    X[:3].read()
    with open(_ibd(path), "r+b") as f:
        f.truncate(os.path.getsize(_ibd(path)) // 2)
    for read in (X.read, lambda: X[5:9].read(), lambda: X[35]):
        with pytest.raises(ValueError, match=r"a\.ibd' changed after .* size changed"):
            read()


@pytest.mark.parametrize("kwargs", [{}, {"mz_range": (200, 400)}, {"n_bins": 20}])
@pytest.mark.parametrize("write", [_continuous, _processed])
def test_ibd_of_another_acquisition_renamed_over_raises(tmp_path, write, kwargs):
    a, b = tmp_path / "a.imzML", tmp_path / "b.imzML"
    write(a, seed=0)
    write(b, seed=1)  # same layout, other values (and UUID)
    X = read_imzml(a, lazy=True, **kwargs).X
    before = X[:4].read()
    os.replace(_ibd(b), _ibd(a))
    with pytest.raises(ValueError, match=r"a\.ibd' changed after .* replaced by another"):
        X[:4].read()
    with pytest.raises(ValueError, match="does not belong to"):  # a new read: UUIDs differ
        read_imzml(a, **kwargs)
    assert before.shape[0] == 4


def test_pickled_lazy_x_refuses_a_changed_pair(tmp_path):
    path = tmp_path / "a.imzML"
    _continuous(path, L=50)
    blob = pickle.dumps(read_imzml(path, lazy=True).X[:10])
    np.testing.assert_array_equal(pickle.loads(blob).read(), read_imzml(path).X[:10])
    _continuous(path, L=60, seed=1)  # another acquisition at the same path: 60 columns
    with pytest.raises(ValueError, match="changed after this LazySpectra was pickled"):
        pickle.loads(blob)
    _continuous(path, L=50, seed=2)  # same shape, other UUID
    with pytest.raises(ValueError, match="changed after this LazySpectra was pickled.*uuid"):
        pickle.loads(blob)


def test_pickled_lazy_x_refuses_a_truncated_ibd(tmp_path):
    path = tmp_path / "a.imzML"
    _continuous(path)
    blob = pickle.dumps(read_imzml(path, lazy=True).X)
    with open(_ibd(path), "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match="truncated"):
        pickle.loads(blob)


_TRUNCATE_DURING_FIT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from skorch.callbacks import Callback
    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.ims import read_imzml, write_imzml

    path = os.path.join(sys.argv[1], "a.imzML")
    ibd = path[:-6] + ".ibd"
    n, L = 256, 64
    X = np.random.default_rng(0).random((n, L), dtype=np.float32)
    write_imzml(path, X, [[i % 16 + 1, i // 16 + 1] for i in range(n)],
                np.linspace(100, 600, L))
    lazy = read_imzml(path, lazy=True).X
    memmap = lazy.memmap  # a map held by the caller must not matter either

    class Truncate(Callback):
        def on_batch_end(self, net, **kwargs):
            with open(ibd, "r+b") as f:
                f.truncate(1000)

    try:
        RelevanceNetClassifier(max_epochs=2, batch_size=32, random_state=0,
                               callbacks=[Truncate()]).fit(lazy, np.arange(n) % 2)
    except ValueError as exc:
        print("raised:", exc)
    try:
        lazy.read()
    except ValueError as exc:
        print("raised:", exc)
""")


def test_truncating_the_ibd_during_an_out_of_core_fit_raises_not_sigbus(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _TRUNCATE_DURING_FIT, str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])  # -7: SIGBUS
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("raised:")]
    assert len(lines) == 2, out.stdout
    assert all("a.ibd' changed after" in ln and "size changed" in ln for ln in lines)
