"""The one metric registry: it serves the scorers, the callback,
compare_explainers and the documentation's table, and compare_explainers
scores the maps of the estimator's own ``explain``."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.callbacks import RelevanceScoring
from sklearn_relevance.evaluation import available_metrics, compare_explainers
from sklearn_relevance.metrics import (
    available_relevance_scorers,
    make_relevance_scorer,
    registered_metrics,
)
from sklearn_relevance.metrics._registry import NEEDS

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "metrics.rst"
START, END = ".. metric-registry-start", ".. metric-registry-end"


def render_table():
    """The docs' metric table, as generated from the registry."""
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - name", "     - function", "     - better", "     - needs",
             "     - spatial axes", "     - scorer", "     - compare_explainers"]
    for m in registered_metrics():
        cells = [f"``{m.name}``", f"``{m.function.__name__}``",
                 "higher" if m.greater_is_better else "lower",
                 ", ".join(sorted(m.needs)) or "nothing",
                 ", ".join(map(str, m.input_ndims)) if m.input_ndims else "any",
                 f"``{m.scorer}``" if m.scorer else "no",
                 "yes" if m.compared else "no"]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(lines)


def test_docs_table_is_the_registry():
    text = DOCS.read_text()
    block = text[text.index(START) + len(START):text.index(END)].strip()
    assert block == render_table(), (
        "docs/metrics.rst's metric table differs from the registry; paste "
        "tests/test_metric_registry.render_table() between its markers.")


def test_registry_is_consistent():
    entries = registered_metrics()
    names = [m.name for m in entries]
    assert len(set(names)) == len(names)
    for m in entries:
        assert m.needs <= set(NEEDS), m
        assert callable(m.function)
        if m.scorer is not None and not m.greater_is_better:
            assert m.scorer.startswith("neg_")
        # compare_explainers has no ground-truth importances to give
        assert not (m.compared and "importances" in m.needs), m


def test_registry_serves_scorers_callback_and_compare():
    entries = registered_metrics()
    assert available_relevance_scorers() == sorted(m.scorer for m in entries if m.scorer)
    assert available_metrics() == sorted(m.name for m in entries if m.compared)
    for m in entries:
        if m.scorer is None:
            continue
        scorer = make_relevance_scorer(m.scorer)
        assert scorer._score_func is m.function
        assert scorer._sign == (1 if m.greater_is_better else -1)
        RelevanceScoring(m.scorer).initialize()  # the callback accepts every scorer
    with pytest.raises(ValueError, match="xrai_dice"):
        RelevanceScoring("xrai_dice").initialize()


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 1, 6, 6).astype(np.float32)
    y = np.where(X[:, 0, :3].sum((1, 2)) > 0, "b", "a")
    clf = RelevanceNetClassifier(
        module=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 8),
                                   torch.nn.ReLU(), torch.nn.Linear(8, 2)),
        max_epochs=3, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    return clf, X, y


def _maps_of(clf, X, y, explainer, **kwargs):
    seen = []

    def grab(relevance, *, module, X, target, masks):
        seen.append(relevance.detach().cpu().numpy())
        return torch.zeros(relevance.shape[0])

    compare_explainers(clf, X, y, explainers=[explainer], metrics={"grab": grab},
                       n_bootstrap=0, random_state=0, **kwargs)
    return seen[0]


@pytest.mark.parametrize("explainer", ["gradient", "integrated_gradients", "smoothgrad"])
def test_compare_explainers_scores_the_maps_of_explain(fitted, explainer):
    from sklearn_relevance.explainers import get_explainer

    clf, X, y = fitted
    if explainer == "smoothgrad":  # a seeded stochastic explainer keeps its seed
        explainer = get_explainer("smoothgrad", random_state=3)
    for y_arg, target, kwargs in [(y, "true", {"target": "true"}), (y, None, {}),
                                  (None, None, {}), (None, 1, {"target": 1})]:
        np.testing.assert_allclose(
            _maps_of(clf, X, y_arg, explainer, **kwargs),
            clf.explain(X, y_arg, explainer=explainer, target=target),
            rtol=1e-5, atol=1e-7)


def test_compare_explainers_explains_dataframes_and_tensors_as_given():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(30, 4).astype(np.float32), columns=list("abcd"))
    y = (X["a"] > 0).astype(int).to_numpy()
    clf = RelevanceNetClassifier(max_epochs=2, verbose=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = _maps_of(clf, X, y, "gradient")
    # the estimator sees the DataFrame, not its values without the names
    assert not [w for w in caught if "feature names" in str(w.message)]
    np.testing.assert_allclose(maps, clf.explain(X, y, explainer="gradient"),
                               rtol=1e-5, atol=1e-7)
    Xt = torch.as_tensor(X.to_numpy())
    np.testing.assert_allclose(_maps_of(clf, Xt, y, "gradient"), maps, rtol=1e-5, atol=1e-7)
