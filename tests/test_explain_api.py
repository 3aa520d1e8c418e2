"""``sklearn_relevance.explain`` on estimators, Pipelines and searches, and
explainer parameters by name (``get_explainer``, ``estimator.explain``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import sklearn_relevance
from sklearn_relevance import RelevanceNetClassifier, explain
from sklearn_relevance.explainers import IntegratedGradients, get_explainer


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def pipe(digits):
    X, y = digits
    return make_pipeline(
        MinMaxScaler(), RelevanceNetClassifier(max_epochs=2, random_state=0)
    ).fit(X, y)


def test_explain_is_public():
    assert "explain" in sklearn_relevance.__all__
    assert sklearn_relevance.explain is explain


def test_pipeline_is_explained_from_raw_x(pipe, digits):
    X, _ = digits
    R = explain(pipe, X[:7])
    np.testing.assert_array_equal(R, pipe[-1].explain(pipe[:-1].transform(X[:7])))
    assert R.shape == (7, 64)
    # what the public function spares: the final step on raw X is another result
    assert not np.allclose(R, pipe[-1].explain(X[:7]))


def test_plain_estimator_and_nested_pipeline(pipe, digits):
    X, _ = digits
    net = pipe[-1]
    Xs = pipe[0].transform(X[:5])
    np.testing.assert_array_equal(explain(net, Xs), net.explain(Xs))
    nested = make_pipeline(pipe[0], make_pipeline(StandardScaler().fit(Xs), net))
    inner_X = nested[-1][0].transform(pipe[0].transform(X[:5]))
    np.testing.assert_array_equal(explain(nested, X[:5]), net.explain(inner_X))


def test_search_is_explained_through_best_estimator(digits):
    X, y = digits
    grid = GridSearchCV(
        make_pipeline(MinMaxScaler(), RelevanceNetClassifier(max_epochs=1, random_state=0)),
        {"relevancenetclassifier__relevance_penalty": [0.0, 0.01]}, cv=2,
    ).fit(X, y)
    np.testing.assert_array_equal(
        explain(grid, X[:4], y[:4], target="true"),
        explain(grid.best_estimator_, X[:4], y[:4], target="true"),
    )


def test_search_without_refit_is_refused(digits):
    X, y = digits
    grid = GridSearchCV(
        RelevanceNetClassifier(max_epochs=1, random_state=0),
        {"lr": [0.01]}, cv=2, refit=False,
    ).fit(X / 16, y)
    with pytest.raises(ValueError, match="refit=False"):
        explain(grid, X[:3] / 16)


def test_unfitted_is_not_fitted_error(digits):
    X, y = digits
    with pytest.raises(NotFittedError):
        explain(make_pipeline(MinMaxScaler(), RelevanceNetClassifier()), X[:3])
    with pytest.raises(NotFittedError):
        explain(GridSearchCV(RelevanceNetClassifier(), {"lr": [0.1]}), X[:3])


def test_estimator_without_explain_is_refused(digits):
    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=50)).fit(X, y)
    with pytest.raises(ValueError, match="The 'estimator' parameter of explain.*"
                                         "LogisticRegression.*step 'logisticregression'"):
        explain(pipe, X[:3])


def test_options_reach_the_final_estimator(pipe, digits):
    X, _ = digits
    a = explain(pipe, X[:4], explainer="integrated_gradients", n_steps=8, target=3)
    b = pipe[-1].explain(pipe[:-1].transform(X[:4]),
                         explainer=IntegratedGradients(n_steps=8), target=3)
    np.testing.assert_allclose(a, b)


# ------------------------------------------------------- parameters by name
def test_get_explainer_takes_parameters_by_name():
    exp = get_explainer("integrated_gradients", n_steps=64)
    assert isinstance(exp, IntegratedGradients) and exp.n_steps == 64
    # they override what a name stands for
    assert get_explainer("smoothgrad_squared", squared=False).squared is False
    # an instance is cloned, never changed
    base = IntegratedGradients(n_steps=5)
    other = get_explainer(base, n_steps=7)
    assert other is not base and other.n_steps == 7 and base.n_steps == 5
    assert get_explainer(base) is base


@pytest.mark.parametrize("explainer", ["integrated_gradients", IntegratedGradients()])
def test_get_explainer_names_an_unknown_parameter(explainer):
    with pytest.raises(ValueError, match="Unknown parameter 'n_stepz'.*IntegratedGradients"
                                         ".*'n_steps'"):
        get_explainer(explainer, n_stepz=64)


def test_estimator_explain_takes_explainer_parameters(pipe, digits):
    X, _ = digits
    net, Xs = pipe[-1], pipe[0].transform(X[:4])
    ref = net.explain(Xs, explainer=IntegratedGradients(n_steps=64))
    np.testing.assert_allclose(
        net.explain(Xs, explainer="integrated_gradients", n_steps=64), ref)
    np.testing.assert_allclose(
        net.explain(Xs, explainer="integrated_gradients",
                    explainer_params={"n_steps": 64}), ref)
    # keywords win over the dict
    np.testing.assert_allclose(
        net.explain(Xs, explainer="ig", explainer_params={"n_steps": 3}, n_steps=64), ref)
    assert not np.allclose(net.explain(Xs, explainer="ig", n_steps=2), ref)


def test_estimator_explain_parameters_apply_to_relevance_explainer(digits):
    X, y = digits
    net = RelevanceNetClassifier(relevance_explainer="ig", relevance_explainer__n_steps=2,
                                 max_epochs=1, random_state=0).fit(X / 16, y)
    ref = net.explain(X[:3] / 16, explainer=IntegratedGradients(n_steps=32))
    np.testing.assert_allclose(net.explain(X[:3] / 16, n_steps=32), ref)


def test_estimator_explain_refuses_unknown_parameters_before_work(pipe, digits):
    X, _ = digits
    net = pipe[-1]
    with pytest.raises(ValueError, match="Unknown parameter 'n_stepz'"):
        net.explain(X[:2], explainer="ig", n_stepz=3)
    with pytest.raises(ValueError, match="The 'explainer_params' parameter of explain "
                                         "must be a dict"):
        net.explain(X[:2], explainer="ig", explainer_params=[("n_steps", 3)])


def test_batches_of_one_explain_call_do_not_share_a_seeded_explainers_noise():
    # one sample repeated: under shared noise, rows 0 and 5 (first rows of
    # two batches of 5) would get the very same map
    import copy

    from sklearn_relevance import RelevanceNetClassifier
    import torch

    from sklearn_relevance.explainers import SmoothGrad

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    X = np.repeat(np.random.default_rng(0).normal(size=(1, 6)).astype(np.float32), 10, 0)
    est = RelevanceNetClassifier(copy.deepcopy(net), max_epochs=0, random_state=0)
    est.fit(X[:2], np.array([0, 1]))
    sg = SmoothGrad(n_samples=3, stdevs=0.5, random_state=0)
    R = est.explain(X, target=1, explainer=sg, batch_size=5)
    assert not np.allclose(R[0], R[5])
    np.testing.assert_array_equal(R, est.explain(X, target=1, explainer=sg, batch_size=5))
    # the first batch draws what the explainer alone draws for those rows
    alone = sg.explain(est.module_.eval(), torch.as_tensor(X[:5]), 1).detach().numpy()
    np.testing.assert_allclose(R[:5], alone, rtol=1e-6, atol=1e-7)
    # one call: the explainer's own draws
    np.testing.assert_allclose(est.explain(X, target=1, explainer=sg, batch_size=-1),
                               sg.explain(est.module_.eval(), torch.as_tensor(X), 1)
                               .detach().numpy(), rtol=1e-6, atol=1e-7)
