"""scikit-learn conventions of the estimators and transformers.

Feature names of DataFrames (recorded at fit, refused when they differ at
predict / predict_proba / decision_function / score / explain / transform /
partial_fit), predictions that are the fitted network in its own dtype
(batch-independent to float32 precision), and the ``device`` parameter
checked at ``fit``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_dataframe_column_names_consistency

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
def _forward_in_batches(module, X, batch_size):
    """A plain ``torch.no_grad()`` forward of the module over the same batches."""
    with torch.no_grad():
        return np.concatenate([module(torch.as_tensor(X[i:i + batch_size])).numpy()
                               for i in range(0, len(X), batch_size)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_regressor_predictions_are_the_network_in_its_dtype(seed):
    """predict runs the fitted network as it is (float32), over the batches of
    ``batch_size``: exactly a plain forward over those batches, and the same
    as predicting each sample alone to float32 precision (scikit-learn's
    check_methods_subset_invariance asks for 1e-7 absolute: an expected
    failure, tests/test_common.py)."""
    rng = np.random.default_rng(seed)
    X = 3 * rng.uniform(size=(40, 3)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1]
    reg = RelevanceNetRegressor(random_state=seed, batch_size=16).fit(X, y)
    full = reg.predict(X)
    reg.module_.eval()
    np.testing.assert_array_equal(full, _forward_in_batches(reg.module_, X, 16).ravel())
    rows = np.concatenate([reg.predict(X[i:i + 1]) for i in range(len(X))])
    scale = np.abs(full).max()
    np.testing.assert_allclose(rows, full, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(reg.predict(X), full)  # deterministic


def test_classifier_outputs_are_the_network_in_its_dtype(rng):
    X = rng.normal(size=(30, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].mean((1, 2)) > 0).astype(int)
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0, batch_size=8).fit(X, y)
    clf.module_.eval()
    logits = _forward_in_batches(clf.module_, X, 8).astype(np.float64)
    np.testing.assert_array_equal(clf.decision_function(X), logits[:, 1] - logits[:, 0])
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[logits.argmax(1)])
    for method in (clf.predict_proba, clf.decision_function):
        full = method(X)
        rows = np.concatenate([method(X[i:i + 1]) for i in range(len(X))])
        np.testing.assert_allclose(rows, full, rtol=1e-5, atol=1e-6)


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
    """Holds a float32 tensor outside its parameters (a float64 copy of it
    could not run: predictions now run the module as it is)."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.linear = torch.nn.Linear(input_shape[0], n_outputs)
        self.mix = torch.eye(n_outputs) * 2.0  # a plain attribute: .to() skips it

    def forward(self, X):
        return self.linear(X) @ self.mix


def test_module_with_tensors_outside_its_parameters_is_predicted(rng):
    X = rng.normal(size=(40, 5)).astype(np.float32)
    y = X[:, 0] - X[:, 1]
    reg = RelevanceNetRegressor(_Float32Buffer, max_epochs=2, random_state=0).fit(X, y)
    with torch.no_grad():
        want = reg.module_(torch.from_numpy(X)).numpy().ravel()
    got = reg.predict(X)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


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
