"""The new metric families through the registry: scorers, GridSearchCV and
compare_explainers' sanity columns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.evaluation import compare_explainers
from sklearn_relevance.explainers import Gradient
from sklearn_relevance.metrics import make_relevance_scorer

#: small settings per scorer, so that every new scorer runs in well under a second
FAST = {
    "faithfulness_correlation": dict(n_runs=5, subset_size=6),
    "faithfulness_estimate": dict(features_in_step=9),
    "monotonicity_arya": dict(features_in_step=9),
    "monotonicity_nguyen": dict(features_in_step=12, n_samples=2),
    "neg_infidelity": dict(patch_sizes=[3]),
    "neg_road_morf": dict(percentages=[20, 60]),
    "road_lerf": dict(percentages=[20, 60]),
    "irof": {},
    "neg_selectivity": dict(patch_size=3),
    "sensitivity_n": dict(n_values=[3, 6], n_runs=4),
    "completeness": {},
    "neg_non_sensitivity": dict(features_in_step=6),
    "neg_max_sensitivity": dict(n_samples=3),
    "neg_avg_sensitivity": dict(n_samples=3),
    "neg_local_lipschitz_estimate": dict(n_samples=3),
    "neg_relative_input_stability": dict(n_samples=3, nan_on_change=False),
    "neg_relative_output_stability": dict(n_samples=3, nan_on_change=False),
    "neg_relative_representation_stability": dict(n_samples=3, nan_on_change=False),
    "neg_mprt": {},
    "mprt_pass": {},
    "neg_smooth_mprt": dict(smooth_samples=3),
    "efficient_mprt": dict(n_bins=10),
    "neg_random_logit": {},
    "random_logit_pass": {},
    "neg_data_randomisation": dict(random_state=0),
    "data_randomisation_pass": dict(random_state=0),
}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 1, 6, 6).astype(np.float32)
    y = np.where(X[:, 0, :3].sum((1, 2)) > 0, "b", "a")
    clf = RelevanceNetClassifier(
        module=torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
                                   torch.nn.Flatten(), torch.nn.Linear(32, 2)),
        max_epochs=2, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    return clf, X, y


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_new_scorer_scores_a_fitted_estimator(fitted, name):
    clf, X, y = fitted
    scorer = make_relevance_scorer(name, explainer="gradient", **FAST[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = scorer(clf, X[:6], y[:6])
    if name == "completeness":  # the gradient is not complete: a pass rate
        assert 0 <= value <= 1
    else:
        assert np.isfinite(value)


def test_new_scorers_in_grid_search(fitted):
    from sklearn.model_selection import GridSearchCV

    clf, X, y = fitted
    scoring = {"fc": make_relevance_scorer("faithfulness_correlation", **FAST[
        "faithfulness_correlation"]), "mprt": make_relevance_scorer("mprt_pass")}
    search = GridSearchCV(clf, {"lr": [0.01, 0.05]}, scoring=scoring, refit=False, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_fc"]).all()
    assert ((search.cv_results_["mean_test_mprt"] >= 0)
            & (search.cv_results_["mean_test_mprt"] <= 1)).all()


class InputMap(Gradient):
    """A map unrelated to the model: the input itself."""

    uses_layers = False

    def _explain(self, module, X, target, *, create_graph):
        return X.clone()


def test_compare_explainers_sanity_columns(fitted):
    clf, X, y = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, long = compare_explainers(
            clf, X[:12], y[:12], explainers={"gradient": "gradient", "input": InputMap()},
            metrics=["sparseness"], sanity=True, random_state=0, return_scores=True)
    for test in ("mprt", "random_logit", "data_randomisation"):
        col = f"sanity_{test}"
        assert {col, f"{col}_ci_low", f"{col}_ci_high"} <= set(table.columns)
        assert set(np.unique(long[col])) <= {0.0, 1.0}
        # the input map never changes: it fails every randomisation test
        assert table.loc["input", col] == 0
    assert table.loc["gradient", "sanity_mprt"] > 0
    again = compare_explainers(clf, X[:12], y[:12], explainers={"input": InputMap()},
                               metrics=["sparseness"], sanity=["mprt"], random_state=0)
    assert list(again.columns)[-3:] == ["sanity_mprt", "sanity_mprt_ci_low",
                                        "sanity_mprt_ci_high"]


def test_compare_explainers_sanity_is_checked_first(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match="'sanity' parameter of compare_explainers"):
        compare_explainers(clf, X[:4], y[:4], sanity=["nope"])
    net = clf.module_
    with pytest.raises(ValueError, match="data_randomisation"):
        compare_explainers(net, X[:4], explainers=["gradient"], sanity=["data_randomisation"])


def test_robustness_in_compare_explainers_uses_each_explainer(fitted):
    """compare_explainers hands the explainer whose maps it scores to
    metrics that explain again: a constant map is perfectly robust."""

    class Constant(Gradient):
        uses_layers = False

        def _explain(self, module, X, target, *, create_graph):
            return torch.ones_like(X)

    clf, X, y = fitted
    table = compare_explainers(clf, X[:6], y[:6], explainers={"c": Constant(),
                                                             "g": "gradient"},
                               metrics=["avg_sensitivity"],
                               metric_params={"avg_sensitivity": {"n_samples": 3}},
                               random_state=0)
    assert table.loc["c", "avg_sensitivity"] == 0
    assert table.loc["g", "avg_sensitivity"] > 0
