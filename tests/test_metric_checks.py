"""Metric arguments that cannot give a right answer are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_relevance import RelevanceNetClassifier
from sklearn_relevance.metrics import deletion_auc, fidelity_score, perturbation_curve


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    net = RelevanceNetClassifier(max_epochs=1, random_state=0).fit(X, y)
    return net, X, y, net.explain(X)


@pytest.mark.parametrize("baseline", [
    np.nan, np.inf, -np.inf, np.full(6, np.nan), np.r_[np.zeros(5), np.inf],
    lambda X: X * float("nan"),
], ids=["nan", "inf", "-inf", "nan_array", "inf_entry", "nan_callable"])
def test_non_finite_baseline_refused(fitted, baseline):
    """``baseline=np.nan`` gave NaN curves without an error."""
    net, X, y, rel = fitted
    with pytest.raises(ValueError, match="'baseline' parameter of perturbation_curve "
                                         "must hold finite values"):
        perturbation_curve(net, X, rel, baseline=baseline, steps=3)
    with pytest.raises(ValueError, match="finite"):
        deletion_auc(net, X, rel, baseline=baseline, steps=3)
    with pytest.raises(ValueError, match="finite"):
        fidelity_score(net, X, y, rel, baseline=baseline, steps=3)


def test_finite_baselines_still_accepted(fitted):
    net, X, _, rel = fitted
    for baseline in (0.0, "mean", np.ones(6)):
        _, curves = perturbation_curve(net, X, rel, baseline=baseline, steps=3)
        assert curves.shape == (len(X), 4) and np.isfinite(curves).all()


def test_metrics_run_a_float64_network_in_float64():
    """A float64 network gets float64 inputs (a float32 batch failed in its
    first layer with torch's dtype error) and agrees with its float32 twin."""
    import copy

    from sklearn_relevance import metrics as M

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 10 * 10, 3)).eval()
    net64 = copy.deepcopy(net).double()
    X = torch.rand(6, 1, 12, 12)
    rel = torch.randn(6, 1, 12, 12)
    for f, kw in [(M.perturbation_curve, {}), (M.faithfulness_estimate, {}),
                  (M.random_logit, {}), (M.road, {"random_state": 0}),
                  (M.max_sensitivity, {"random_state": 0}), (M.sensitivity_n, {"random_state": 0}),
                  (M.deletion_auc, {})]:
        a, b = f(net, X, rel, **kw), f(net64, X, rel, **kw)
        a, b = (np.asarray(v[1] if isinstance(v, tuple) else v, dtype=float) for v in (a, b))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f.__name__)
