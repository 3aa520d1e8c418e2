"""skorch's save/load idiom (``initialize`` then ``load_params``), the
classifier's ``classes=``, and joblib round trips."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16).astype(np.float32), y[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return RelevanceNetClassifier(relevance_penalty=0.01, max_epochs=2,
                                  random_state=0).fit(X, y)


def test_initialize_then_load_params(fitted, digits, tmp_path):
    X, y = digits
    fitted.save_params(f_params=tmp_path / "params.pt")
    net = RelevanceNetClassifier(module__input_shape=(64,), classes=np.arange(10))
    net.initialize()
    net.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_array_equal(net.predict(X), fitted.predict(X))
    np.testing.assert_allclose(net.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_allclose(net.explain(X[:5]), fitted.explain(X[:5]))
    assert net.n_features_in_ == 64 and net.score(X, y) == fitted.score(X, y)


def test_initialize_with_string_labels_and_a_spectrum_cnn(tmp_path, rng):
    X = rng.normal(size=(40, 1, 32)).astype(np.float32)
    y = np.where(X[:, 0, :4].sum(1) > 0, "tumour", "normal")
    net = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "p.pt")
    new = RelevanceNetClassifier(module__input_shape=(1, 32),
                                 classes=["tumour", "normal"])  # any order
    new.initialize().load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_array_equal(new.predict(X), net.predict(X))


def test_regressor_initialize_then_load_params(digits, tmp_path):
    X, y = digits
    reg = RelevanceNetRegressor(max_epochs=2, random_state=0).fit(X, y.astype(float))
    reg.save_params(f_params=tmp_path / "r.pt")
    new = RelevanceNetRegressor(module__input_shape=(64,))  # one output by default
    new.initialize().load_params(f_params=tmp_path / "r.pt")
    np.testing.assert_allclose(new.predict(X), reg.predict(X), rtol=1e-6)
    assert new.predict(X).shape == (len(X),)


class TinyNet(torch.nn.Module):
    """A user module that takes neither input_shape nor n_outputs."""

    def __init__(self, hidden=8):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, 10))

    def forward(self, X):
        return self.body(X)


def test_user_module_initialize_then_load_params(digits, tmp_path):
    X, y = digits
    net = RelevanceNetClassifier(TinyNet, module__hidden=5, max_epochs=1,
                                 random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "t.pt")
    # module__input_shape serves the estimator; TinyNet does not receive it
    new = RelevanceNetClassifier(TinyNet, module__hidden=5, module__input_shape=(64,),
                                 classes=np.arange(10))
    new.initialize().load_params(f_params=tmp_path / "t.pt")
    np.testing.assert_allclose(new.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("params, names", [
    ({}, ["module__input_shape", "classes"]),
    ({"module__input_shape": (64,)}, ["classes"]),
    ({"classes": [0, 1]}, ["module__input_shape"]),
])
def test_initialize_without_sizes_names_the_parameters(params, names):
    with pytest.raises(ValueError, match="initialize\\(\\) before fit") as info:
        RelevanceNetClassifier(**params).initialize()
    for name in names:
        assert name in str(info.value)


def test_regressor_initialize_without_shape_names_it():
    with pytest.raises(ValueError, match="module__input_shape"):
        RelevanceNetRegressor().initialize()


@pytest.mark.parametrize("params, match", [
    ({"module__input_shape": (0, 4), "classes": [0, 1]}, "'module__input_shape'"),
    ({"module__input_shape": "wide", "classes": [0, 1]}, "'module__input_shape'"),
    ({"module__input_shape": (4,), "classes": [1]}, "'classes' parameter"),
    ({"module__input_shape": (4,), "classes": [0, 1], "module__n_outputs": 3},
     "'module__n_outputs'"),
])
def test_initialize_refuses_bad_sizes(params, match):
    with pytest.raises(ValueError, match=match):
        RelevanceNetClassifier(**params).initialize()


def test_classes_parameter_at_fit(digits):
    X, y = digits
    keep = y < 3
    clf = RelevanceNetClassifier(classes=[0, 1, 2, 3], max_epochs=1,
                                 random_state=0).fit(X[keep], y[keep])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2, 3])
    assert clf.predict_proba(X[:5]).shape == (5, 4)
    with pytest.raises(ValueError, match="unseen labels"):
        RelevanceNetClassifier(classes=[0, 1], max_epochs=1).fit(X[keep], y[keep])


def test_joblib_round_trip(fitted, digits, tmp_path):
    X, _ = digits
    joblib.dump(fitted, tmp_path / "net.joblib")
    loaded = joblib.load(tmp_path / "net.joblib")
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_allclose(loaded.explain(X[:4]), fitted.explain(X[:4]))


def test_module_instance_knows_its_input_shape(digits, tmp_path):
    """A library module instance carries input_shape: classes suffice."""
    from sklearn_relevance.modules import MLP

    X, y = digits
    net = RelevanceNetClassifier(MLP((64,), 10, hidden_units=(16,)), max_epochs=1,
                                 random_state=0).fit(X, y)
    net.save_params(f_params=tmp_path / "m.pt")
    new = RelevanceNetClassifier(MLP((64,), 10, hidden_units=(16,)), classes=range(10))
    new.initialize().load_params(f_params=tmp_path / "m.pt")
    np.testing.assert_allclose(new.predict_proba(X), net.predict_proba(X))
