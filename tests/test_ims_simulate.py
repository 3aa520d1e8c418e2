"""The multi-lab spectra simulator, and relevance regularisation across labs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from sklearn_relevance.ims import make_multilab_spectra


@pytest.fixture(scope="module")
def sim():
    return make_multilab_spectra(300, 3, n_mz=500, return_info=True, random_state=0)


def test_shapes_balance_and_determinism(sim):
    X, y, labs, info = sim
    assert X.shape == (300, 500) and X.dtype == np.float32 and (X >= 0).all()
    assert info["mz"].shape == (500,)
    for lab in ("lab0", "lab1", "lab2"):
        assert (labs == lab).sum() == 100 and y[labs == lab].sum() == 50
    X2, y2, _labs2 = make_multilab_spectra(300, 3, n_mz=500, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _, _ = make_multilab_spectra(300, 3, n_mz=500, random_state=1)
    assert not np.allclose(X, X3)


def test_labs_really_differ(sim):
    X, _y, labs, _info = sim
    Xn = X / X.sum(axis=1, keepdims=True)
    # the lab is easy to tell from a spectrum ...
    lab_acc = cross_val_score(LogisticRegression(max_iter=500), Xn * 500, labs, cv=3).mean()
    assert lab_acc > 0.95
    # ... through its baseline (low m/z end) and intensity scale
    low = X[:, :50].mean(axis=1)
    lab_means = [low[labs == lab].mean() for lab in ("lab0", "lab1", "lab2")]
    assert max(lab_means) / min(lab_means) > 1.5


def test_confounders_are_lab_specific_and_follow_class_inside_their_lab(sim):
    X, y, labs, info = sim
    mz = info["mz"]
    for lab, points in info["confounders"].items():
        cols = np.abs(mz[:, None] - points[None]).min(axis=1) < 15
        own = X[labs == lab][:, cols].sum(axis=1)
        other = X[labs != lab][:, cols].sum(axis=1)
        assert own.mean() > 5 * other.mean()  # present in its own lab only
        yk = y[labs == lab]
        diff = own[yk == 1].mean() - own[yk == 0].mean()
        spread = own.std()
        assert abs(diff) > 0.5 * spread  # strongly linked to the class there


def test_class_peaks_hold_in_every_lab(sim):
    X, y, labs, info = sim
    mz = info["mz"]
    for c in (0, 1):
        cols = np.abs(mz[:, None] - info["class_peaks"][c][None]).min(axis=1) < 10
        for lab in ("lab0", "lab1", "lab2"):
            rows = labs == lab
            mine = X[rows & (y == c)][:, cols].mean()
            theirs = X[rows & (y != c)][:, cols].mean()
            assert mine > theirs  # same direction in every lab
    assert info["class_mask"].any() and not (info["class_mask"] & info["confounder_mask"]).any()


@pytest.mark.parametrize("kwargs, match", [
    ({"n_labs": 0}, "'n_labs' parameter"),
    ({"confounder_corr": 0.2}, "'confounder_corr' parameter"),
    ({"mz_range": (500.0, 100.0)}, "'mz_range' parameter"),
    ({"n_class_peaks": 200, "n_mz": 50}, "Cannot place"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multilab_spectra(20, **{"n_labs": 2, **kwargs})


def test_penalty_chosen_by_leave_one_lab_out_beats_penalty_0_on_unseen_lab():
    """The point of the workflow, on a fixed seed: small data, an MLP, few epochs."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from sklearn_relevance import LeaveOneLabOut, RelevanceNetClassifier
    from sklearn_relevance.ims import MzResampler, TICNormalizer

    X, y, labs = make_multilab_spectra(500, 5, random_state=1)
    test = labs == "lab4"
    pipe = make_pipeline(
        TICNormalizer(scale=250.0),
        MzResampler(n_bins=250),
        RelevanceNetClassifier(max_epochs=30, lr=0.003, batch_size=32, random_state=1),
    )
    search = GridSearchCV(pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]},
                          cv=LeaveOneLabOut())
    search.fit(X[~test], y[~test], groups=labs[~test])
    chosen = search.best_params_["relevancenetclassifier__relevance_penalty"]
    assert chosen > 0
    plain = clone(pipe).fit(X[~test], y[~test])
    acc_plain = plain.score(X[test], y[test])
    acc_chosen = search.best_estimator_.score(X[test], y[test])
    assert acc_chosen >= acc_plain + 0.15, (acc_plain, acc_chosen)
