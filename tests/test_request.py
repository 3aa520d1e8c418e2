"""One explanation request and one target policy (issue 22, defect 8).

``target=None`` means the class ``predict`` returns, everywhere, computed by
``predict``'s own forward; callers that explain and score share one target;
explainers on a bare module decide the network once, like the estimators.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.explainers import get_explainer


class _TargetSpy:
    """An explainer object that records the targets it is asked to explain."""

    uses_layers = True

    def __init__(self):
        self.targets = []

    def explain(self, module, X, target=None, *, create_graph=False):
        self.targets.append(target.detach().cpu().numpy().copy())
        return torch.zeros_like(X)


def _near_tied_classifier(n=4000, d=64, seed=0):
    """A fitted classifier whose two logits tie within float32 rounding.

    The second weight row is the first plus a perturbation of a few units in
    the last place, so the logit difference is of the size of float32's
    rounding of the logits themselves: the float32 and float64 arg-max
    disagree on a share of the samples.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.arange(n) % 2
    module = nn.Sequential(nn.Linear(d, 2, bias=False))
    clf = RelevanceNetClassifier(module=module, max_epochs=0, batch_size=512,
                                 random_state=0).fit(X, y)
    w0 = rng.normal(size=d).astype(np.float32)
    w1 = (w0 + w0 * rng.normal(scale=3e-7, size=d)).astype(np.float32)
    with torch.no_grad():
        clf.module_[0].weight.copy_(torch.as_tensor(np.stack([w0, w1])))
    return clf, X, y


def test_near_ties_the_explained_class_is_the_predicted_one():
    """explain(target=None) took the class from float32 outputs while predict
    used float64: near-tied samples disagreed (129 of 4,000 in the issue)."""
    clf, X, _ = _near_tied_classifier()
    # the construction makes float32 and float64 disagree (else the test is void)
    W = clf.module_[0].weight.detach().numpy()
    f64 = (X.astype(np.float64) @ W.T.astype(np.float64)).argmax(1)
    f32 = (torch.as_tensor(X) @ torch.as_tensor(W).T).argmax(1).numpy()
    assert (f64 != f32).sum() > 0
    spy = _TargetSpy()
    clf.explain(X, explainer=spy)
    explained = np.concatenate(spy.targets)
    predicted = np.searchsorted(clf.classes_, clf.predict(X))
    np.testing.assert_array_equal(explained, predicted)


def test_near_ties_metrics_follow_the_predicted_class():
    """The perturbation metrics and compare_explainers take None as the
    predicted class too, by the same forward as predict."""
    from sklearn_relevance.evaluation import compare_explainers

    clf, X, y = _near_tied_classifier(n=600)
    predicted = np.searchsorted(clf.classes_, clf.predict(X))
    seen = {}

    def grab(relevance, *, module, X, target, masks):
        seen["target"] = target.cpu().numpy()
        return torch.zeros(relevance.shape[0])

    compare_explainers(clf, X, y, explainers=["gradient"], metrics={"grab": grab},
                       n_bootstrap=0)
    np.testing.assert_array_equal(seen["target"], predicted)


@pytest.fixture(scope="module")
def misclassifying():
    """A briefly trained classifier that gets a share of its samples wrong."""
    rng = np.random.RandomState(0)
    X = rng.randn(60, 8).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.randn(60) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = RelevanceNetClassifier(max_epochs=3, random_state=0).fit(X, y)
    wrong = clf.predict(X) != y
    assert 0 < wrong.sum() < len(y)
    return clf, X, y


def test_fidelity_of_explain_follows_one_target(misclassifying):
    """fidelity_score(est, X, y, est.explain(X, y)) mixed two targets: the map
    of the predicted class, scored along the true class."""
    from sklearn_relevance.metrics import fidelity_score

    clf, X, y = misclassifying
    rel = clf.explain(X, y)
    predicted = np.searchsorted(clf.classes_, clf.predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = fidelity_score(clf, X, y, rel, steps=4)
        followed = fidelity_score(clf, X, y, rel, steps=4, target=predicted)
    np.testing.assert_array_equal(default, followed)


def test_compare_explainers_default_target_is_the_predicted_class(misclassifying):
    """compare_explainers took y's class by default, explain the predicted one."""
    from sklearn_relevance.evaluation import compare_explainers

    clf, X, y = misclassifying
    seen = []

    def grab(relevance, *, module, X, target, masks):
        seen.append(relevance.cpu().numpy())
        return torch.zeros(relevance.shape[0])

    compare_explainers(clf, X, y, explainers=["gradient"], metrics={"grab": grab},
                       n_bootstrap=0)
    np.testing.assert_allclose(seen[0], clf.explain(X, y, explainer="gradient"),
                               rtol=1e-6, atol=1e-8)


def test_scorer_explains_and_scores_one_target(misclassifying):
    """A relevance scorer hands the metric the class indices it explained."""
    from sklearn_relevance.metrics import make_relevance_scorer

    clf, X, y = misclassifying
    seen = {}

    def metric(relevance, estimator, X, target=None):
        seen["target"] = target
        return np.zeros(len(relevance))

    make_relevance_scorer(metric)(clf, X, y)
    np.testing.assert_array_equal(seen["target"],
                                  np.searchsorted(clf.classes_, clf.predict(X)))
    make_relevance_scorer(metric, target="true")(clf, X, y)
    np.testing.assert_array_equal(seen["target"], y)


def test_predict_copies_no_network(misclassifying, monkeypatch):
    """predict deep-copied the network (and cast it to float64) on every call."""
    import copy

    clf, X, _ = misclassifying
    calls = []
    original = copy.deepcopy

    def spy(obj, *args, **kwargs):
        if isinstance(obj, nn.Module):
            calls.append(type(obj).__name__)
        return original(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", spy)
    clf.predict(X)
    clf.predict_proba(X)
    assert calls == []
    assert next(clf.module_.parameters()).dtype == torch.float32


def test_predict_draws_nothing_from_the_global_generator(misclassifying):
    clf, X, _ = misclassifying
    torch.manual_seed(3)
    clf.predict(X)
    clf.explain(X)
    after = torch.rand(3)
    torch.manual_seed(3)
    np.testing.assert_array_equal(after, torch.rand(3))


def test_bare_module_explainer_decides_the_network_like_the_estimator(monkeypatch):
    """get_explainer(...).explain(module, X, target) never used the inference
    copy the estimators run on (0.93x captum at 224 x 224)."""
    import sklearn_relevance._inference as inference

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                           nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    X = torch.randn(4, 3, 32, 32)
    target = torch.tensor([0, 1, 2, 0])
    copies = []
    original = inference.cached_inference_copy

    def spy(module, X):
        net = original(module, X)
        copies.append(net)
        return net

    monkeypatch.setattr(inference, "cached_inference_copy", spy)
    ig = get_explainer("integrated_gradients", n_steps=20)
    rel = ig.explain(module, X, target)
    assert len(copies) == 1 and copies[0] is not module
    # the same maps as the module itself (a float64 reference run on it)
    import copy

    from sklearn_relevance._which_network import network_decided

    with network_decided():
        ref = get_explainer("integrated_gradients", n_steps=20).explain(
            copy.deepcopy(module).double(), X.double(), target)
    torch.testing.assert_close(rel.double(), ref, rtol=1e-3, atol=1e-4 * ref.abs().max())


def test_nested_explainers_decide_the_network_once(monkeypatch):
    """SmoothGrad's base explainer runs on what SmoothGrad runs on."""
    import sklearn_relevance._which_network as which

    calls = []
    original = which.module_for_explainer

    def spy(module, X, explainer, *, n_samples=None):
        calls.append(type(explainer).__name__)
        return original(module, X, explainer, n_samples=n_samples)

    monkeypatch.setattr(which, "module_for_explainer", spy)
    module = nn.Sequential(nn.Linear(5, 3)).eval()
    get_explainer("smoothgrad", n_samples=4, random_state=0).explain(
        module, torch.randn(6, 5), 1)
    assert calls == ["SmoothGrad"]


def test_training_penalty_never_runs_on_a_copy(monkeypatch):
    """create_graph=True (training) must reach the module's own weights."""
    import sklearn_relevance._which_network as which

    monkeypatch.setattr(which, "module_for_explainer",
                        lambda *a, **k: pytest.fail("asked for a copy"))
    module = nn.Sequential(nn.Linear(5, 3)).eval()
    X = torch.randn(6, 5, requires_grad=True)
    rel = get_explainer("integrated_gradients", n_steps=4).explain(
        module, X, 1, create_graph=True)
    rel.abs().sum().backward()
    assert module[0].weight.grad is not None
