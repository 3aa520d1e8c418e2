"""Relevance scorers: values, metadata routing, GridSearchCV, shared explain calls."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.metrics._scorer import _MultimetricScorer
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_relevance.metrics import (
    available_relevance_scorers,
    deletion_auc,
    fidelity_score,
    get_relevance_scorer,
    make_relevance_scorer,
    mask_roc_auc,
    rank_biased_overlap,
    importance_ranking,
    sparseness,
)

estimators = pytest.importorskip("sklearn_relevance.estimators")
datasets = pytest.importorskip("sklearn_relevance.datasets")


@pytest.fixture(scope="module")
def lesions():
    X, y, masks = datasets.make_lesion_images(48, shape=(12, 12), random_state=0)
    return X, y, masks


@pytest.fixture(scope="module")
def fitted(lesions):
    X, y, _ = lesions
    return estimators.RelevanceNetClassifier(max_epochs=2, random_state=0).fit(X, y)


def test_scorer_values_equal_metric_means(lesions, fitted):
    X, y, masks = lesions
    rel = fitted.explain(X)
    pos = y == 1
    scorer = get_relevance_scorer("mask_roc_auc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # class-0 images have empty masks
        ref = np.nanmean(mask_roc_auc(rel, masks))
        assert scorer(fitted, X, y, masks=masks) == pytest.approx(ref)
    assert get_relevance_scorer("sparseness")(fitted, X, y) == pytest.approx(
        sparseness(rel).mean())
    fid = fidelity_score(fitted, X, y, rel, target="predicted")
    assert get_relevance_scorer("fidelity")(fitted, X, y) == pytest.approx(fid.mean())
    neg = get_relevance_scorer("neg_deletion_auc", steps=10)(fitted, X, y)
    assert neg == pytest.approx(-deletion_auc(fitted, X, rel, steps=10,
                                              target="predicted").mean())
    # sample weights weight the per-sample values
    w = np.where(pos, 3.0, 1.0)
    sw = get_relevance_scorer("sparseness")(fitted, X, y, sample_weight=w)
    assert sw == pytest.approx(np.average(sparseness(rel), weights=w))


def test_scorer_explainer_and_pipeline(lesions):
    X, y, _ = lesions
    flat = X.reshape(len(X), -1) * 5.0 + 2.0
    pipe = make_pipeline(StandardScaler(), estimators.RelevanceNetClassifier(
        max_epochs=2, random_state=0)).fit(flat, y)
    scorer = make_relevance_scorer(sparseness, explainer="gradient")
    Xt = pipe[0].transform(flat)
    ref = sparseness(pipe[-1].explain(Xt, explainer="gradient")).mean()
    assert scorer(pipe, flat, y) == pytest.approx(ref)


def test_multimetric_scoring_shares_one_explain_call(lesions, fitted, monkeypatch):
    X, y, masks = lesions
    calls = []
    original = type(fitted).explain

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("explainer"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(fitted), "explain", counting)
    multi = _MultimetricScorer(scorers={
        "sparse": get_relevance_scorer("sparseness"),
        "fid": get_relevance_scorer("fidelity", steps=5),
        "grad": get_relevance_scorer("sparseness", explainer="gradient"),
    })
    scores = multi(fitted, X, y)
    assert set(scores) == {"sparse", "fid", "grad"}
    assert all(isinstance(v, float) for v in scores.values())
    assert sorted(map(str, calls)) == ["None", "gradient"]


def test_grid_search_with_routed_masks(lesions):
    X, y, masks = lesions
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # empty masks of class 0
        scoring = {
            "accuracy": "accuracy",
            "fidelity": get_relevance_scorer("fidelity", steps=8),
            "sparseness": get_relevance_scorer("sparseness"),
            "mask_roc_auc": get_relevance_scorer("mask_roc_auc").set_score_request(
                masks=True),
        }
        search = GridSearchCV(
            estimators.RelevanceNetClassifier(max_epochs=2, random_state=0),
            {"relevance_penalty": [0.0, 0.1]}, scoring=scoring, refit="accuracy", cv=2,
        )
        search.fit(X, y, masks=masks)
    res = search.cv_results_
    for name in scoring:
        values = res[f"mean_test_{name}"]
        assert values.shape == (2,) and np.isfinite(values).all(), name
    assert np.all((res["mean_test_mask_roc_auc"] >= 0) & (res["mean_test_mask_roc_auc"] <= 1))
    assert search.best_index_ == int(np.argmax(res["mean_test_accuracy"]))
    assert hasattr(search.best_estimator_, "module_")


def test_routing_requires_request(lesions):
    X, y, masks = lesions
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = get_relevance_scorer("mask_roc_auc")
        with pytest.raises(Exception, match="masks"):
            cross_validate(estimators.RelevanceNetClassifier(max_epochs=1, random_state=0),
                           X, y, cv=2, scoring={"auc": scorer}, params={"masks": masks})
        routing = scorer.set_score_request(masks=True).get_metadata_routing()
        assert routing.score.requests["masks"] is True


def test_importances_metadata_rbo(rng):
    X = rng.normal(size=(60, 6)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    est = estimators.RelevanceNetClassifier(max_epochs=3, random_state=0).fit(X, y)
    truth = np.tile([3.0, 2.0, 0.1, 0.1, 0.1, 0.1], (60, 1))
    got = get_relevance_scorer("rank_biased_overlap", p=0.8)(est, X, y, importances=truth)
    rel = est.explain(X)
    ref = rank_biased_overlap(importance_ranking(rel, absolute=True),
                              importance_ranking(truth, absolute=True), p=0.8).mean()
    assert got == pytest.approx(ref)


def test_scorer_errors_and_repr():
    with pytest.raises(ValueError, match="'metric' parameter of make_relevance_scorer"):
        make_relevance_scorer("nope")
    with pytest.raises(ValueError, match="'scoring' parameter of get_relevance_scorer"):
        get_relevance_scorer("accuracy")
    with pytest.raises(ValueError, match="'explain' method"):
        get_relevance_scorer("sparseness")(StandardScaler().fit([[0.0], [1.0]]), [[0.0]], None)
    assert "neg_deletion_auc" in available_relevance_scorers()
    assert repr(get_relevance_scorer("neg_importance_rmse")) == (
        "make_relevance_scorer(importance_rmse, greater_is_better=False)")


def test_relevance_scorers_in_multimetric_search_over_a_pipeline():
    """scikit-learn's multimetric scoring looks up each scorer's response method
    on the Pipeline itself, which has no ``explain``; the scorers must still run."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_relevance import RelevanceNetClassifier, get_relevance_scorer

    X, y = make_classification(n_samples=80, n_features=30, random_state=0)
    pipe = make_pipeline(StandardScaler(), RelevanceNetClassifier(max_epochs=2, random_state=0))
    grid = GridSearchCV(
        pipe, {"relevancenetclassifier__relevance_penalty": [0.0, 0.1]}, cv=2,
        scoring={"accuracy": "accuracy", "sparseness": get_relevance_scorer("sparseness"),
                 "fidelity": get_relevance_scorer("fidelity")},
        refit="accuracy", error_score="raise",
    ).fit(X, y)
    for key in ("mean_test_sparseness", "mean_test_fidelity"):
        assert np.isfinite(grid.cv_results_[key]).all()


@pytest.mark.parametrize("metric, kwargs, match", [
    ("neg_deletion_auc", {"stepz": 10}, r"\['stepz'\] that the metric deletion_auc"),
    ("fidelity", {"baseline": "mean", "order": "lif", "colour": 1}, r"\['colour'\]"),
    (sparseness, {"fraction": 0.1}, r"\['fraction'\] that the metric sparseness"),
    ("mask_dice", {"relevance": 1.0}, "cannot fix \\['relevance'\\]"),
    ("sparseness", {"explainer": "nope"}, "'explainer' parameter must be one of"),
    ("sparseness", {"target": "random"}, "'target' parameter of make_relevance_scorer"),
    ("sparseness", {"target": True}, "'target' parameter of make_relevance_scorer"),
    ("sparseness", {"batch_size": 0}, "'batch_size' parameter of make_relevance_scorer"),
])
def test_scorer_arguments_checked_at_construction(metric, kwargs, match):
    """Unknown metric keywords were accepted and failed only when scoring."""
    with pytest.raises(ValueError, match=match):
        make_relevance_scorer(metric, **kwargs)


def test_valid_scorer_keywords_accepted():
    make_relevance_scorer("mask_dice", fraction=0.1)
    make_relevance_scorer("neg_deletion_auc", steps=10, baseline="mean", order="lif",
                          batch_size=-1, target=1, explainer="gradient")
    get_relevance_scorer("rank_biased_overlap", p=0.8, top_k=3)

    def any_keywords(relevance, **options):
        return np.zeros(len(relevance))

    make_relevance_scorer(any_keywords, anything=1)  # a **kwargs metric takes any


def test_missing_masks_error_says_how_to_pass_them(lesions, fitted, monkeypatch):
    """Without masks the scorer raised a bare TypeError (after explaining)."""
    X, y, masks = lesions
    calls = []
    original = type(fitted).explain
    monkeypatch.setattr(type(fitted), "explain",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    scorer = get_relevance_scorer("mask_roc_auc")
    how = r"set_score_request\(masks=True\)"
    with pytest.raises(ValueError, match=rf"needs \['masks'\] metadata.*{how}"):
        scorer(fitted, X, y)
    with pytest.raises(ValueError, match=how):
        scorer(fitted, X, y, masks=None)
    assert calls == []  # refused before any relevance is computed
    with pytest.raises(ValueError, match=r"metadata \['importances'\] that its metric"):
        scorer(fitted, X, y, masks=masks, importances=masks)
    with pytest.raises(ValueError, match=r"needs \['importances'\]"):
        get_relevance_scorer("rank_biased_overlap")(fitted, X, y)


def test_grid_search_without_masks_says_how_to_pass_them(lesions):
    X, y, _ = lesions
    est = estimators.RelevanceNetClassifier(max_epochs=1, random_state=0)
    scoring = {"accuracy": "accuracy", "auc": get_relevance_scorer("mask_roc_auc")}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(est, {"relevance_penalty": [0.0]}, cv=2, scoring=scoring,
                              refit="accuracy", error_score="raise")
        with pytest.raises(ValueError, match=r"set_score_request\(masks=True\)"):
            search.fit(X, y)
        # with error_score=nan scikit-learn keeps the NaN, and its warning
        # carries the instructions
        search.set_params(error_score=np.nan)
        with pytest.warns(UserWarning, match=r"set_score_request\(masks=True\)"):
            search.fit(X, y)


def test_metrics_that_explain_again_use_the_tuned_relevance_explainer(lesions):
    """A metric that explains again (randomisation, robustness) with no
    explainer named uses the estimator's explainer as ``explain`` makes it,
    with its ``relevance_explainer__*`` parameters: a random-logit score of
    maps made with one IG baseline must not compare them with another's."""
    from sklearn_relevance.metrics import max_sensitivity, random_logit
    from sklearn_relevance.metrics._explaining import Model

    X, y, _ = lesions
    clf = estimators.RelevanceNetClassifier(
        max_epochs=1, random_state=0, relevance_explainer="integrated_gradients",
        relevance_explainer__n_steps=7, relevance_explainer__baselines=0.5).fit(X, y)
    explainer = Model(clf, X[:2], "test").explainer
    assert explainer.get_params()["n_steps"] == 7 and explainer.get_params()["baselines"] == 0.5
    assert clf.relevance_explainer == "integrated_gradients"  # the estimator is unchanged
    tuned = clf.explain(X[:6])
    named = estimators.RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert Model(named, X[:2], "test").explainer.get_params() == \
        named.relevance_explainer_.get_params()
    # the scores follow the tuned explainer: equal to naming it explicitly
    from sklearn_relevance.explainers import IntegratedGradients

    same = IntegratedGradients(n_steps=7, baselines=0.5)
    np.testing.assert_allclose(
        random_logit(clf, X[:6], tuned, random_state=0),
        random_logit(clf, X[:6], tuned, explainer=same, random_state=0))
    np.testing.assert_allclose(
        max_sensitivity(clf, X[:6], tuned, n_samples=3, random_state=0),
        max_sensitivity(clf, X[:6], tuned, explainer=same, n_samples=3, random_state=0))
