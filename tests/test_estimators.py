"""RelevanceNetClassifier / RelevanceNetRegressor: training, penalty, explain, contract."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from skorch.dataset import ValidSplit

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor
from sklearn_relevance.modules import MLP, ImageCNN, SpectrumCNN


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def small():
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=3, random_state=0
    )
    return X, y


def test_digits_penalty_sparsifies_relevance_and_keeps_accuracy(digits):
    """The issue's acceptance criterion: >= 30% lower L1 relevance, <= 5 points."""
    Xtr, Xte, ytr, yte = digits
    results = {}
    for penalty in (0.0, 0.03):
        clf = RelevanceNetClassifier(
            relevance_penalty=penalty, max_epochs=8, lr=0.003, random_state=0
        ).fit(Xtr, ytr)
        relevance = clf.explain(Xte, yte, target="true")
        results[penalty] = (clf.score(Xte, yte), np.abs(relevance).sum(1).mean())
    (acc0, l1_0), (acc1, l1_1) = results[0.0], results[0.03]
    assert l1_1 <= 0.7 * l1_0, results
    assert acc1 >= acc0 - 0.05, results
    assert acc0 > 0.9


def test_penalty_recorded_in_history_train_and_valid(small):
    X, y = small
    clf = RelevanceNetClassifier(
        relevance_penalty=0.1, max_epochs=3, train_split=ValidSplit(4), random_state=0
    ).fit(X, y)
    row = clf.history_[-1]
    for key in ("train_loss", "valid_loss", "train_relevance", "valid_relevance", "valid_acc"):
        assert key in row
    assert row["train_relevance"] > 0 and row["valid_relevance"] > 0


def test_validation_loss_includes_penalty(small):
    X, y = small
    kw = dict(max_epochs=1, train_split=ValidSplit(4), random_state=0, lr=1e-12)
    plain = RelevanceNetClassifier(relevance_penalty=0.0, **kw).fit(X, y)
    pen = RelevanceNetClassifier(relevance_penalty=1.0, **kw).fit(X, y)
    # same initial weights (same seed, lr ~ 0): the difference is the penalty
    diff = pen.history_[-1, "valid_loss"] - plain.history_[-1, "valid_loss"]
    np.testing.assert_allclose(diff, pen.history_[-1, "valid_relevance"], rtol=1e-4)


def test_string_labels_and_float64(small):
    X, y = small
    labels = np.array(["benign", "tumour"])[y]
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X.astype(np.float64), labels)
    assert list(clf.classes_) == ["benign", "tumour"]
    pred = clf.predict(X)
    assert set(pred) <= {"benign", "tumour"}
    assert clf.module_.layers[1].weight.dtype == torch.float32
    R = clf.explain(X, labels, target="true")
    assert R.shape == X.shape and R.dtype == np.float32


@pytest.mark.parametrize(
    "shape, cls",
    [((8,), MLP), ((1, 30), SpectrumCNN), ((1, 12, 12), ImageCNN), ((1, 6, 6, 6), ImageCNN)],
)
def test_default_module_from_shape(shape, cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, *shape))
    y = (X.reshape(24, -1)[:, 0] > 0).astype(int)
    clf = RelevanceNetClassifier(max_epochs=1, batch_size=8, random_state=0).fit(X, y)
    assert isinstance(clf.module_, cls)
    assert clf.input_shape_ == shape and clf.n_outputs_ == 2
    assert clf.explain(X[:5]).shape == (5, *shape)
    assert clf.predict_proba(X[:5]).shape == (5, 2)


def test_module_class_and_instance(small):
    X, y = small
    clf = RelevanceNetClassifier(MLP, module__hidden_units=(7,), max_epochs=1).fit(X, y)
    assert clf.module_.layers[1].out_features == 7
    net = torch.nn.Sequential(torch.nn.Linear(8, 2))
    clf = RelevanceNetClassifier(net, max_epochs=1).fit(X, y)
    assert clf.module_ is net


def test_explain_targets(small):
    X, y = small
    clf = RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    pred_idx = clf.predict_proba(X).argmax(1)
    R_pred = clf.explain(X)
    R_idx = clf.explain(X, target=pred_idx)
    np.testing.assert_allclose(R_pred, R_idx, atol=1e-6)
    R0 = clf.explain(X, target=0)
    R1 = clf.explain(X, target=1)
    assert not np.allclose(R0, R1)
    R_true = clf.explain(X, y, target="true")
    np.testing.assert_allclose(R_true[y == 0], R0[y == 0], atol=1e-6)
    # gradient x input equals explicit autograd
    Xt = torch.tensor(X[:4], dtype=torch.float32, requires_grad=True)
    clf.module_.eval()
    clf.module_(Xt)[:, 1].sum().backward()
    np.testing.assert_allclose(R1[:4], (Xt.grad * Xt).detach().numpy(), rtol=1e-5, atol=1e-6)
    # batch size does not change results
    np.testing.assert_allclose(clf.explain(X, batch_size=7), R_pred, atol=1e-6)
    G = clf.explain(X, explainer="gradient", target=1)
    np.testing.assert_allclose(G[:4], Xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_explain_bad_input(small):
    X, y = small
    clf = RelevanceNetClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="target"):
        clf.explain(X, target=5)
    with pytest.raises(ValueError, match="pass y"):
        clf.explain(X, target="true")
    with pytest.raises(ValueError, match="expecting 8 features"):
        clf.explain(X[:, :5])
    with pytest.raises(ValueError, match="explainer"):
        clf.explain(X, explainer="nonsense")
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.explain(X_nan)
    with pytest.raises(ValueError, match="expecting 8 features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="unseen labels"):
        clf.explain(X, np.full(len(X), 7), target="true")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"relevance_penalty": -1.0}, "'relevance_penalty' parameter of RelevanceNetClassifier must be a float in the range"),
        ({"relevance_explainer": "nope"}, "'relevance_explainer' parameter of RelevanceNetClassifier must be"),
        ({"relevance_norm": "l3"}, "'relevance_norm' parameter of RelevanceNetClassifier must be a str among"),
        ({"relevance_target": "some"}, "'relevance_target' parameter"),
        ({"lr": 0}, "'lr' parameter"),
        ({"max_epochs": -2}, "'max_epochs' parameter"),
    ],
)
def test_invalid_parameters_raise_before_training(small, params, match):
    X, y = small
    clf = RelevanceNetClassifier(**{"max_epochs": 1, **params})
    with pytest.raises(InvalidParameterError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


def test_non_differentiable_explainer_refused_for_training(small):
    X, y = small

    class NotDiff:
        differentiable = False

        def explain(self, module, X, target=None, *, create_graph=False):
            return X

    clf = RelevanceNetClassifier(relevance_penalty=0.1, relevance_explainer=NotDiff())
    with pytest.raises(ValueError, match="differentiable"):
        clf.fit(X, y)
    # usable without penalty, and for explain
    clf.set_params(relevance_penalty=0.0, max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(clf.explain(X[:3]), X[:3].astype(np.float32))


def test_explainer_params_through_set_params(small):
    X, y = small
    clf = RelevanceNetClassifier(relevance_explainer="gradient", max_epochs=1, random_state=0)
    clf.set_params(relevance_explainer__absolute=True)
    assert clf.get_params()["relevance_explainer__absolute"] is True
    clf.fit(X, y)
    assert clf.relevance_explainer_.absolute is True
    assert (clf.explain(X) >= 0).all()
    cloned = clone(clf)
    assert cloned.get_params()["relevance_explainer__absolute"] is True


def test_same_random_state_same_results(small):
    X, y = small
    a = RelevanceNetClassifier(relevance_penalty=0.05, max_epochs=3, random_state=3).fit(X, y)
    state = torch.random.get_rng_state()
    b = RelevanceNetClassifier(relevance_penalty=0.05, max_epochs=3, random_state=3).fit(X, y)
    # fit leaves the global torch RNG as it was
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.explain(X), b.explain(X))
    c = RelevanceNetClassifier(relevance_penalty=0.05, max_epochs=3, random_state=4).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_clone_pickle_joblib_roundtrip(small, tmp_path):
    X, y = small
    clf = RelevanceNetClassifier(relevance_penalty=0.05, max_epochs=2, random_state=0).fit(X, y)
    proba, R = clf.predict_proba(X), clf.explain(X)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    np.testing.assert_array_equal(again.explain(X), R)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
    np.testing.assert_array_equal(loaded.explain(X), R)
    fresh = clone(clf)
    assert not hasattr(fresh, "module_")
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X), proba)


def test_regressor_fit_predict_explain_penalty():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = 2 * X[:, 0] - X[:, 1]
    reg = RelevanceNetRegressor(max_epochs=30, lr=0.01, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.8
    assert reg.predict(X).shape == (200,)
    R = reg.explain(X)
    assert R.shape == X.shape
    # relevance concentrates on the informative features
    assert np.abs(R[:, :2]).mean() > 3 * np.abs(R[:, 2:]).mean()
    pen = RelevanceNetRegressor(relevance_penalty=0.5, max_epochs=30, random_state=0).fit(X, y)
    assert np.abs(pen.explain(X)).sum(1).mean() < np.abs(R).sum(1).mean()
    assert "train_relevance" in pen.history_[-1]
    Y = np.c_[y, -y]
    multi = RelevanceNetRegressor(relevance_penalty=0.1, max_epochs=2).fit(X, Y)
    assert multi.predict(X).shape == (200, 2)
    assert multi.explain(X, target=1).shape == X.shape
    assert not hasattr(reg, "predict_proba")


@pytest.mark.parametrize("target", ["true", "predicted", "all"])
def test_relevance_targets_train(small, target):
    X, y = small
    clf = RelevanceNetClassifier(
        relevance_penalty=0.1, relevance_target=target, max_epochs=2, random_state=0
    ).fit(X, y)
    assert np.isfinite(clf.history_[-1, "train_relevance"])


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_relevance_norms_train(small, norm):
    X, y = small
    clf = RelevanceNetClassifier(
        relevance_penalty=0.1, relevance_norm=norm, max_epochs=2, random_state=0
    ).fit(X, y)
    R = clf.explain(X, y, target="true")
    assert np.isfinite(R).all()


def test_penalty_gradient_is_double_backprop():
    """The training step's gradient equals d/dw (loss + p * ||x * dz/dx||_1)."""
    torch.manual_seed(0)
    X = torch.randn(16, 5)
    y = torch.randint(0, 2, (16,))
    clf = RelevanceNetClassifier(relevance_penalty=0.3, max_epochs=0, random_state=0)
    clf.fit(X.numpy(), y.numpy())
    module = clf.module_
    batch = (X, y)
    clf.history.new_epoch()
    clf.history.new_batch()
    clf._zero_grad_optimizer()
    clf.train_step_single(batch)
    got = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    Xr = X.clone().requires_grad_(True)
    out = module(Xr)
    loss = torch.nn.functional.cross_entropy(out, y)
    g, = torch.autograd.grad(out.gather(1, y[:, None]).sum(), Xr, create_graph=True)
    total = loss + 0.3 * (g * Xr).abs().sum(1).mean()
    expected = torch.autograd.grad(total, list(module.parameters()))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gridsearch_pipeline_two_workers(small):
    X, y = small
    pipe = make_pipeline(
        StandardScaler(), RelevanceNetClassifier(max_epochs=2, random_state=0)
    )
    grid = GridSearchCV(
        pipe,
        {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]},
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    assert set(grid.cv_results_["param_relevancenetclassifier__relevance_penalty"]) == {0.0, 0.1}
    assert grid.best_estimator_.predict(X).shape == (len(X),)


def test_workers_do_not_oversubscribe_torch_threads(small):
    """joblib's loky workers start torch with cpu_count // n_jobs threads (1 on 2 cores)."""
    import os

    from joblib import Parallel, delayed

    def fit_and_threads(X, y):
        clf = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
        return torch.get_num_threads(), clf.score(X, y)

    out = Parallel(n_jobs=2, backend="loky")(delayed(fit_and_threads)(*small) for _ in range(2))
    assert all(n <= max(1, (os.cpu_count() or 2) // 2) for n, _ in out), out


def test_dict_input_multimodal_shapes_checked():
    rng = np.random.default_rng(0)
    X = {"img": rng.normal(size=(20, 1, 8, 8)), "tab": rng.normal(size=(20, 3))}
    y = (X["tab"][:, 0] > 0).astype(int)
    net = _TwoInput()
    clf = RelevanceNetClassifier(net, max_epochs=2, relevance_penalty=0.1, random_state=0)
    clf.fit(X, y)
    R = clf.explain(X)
    assert set(R) == {"img", "tab"}
    assert R["img"].shape == (20, 1, 8, 8) and R["tab"].shape == (20, 3)
    with pytest.raises(ValueError, match="keys"):
        clf.predict({"img": X["img"]})
    with pytest.raises(ValueError, match="same number of samples"):
        clf.predict({"img": X["img"], "tab": X["tab"][:5]})
    with pytest.raises(ValueError, match=r"\['tab'\]"):
        clf.predict({"img": X["img"], "tab": X["tab"][:, :2]})


class _TwoInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.img = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
        self.tab = torch.nn.Linear(3, 4)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, img, tab):
        return self.head(torch.relu(torch.cat([self.img(img), self.tab(tab)], 1)))


def test_explainer_params_on_explainer_object_fitted_and_unfitted(small):
    from sklearn_relevance.explainers import IntegratedGradients

    X, y = small
    clf = RelevanceNetClassifier(
        relevance_explainer=IntegratedGradients(n_steps=3), max_epochs=1, random_state=0
    )
    clf.set_params(relevance_explainer__n_steps=5)
    assert clf.get_params()["relevance_explainer__n_steps"] == 5
    clf.fit(X, y)
    assert clf.relevance_explainer_.n_steps == 5
    assert clf.relevance_explainer.n_steps == 3  # the user's object is not mutated
    # on a fitted estimator too, and explain uses it at once
    clf.set_params(relevance_explainer__n_steps=2, relevance_explainer__method="riemann_left")
    expected = IntegratedGradients(n_steps=2, method="riemann_left")
    np.testing.assert_allclose(
        clf.explain(X[:4], target=1), clf.explain(X[:4], explainer=expected, target=1), rtol=1e-6
    )
    grid = GridSearchCV(clf, {"relevance_explainer__n_steps": [2, 4]}, cv=2).fit(X, y)
    assert grid.best_estimator_.relevance_explainer_.n_steps in (2, 4)


def test_default_criterion_takes_criterion_params(small):
    X, y = small
    weight = torch.tensor([1.0, 5.0])
    clf = RelevanceNetClassifier(max_epochs=1, criterion__weight=weight, random_state=0).fit(X, y)
    assert isinstance(clf.criterion_, torch.nn.CrossEntropyLoss)
    torch.testing.assert_close(clf.criterion_.weight, weight)
    plain = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert clf.history_[-1, "train_loss"] != plain.history_[-1, "train_loss"]


def test_encoded_probabilities_are_not_public():
    # the label-encoded predict_proba serves the validation-accuracy callback only
    from sklearn_relevance import RelevanceNetClassifier

    assert not hasattr(RelevanceNetClassifier, "predict_proba_encoded")
    assert hasattr(RelevanceNetClassifier, "_predict_proba_encoded")
