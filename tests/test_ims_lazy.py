"""Lazy imzML reading and out-of-core training on it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.ims import LazySpectra, TICNormalizer, read_imzml, write_imzml

REAL = [
    ("Example_Continuous.imzML", {}),
    ("Example_Continuous.imzML", {"mz_range": (200, 500)}),
    ("Example_Processed.imzML", {}),
    ("Example_Processed.imzML", {"n_bins": 300}),
    ("i2nca/combined_pc.imzML", {"bin_width": 2.0}),
    ("m2aia_peptide_5x4.imzML", {"dtype": None}),
]


@pytest.mark.parametrize("name, kwargs", REAL)
def test_lazy_read_equals_full_read(shared_data, name, kwargs):
    path = shared_data / "imzml" / name
    full = read_imzml(path, **kwargs)
    lazy = read_imzml(path, lazy=True, **kwargs)
    X = lazy.X
    assert isinstance(X, LazySpectra)
    assert X.shape == full.X.shape and X.dtype == full.X.dtype and len(X) == len(full.X)
    np.testing.assert_array_equal(lazy.mz, full.mz)
    np.testing.assert_array_equal(lazy.coords, full.coords)
    assert lazy.metadata == full.metadata
    np.testing.assert_array_equal(np.asarray(X), full.X)
    rows = np.array([len(X) - 1, 0, 2, 2])
    np.testing.assert_array_equal(X[rows].read(), full.X[rows])
    np.testing.assert_array_equal(X[1], full.X[1])
    np.testing.assert_array_equal(X[::2, 3:7], full.X[::2, 3:7])
    mask = np.arange(len(X)) % 3 == 0
    np.testing.assert_array_equal(X[mask][1:].read(), full.X[mask][1:])
    np.testing.assert_array_equal(X[rows, ...].read(), full.X[rows])  # sklearn's indexing
    if full.metadata["continuous"] and "mz_range" not in kwargs:
        assert X.memmap is not None and not X.memmap.flags.writeable
        np.testing.assert_array_equal(X.memmap.astype(full.X.dtype), full.X)
    else:
        assert X.memmap is None


def _write(tmp_path, n=240, L=30, seed=0, name="lazy"):
    rng = np.random.default_rng(seed)
    X = rng.gamma(2.0, 1.0, (n, L)).astype(np.float32)
    y = (X[:, 3] + X[:, 7] > X[:, 11] + 2.0).astype(int)
    path = tmp_path / f"{name}.imzML"
    write_imzml(path, X, np.column_stack([np.arange(n) % 16 + 1, np.arange(n) // 16 + 1]),
                np.linspace(100, 400, L))
    return path, X, y


def test_lazy_view_pickles_as_path_and_rows(tmp_path):
    path, X, _ = _write(tmp_path, n=400, L=200)
    lazy = read_imzml(path, lazy=True).X.map(TICNormalizer(scale=10.0))
    part = lazy[np.arange(0, 400, 3)]
    blob = pickle.dumps(part)
    assert len(blob) < 0.05 * X[::3].nbytes  # path, options, indices: no spectra
    back = pickle.loads(blob)
    np.testing.assert_allclose(back.read(), 10 * X[::3] / X[::3].sum(1, keepdims=True),
                               rtol=1e-6)
    with pytest.raises(IndexError, match="Row index out of range"):
        part[[10_000]]
    with pytest.raises(IndexError, match="Boolean index"):
        part[np.ones(3, bool)]


def test_lazy_map_checks_its_transformer(tmp_path):
    path, X, _ = _write(tmp_path)
    write_imzml(path, X - 5.0, [[i % 16 + 1, i // 16 + 1] for i in range(len(X))],
                np.linspace(100, 400, X.shape[1]))
    with pytest.raises(ValueError, match="Negative values.*TICNormalizer"):
        read_imzml(path, lazy=True).X.map(TICNormalizer())
    with pytest.raises(ValueError, match="'lazy' parameter of read_imzml"):
        read_imzml(path, lazy="yes")


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_fit_on_lazy_file_equals_fit_in_memory(tmp_path, monkeypatch, penalty):
    path, X, y = _write(tmp_path)
    lazy = read_imzml(path, lazy=True).X
    params = dict(max_epochs=3, batch_size=32, random_state=0, relevance_penalty=penalty,
                  module__hidden_units=(16,))
    ref = RelevanceNetClassifier(**params).fit(X, y)

    # never materialised: no np.asarray, every read at most one batch
    sizes = []
    real_read = LazySpectra.read

    def spy(self, rows=None):
        assert rows is not None, "the whole lazy X was read"
        sizes.append(len(np.atleast_1d(rows)))
        return real_read(self, rows)

    monkeypatch.setattr(LazySpectra, "read", spy)
    monkeypatch.setattr(LazySpectra, "__array__", lambda *a, **k: pytest.fail("materialised"))
    est = RelevanceNetClassifier(**params).fit(lazy, y)
    assert sizes and max(sizes) <= 32
    for (k, w_ref), w in zip(ref.module_.state_dict().items(),
                             est.module_.state_dict().values()):
        assert torch.equal(w_ref, w), k
    np.testing.assert_array_equal(est.predict_proba(lazy), ref.predict_proba(X))
    assert est.n_features_in_ == X.shape[1]
    monkeypatch.undo()
    with pytest.raises(TypeError, match=r"explain .* take arrays: pass X\[rows\]\.read\(\)"):
        est.explain(lazy)
    assert est.explain(lazy[:5].read()).shape == (5, X.shape[1])


def test_fit_on_lazy_file_with_nan_raises(tmp_path):
    path, X, y = _write(tmp_path)
    _poke(path, 100, 5, np.nan)  # a damaged .ibd: write_imzml refuses NaN
    with pytest.raises(ValueError, match="NaN or infinity.*spectrum 100"):
        RelevanceNetClassifier(max_epochs=1, batch_size=300).fit(
            read_imzml(path, lazy=True).X, y)


def _poke(path, row, col, value):
    """Overwrite one float32 intensity of a continuous file written by write_imzml."""
    from sklearn_relevance.ims._layout import parse

    layout = parse(path)
    with open(layout.ibd, "r+b") as f:
        f.seek(int(layout.int_offsets[row]) + 4 * col)
        f.write(np.float32(value).tobytes())


def _grid(n_jobs):
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut

    return GridSearchCV(
        RelevanceNetClassifier(max_epochs=2, batch_size=32, random_state=0,
                               relevance_penalty=0.1, module__hidden_units=(8,)),
        {"lr": [0.01, 0.05]}, cv=LeaveOneGroupOut(), n_jobs=n_jobs)


@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_grid_search_leave_one_lab_out_on_lazy_file(tmp_path, n_jobs):
    # with n_jobs=2 the workers receive the lazy X pickled as path + rows, and reopen it
    path, X, y = _write(tmp_path, n=180)
    labs = np.arange(len(X)) % 3
    lazy = read_imzml(path, lazy=True).X.map(TICNormalizer())
    ref = _grid(1).fit(lazy.read(), y, groups=labs)
    got = _grid(n_jobs).fit(lazy, y, groups=labs)
    np.testing.assert_array_equal(got.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"])


def test_relevance_masks_with_lazy_x_are_refused_before_training(tmp_path):
    path, X, y = _write(tmp_path)
    lazy = read_imzml(path, lazy=True).X
    clf = RelevanceNetClassifier(max_epochs=1, relevance_penalty=1.0, random_state=0)
    with pytest.raises(ValueError, match="relevance_mask.*out-of-core"):
        clf.fit(lazy, y, relevance_mask=np.ones(X.shape, dtype=np.float32))
    assert not getattr(clf, "initialized_", False)
