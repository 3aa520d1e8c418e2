"""scikit-learn conventions of the estimators and transformers.

Feature names of DataFrames (recorded at fit, refused when they differ at
predict / predict_proba / decision_function / score / explain / transform /
partial_fit), predictions that do not depend on the batch a sample is
predicted in, and the ``device`` parameter checked at ``fit``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_methods_subset_invariance,
)

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor
from sklearn_relevance.transformers import RegionRelevance, RelevanceTransformer

pd = pytest.importorskip("pandas")

NAMES = ["age", "ki67", "size", "grade"]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 4)), columns=NAMES)
    y = (X["age"] - X["size"] > 0).astype(int).to_numpy()
    return X, y


@pytest.fixture(scope="module", params=["classifier", "regressor"])
def fitted_on_frame(request, frame):
    X, y = frame
    if request.param == "classifier":
        est = RelevanceNetClassifier(max_epochs=2, random_state=0)
    else:
        est = RelevanceNetRegressor(max_epochs=2, random_state=0)
    return est.fit(X, y), X, y


def _methods(est, y):
    methods = {"predict": est.predict, "explain": est.explain,
               "score": lambda X: est.score(X, y)}
    if hasattr(est, "predict_proba"):
        methods["predict_proba"] = est.predict_proba
        methods["decision_function"] = est.decision_function
    return methods


def test_fit_on_frame_records_feature_names(fitted_on_frame):
    est, X, _ = fitted_on_frame
    assert isinstance(est.feature_names_in_, np.ndarray)
    assert est.feature_names_in_.dtype == object
    assert list(est.feature_names_in_) == NAMES and est.n_features_in_ == 4


@pytest.mark.parametrize("columns, message", [
    (NAMES[::-1], "Feature names must be in the same order as they were in fit."),
    (["a", "b", "c", "d"], "Feature names unseen at fit time:\n- a\n"),
    (NAMES[:3], "Feature names seen at fit time, yet now missing:\n- grade\n"),
])
def test_mismatched_feature_names_refused(fitted_on_frame, columns, message):
    est, X, y = fitted_on_frame
    if columns == NAMES[:3]:
        bad = X[columns]
    else:
        bad = pd.DataFrame(X.to_numpy(), columns=columns)
    expected = re.escape("The feature names should match those that were passed "
                         "during fit.\n" + message)
    for name, method in _methods(est, y).items():
        with pytest.raises(ValueError, match=expected):
            method(bad)
    with pytest.raises(ValueError, match=expected):
        clone(est).fit(X, y).partial_fit(bad, y)


def test_permuted_frame_is_refused_not_predicted(fitted_on_frame):
    """The permuted frame once gave predictions (of the wrong columns)."""
    est, X, _ = fitted_on_frame
    with pytest.raises(ValueError, match="same order"):
        est.predict(X[NAMES[::-1]])
    np.testing.assert_array_equal(est.predict(X), est.predict(X[NAMES]))


def test_feature_name_warnings_and_refit_as_scikit_learn(fitted_on_frame):
    est, X, y = fitted_on_frame
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X.to_numpy())
    plain = clone(est).fit(X.to_numpy(), y)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names"):
        plain.predict(X)
    # a refit on an array forgets the names of an earlier fit
    refit = clone(est).fit(X, y).fit(X.to_numpy(), y)
    assert not hasattr(refit, "feature_names_in_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refit.predict(X.to_numpy())


def test_dict_input_has_no_feature_names(frame):
    X, y = frame
    Xd = {"a": X.to_numpy()[:, :2].astype(np.float32),
          "b": X.to_numpy()[:, 2:].astype(np.float32)}
    est = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert hasattr(est, "feature_names_in_")
    est.fit(Xd, y)
    assert not hasattr(est, "feature_names_in_")


@pytest.mark.parametrize("make", [
    lambda: RelevanceNetClassifier(max_epochs=2, random_state=0),
    lambda: RelevanceNetRegressor(max_epochs=2, random_state=0),
    lambda: RelevanceTransformer(RelevanceNetClassifier(max_epochs=2, random_state=0),
                                 prefit=False),
    lambda: RegionRelevance(),
], ids=["classifier", "regressor", "relevance_transformer", "region_relevance"])
def test_scikit_learn_column_names_check(make):
    """scikit-learn's own check (not run by parametrize_with_checks)."""
    est = make()
    check_dataframe_column_names_consistency(type(est).__name__, est)


def test_transformers_refuse_permuted_names(frame):
    X, y = frame
    net = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    tr = RelevanceTransformer(net, explainer="gradient").fit(X)
    assert list(tr.feature_names_in_) == NAMES
    with pytest.raises(ValueError, match="same order"):
        tr.transform(X[NAMES[::-1]])
    with pytest.raises(ValueError, match="same order"):  # a prefit net, at fit
        RelevanceTransformer(net).fit(X[NAMES[::-1]])
    maps = pd.DataFrame(np.abs(tr.transform(X)), columns=NAMES)
    rr = RegionRelevance().fit(maps)
    assert list(rr.feature_names_in_) == NAMES
    with pytest.raises(ValueError, match="same order"):
        rr.transform(maps[NAMES[::-1]])


# --------------------------------------------------------------- batches
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_regressor_predictions_do_not_depend_on_the_batch(seed):
    """float32 kernels differ by batch size (2.4e-7 in scikit-learn's
    check_methods_subset_invariance); predictions now run in float64."""
    rng = np.random.default_rng(seed)
    X = 3 * rng.uniform(size=(40, 3))
    y = X[:, 0] - 2 * X[:, 1]
    reg = RelevanceNetRegressor(random_state=seed).fit(X, y)
    full = reg.predict(X)
    rows = np.concatenate([reg.predict(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(rows, full, rtol=1e-12, atol=1e-12)
    small = clone(reg).set_params(batch_size=3).fit(X, y)
    np.testing.assert_allclose(small.set_params(batch_size=64).predict(X),
                               small.set_params(batch_size=3).predict(X),
                               rtol=1e-12, atol=1e-12)
    check_methods_subset_invariance("RelevanceNetRegressor", RelevanceNetRegressor())


def test_classifier_outputs_do_not_depend_on_the_batch(rng):
    X = rng.normal(size=(30, 1, 8, 8))
    y = (X[:, 0, :4].mean((1, 2)) > 0).astype(int)
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    for method in (clf.predict_proba, clf.decision_function):
        full = method(X)
        rows = np.concatenate([method(X[i:i + 1]) for i in range(len(X))])
        assert full.dtype == np.float64
        np.testing.assert_allclose(rows, full, rtol=1e-12, atol=1e-12)


def test_predictions_equal_the_float32_network_to_float32_precision(rng):
    X = rng.normal(size=(50, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    clf.module_.train()  # predict uses an eval copy and leaves the module as it is
    with torch.no_grad():
        logits = clf.module_.eval()(torch.from_numpy(X)).numpy()
    clf.module_.train()
    np.testing.assert_allclose(clf.decision_function(X), logits[:, 1] - logits[:, 0],
                               rtol=1e-5, atol=1e-6)
    assert clf.module_.training
    assert next(clf.module_.parameters()).dtype == torch.float32


class _Float32Buffer(torch.nn.Module):
    """Holds a float32 tensor outside its parameters: it cannot run in float64."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.linear = torch.nn.Linear(input_shape[0], n_outputs)
        self.mix = torch.eye(n_outputs) * 2.0  # a plain attribute: .to() skips it

    def forward(self, X):
        return self.linear(X) @ self.mix


def test_module_that_cannot_run_in_float64_is_predicted_in_float32(rng):
    X = rng.normal(size=(40, 5)).astype(np.float32)
    y = X[:, 0] - X[:, 1]
    reg = RelevanceNetRegressor(_Float32Buffer, max_epochs=2, random_state=0).fit(X, y)
    with torch.no_grad():
        want = reg.module_(torch.from_numpy(X)).numpy().ravel()
    got = reg.predict(X)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- device
@pytest.mark.parametrize("device, match", [
    ("cuda", "CUDA is not available"),
    ("cuda:0", "CUDA is not available"),
    ("nonsense", "it is not a torch device"),
])
@pytest.mark.parametrize("cls", [RelevanceNetClassifier, RelevanceNetRegressor])
def test_unusable_device_refused_at_fit_before_any_work(cls, device, match, monkeypatch):
    """``device="cuda"`` without CUDA once failed inside skorch's initialisation."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    X = np.zeros((6, 3), dtype=np.float32)
    est = cls(device=device)
    with pytest.raises(ValueError, match=f"'device' parameter of {cls.__name__} is "
                                         f"'{device}', but {match}"):
        est.fit(X, np.array([0, 1] * 3))
    assert not hasattr(est, "module_") and not est.initialized_
