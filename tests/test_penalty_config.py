"""The training penalty: one object, resolved at one point (issues 22 and 23).

A change by ``set_params`` or by attribute takes effect at the next batch;
configurations that cannot train raise before any work.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier, RelevanceNetRegressor
from sklearn_relevance.penalties import RelevancePenalty, RightReasonsPenalty


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 6).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    return X, y


def _quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kwargs)


class _Recorder(RelevancePenalty):
    """A term that records the norm and explainer each batch trains with."""

    seen: list = []

    def reduce(self, relevance, mask=None):
        _Recorder.seen.append((self.norm, type(self.explainer).__name__))
        return super().reduce(relevance, mask)


@pytest.mark.parametrize("how", ["set_params", "attribute"])
def test_changed_norm_takes_effect_in_partial_fit(data, how):
    """set_params(relevance_norm='l2') then partial_fit trained with 'l1'."""
    X, y = data
    clf = _quiet_fit(RelevanceNetClassifier(relevance_penalty=1.0, max_epochs=1,
                                            relevance_term=_Recorder(), random_state=0),
                     X, y)
    assert clf._penalty().norm == "l1"
    if how == "set_params":
        clf.set_params(relevance_norm="l2")
    else:
        clf.relevance_norm = "l2"
    _Recorder.seen = []
    clf.partial_fit(X, y)
    assert _Recorder.seen and {s[0] for s in _Recorder.seen} == {"l2"}


def test_changed_term_parameter_takes_effect(data):
    X, y = data
    term = _Recorder()
    clf = _quiet_fit(RelevanceNetClassifier(relevance_penalty=1.0, relevance_term=term,
                                            max_epochs=1, random_state=0), X, y)
    term.norm = "l2"  # in place, on the object the estimator holds
    _Recorder.seen = []
    clf.partial_fit(X, y)
    assert {s[0] for s in _Recorder.seen} == {"l2"}


def test_set_params_explainer_on_a_fitted_net(data):
    """fitted.set_params(relevance_explainer=...) raised skorch's
    'Something went wrong, please open an issue'."""
    X, y = data
    clf = _quiet_fit(RelevanceNetClassifier(relevance_penalty=1.0, max_epochs=1,
                                            random_state=0), X, y)
    clf.set_params(relevance_explainer="integrated_gradients",
                   relevance_explainer__n_steps=3)
    _Recorder.seen = []
    clf.set_params(relevance_term=_Recorder())
    clf.partial_fit(X, y)
    assert {s[1] for s in _Recorder.seen} == {"IntegratedGradients"}
    assert clf._penalty().explainer.n_steps == 3
    assert clf.explain(X[:3]).shape == (3, 6)  # the default explainer follows too


def test_bad_term_set_before_partial_fit_raises_before_any_work(data):
    X, y = data
    clf = _quiet_fit(RelevanceNetClassifier(relevance_penalty=1.0, max_epochs=1,
                                            random_state=0), X, y)
    before = [p.detach().clone() for p in clf.module_.parameters()]
    epochs = len(clf.history)
    clf.set_params(relevance_term=RelevancePenalty(norm="l3"))
    with pytest.raises(ValueError, match="'norm' parameter of RelevancePenalty"):
        clf.partial_fit(X, y)
    assert len(clf.history) == epochs
    for a, b in zip(before, clf.module_.parameters()):
        assert torch.equal(a, b)


def test_right_reasons_on_a_regressor_raises_before_epoch_one(data):
    X, _ = data
    reg = RelevanceNetRegressor(relevance_penalty=1.0, relevance_term=RightReasonsPenalty(),
                                max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="'relevance_term' parameter of "
                                         "RelevanceNetRegressor.*log_prob_sum"):
        reg.fit(X, X[:, 0])
    assert not reg.initialized_


def test_gradcam_on_tabular_data_raises_before_epoch_one(data):
    X, y = data
    clf = RelevanceNetClassifier(relevance_penalty=1.0, relevance_explainer="gradcam",
                                 max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="'relevance_explainer' parameter of "
                                         "RelevanceNetClassifier is GradCAM"):
        clf.fit(X, y)
    assert not clf.initialized_


def test_relevance_scoring_with_fractional_masks_raises_before_epoch_one(data):
    from skorch.dataset import ValidSplit

    from sklearn_relevance.callbacks import RelevanceScoring

    X, y = data
    masks = np.full_like(X, 0.5)
    clf = RelevanceNetClassifier(
        relevance_penalty=1.0, max_epochs=1, random_state=0, train_split=ValidSplit(4),
        callbacks=[RelevanceScoring("mask_roc_auc")])
    with pytest.raises(ValueError, match="RelevanceScoring.*binary"):
        clf.fit(X, y, relevance_mask=masks)
    assert not clf.history or len(clf.history) == 0


def test_direct_penalty_call_refuses_mask_values_outside_unit_interval():
    module = torch.nn.Linear(4, 2)
    X = torch.randn(8, 4, requires_grad=True)
    out = module(X)
    mask = torch.full((8, 4), 3.0)
    with pytest.raises(ValueError, match=r"'mask' parameter of RelevancePenalty.*\[0, 1\]"):
        RelevancePenalty()(module, X, out, torch.zeros(8, dtype=torch.long), mask=mask)
    nan = torch.full((8, 4), float("nan"))  # unannotated samples stay allowed
    RelevancePenalty()(module, X, out, torch.zeros(8, dtype=torch.long), mask=nan)


def test_penalty_cache_is_not_pickled(data):
    import pickle

    X, y = data
    clf = _quiet_fit(RelevanceNetClassifier(relevance_penalty=1.0, max_epochs=1,
                                            random_state=0), X, y)
    clf._penalty()
    again = pickle.loads(pickle.dumps(clf))
    assert "_penalty_cache" not in vars(again)
    assert again._penalty().norm == "l1"
