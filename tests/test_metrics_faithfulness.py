"""Faithfulness metrics against quantus 0.6 (same draws where random) and axioms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_relevance.metrics import (
    faithfulness_correlation,
    faithfulness_estimate,
    infidelity,
    monotonicity_arya,
    monotonicity_nguyen,
)
from sklearn_relevance.metrics._explaining import seed_of, step_draws
from sklearn_relevance.metrics.faithfulness import random_subsets

from test_metrics_randomisation import built, targets

quantus = pytest.importorskip("quantus")


def maps(X, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(X.shape, generator=g)


def call(metric, net, X, y, a, **kw):
    return np.asarray(metric(model=net, x_batch=X.numpy(), y_batch=y, a_batch=a.numpy(),
                             channel_first=True, **kw), dtype=np.float64)


@pytest.mark.parametrize("ndim", [1, 2])
def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(monkeypatch, ndim):
    net, X = built(ndim)
    y, a = targets(net, X), maps(X)
    runs, size, seed = 7, 5, 4
    F = X[0].numel()
    ours = faithfulness_correlation(net, X, a, target=y, n_runs=runs, subset_size=size,
                                    random_state=seed)
    idx = random_subsets(seed_of(seed), range(runs), X.shape[0], F, size, X.device)
    queue = [row.numpy() for run in idx for row in run]
    monkeypatch.setattr(np.random, "choice", lambda *args, **kw: queue.pop(0))
    q = call(quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size,
                                             return_aggregate=False, disable_warnings=True),
             net, X, y, a)
    assert not queue
    np.testing.assert_allclose(ours, q, atol=1e-5)


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("fis", [1, 4])
def test_faithfulness_estimate_equals_quantus(ndim, fis):
    net, X = built(ndim)
    y, a = targets(net, X), maps(X)
    ours = faithfulness_estimate(net, X, a, target=y, features_in_step=fis)
    q = call(quantus.FaithfulnessEstimate(features_in_step=fis, disable_warnings=True),
             net, X, y, a)
    np.testing.assert_allclose(ours, q, atol=1e-5)


@pytest.mark.parametrize("ndim", [1, 2])
def test_monotonicity_nguyen_equals_quantus_on_the_same_draws(monkeypatch, ndim):
    net, X = built(ndim)
    y, a = targets(net, X), maps(X)
    S, fis, seed = 3, 4, 2
    F = X[0].numel()
    ours = monotonicity_nguyen(net, X, a, target=y, n_samples=S, features_in_step=fis,
                               random_state=seed)
    steps = -(-F // fis)
    u = step_draws(lambda g: torch.rand(S, X.shape[0], generator=g), seed_of(seed),
                   range(steps), X.device)
    queue = [u[j, s].numpy().astype(np.float64) for j in range(steps) for s in range(S)]
    monkeypatch.setattr(np.random, "uniform", lambda *args, size=None, **kw: queue.pop(0))
    q = call(quantus.MonotonicityCorrelation(nr_samples=S, features_in_step=fis,
                                             disable_warnings=True), net, X, y, a)
    assert not queue
    np.testing.assert_allclose(ours, q, atol=1e-5)


@pytest.mark.parametrize("patches", [[2], [2, 5]])
def test_infidelity_equals_quantus(patches):
    net, X = built(2)  # 10 x 10 images: sides are multiples of the patches
    y, a = targets(net, X), maps(X)
    ours = infidelity(net, X, a, target=y, patch_sizes=patches)
    q = call(quantus.Infidelity(perturb_patch_sizes=patches, n_perturb_samples=1,
                                disable_warnings=True), net, X, y, a)
    np.testing.assert_allclose(ours, q, rtol=1e-5, atol=1e-5)


def test_quantus_monotonicity_never_restores_a_feature():
    """quantus 0.6 Monotonicity replaces each group by the baseline again, so
    its input stays the baseline and every map passes; ours restores the
    features (Arya et al.) and a random map fails on a non-linear network."""
    net, X = built(2)
    y, a = targets(net, X), maps(X)
    q = call(quantus.Monotonicity(features_in_step=10, disable_warnings=True), net, X, y, a)
    assert (q == 1).all()
    ours = monotonicity_arya(net, X, a, target=y, features_in_step=10)
    assert ours.mean() < 1


def linear_case(ndim=2, n=4):
    torch.manual_seed(0)
    X = torch.randn(n, 1, *([6] * ndim))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(X[0].numel(), 3))
    grad = net[1].weight.detach()
    return net, X, grad


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_axioms_on_linear_networks(ndim):
    """For f(x) = w.x + b the exact map w * x (zero baseline) makes every
    group's drop equal its relevance: correlations 1, infidelity 0 with the
    gradient; with positive weights and inputs every restored feature raises
    the logit (monotonic), and with one negative contribution it falls once."""
    net, X, W = linear_case(ndim)
    t = torch.zeros(X.shape[0], dtype=torch.long)
    w = W[0].reshape(1, *X.shape[1:])
    exact = X * w
    np.testing.assert_allclose(faithfulness_estimate(net, X, exact, target=t, baseline=0.0,
                                                     features_in_step=5), 1, atol=1e-6)
    np.testing.assert_allclose(faithfulness_correlation(net, X, exact, target=t, baseline=0.0,
                                                        n_runs=10, subset_size=4,
                                                        random_state=0), 1, atol=1e-6)
    np.testing.assert_allclose(infidelity(net, X, w.expand(X.shape), target=t, baseline=0.0,
                                          patch_sizes=[2, 3]), 0, atol=1e-8)
    with torch.no_grad():
        net[1].weight.abs_()
    Xp = X.abs()
    exact = Xp * net[1].weight[0].reshape(1, *X.shape[1:])
    assert (monotonicity_arya(net, Xp, exact, target=t, baseline=0.0, response="logit") == 1).all()
    Xn = Xp.clone()
    Xn.reshape(Xn.shape[0], -1)[:, 0] = -100.0  # the largest |relevance|, restored last
    assert (monotonicity_arya(net, Xn, Xn * net[1].weight[0].reshape(1, *X.shape[1:]),
                              target=t, baseline=0.0, response="logit") == 0).all()


def test_seeds_chunks_and_errors():
    net, X = built(2)
    a = maps(X)
    one = faithfulness_correlation(net, X, a, n_runs=6, subset_size=4, random_state=0)
    two = faithfulness_correlation(net, X, a, n_runs=6, subset_size=4, random_state=0,
                                   internal_batch_size=X.shape[0])
    np.testing.assert_allclose(one, two, atol=1e-10)
    m1 = monotonicity_nguyen(net, X, a, n_samples=2, features_in_step=20, random_state=1)
    m2 = monotonicity_nguyen(net, X, a, n_samples=2, features_in_step=20, random_state=1,
                             internal_batch_size=3)
    np.testing.assert_allclose(m1, m2, atol=1e-10)
    with pytest.raises(ValueError, match="'subset_size' parameter of faithfulness_correlation"):
        faithfulness_correlation(net, X, a, subset_size=10**6)
    with pytest.raises(ValueError, match="'patch_sizes' parameter of infidelity"):
        infidelity(net, X, a, patch_sizes=3)
    with pytest.raises(ValueError, match="'relevance' parameter of faithfulness_estimate"):
        faithfulness_estimate(net, X, a[:, :, :3])


# ---- regions, subset sizes and axioms ----------------------------------------
from sklearn_relevance.metrics import (  # noqa: E402
    completeness,
    completeness_gap,
    irof,
    non_sensitivity,
    selectivity_curve,
    sensitivity_n,
    sensitivity_n_curve,
)


def test_irof_equals_quantus_with_a_numeric_baseline(monkeypatch):
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # gone in numpy 2
    net, X = built(2)
    X = X.abs()  # slic on positive images
    y, a = targets(net, X), maps(X)
    ours = irof(net, X, a, target=y, baseline=0.0)
    q = call(quantus.IROF(perturb_baseline=0.0, return_aggregate=False,
                          disable_warnings=True), net, X, y, a)
    np.testing.assert_allclose(ours, q, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("patch", [2, 5])
def test_selectivity_equals_quantus(patch):
    net, X = built(2)
    y, a = targets(net, X), maps(X)
    ours = selectivity_curve(net, X, a, target=y, patch_size=patch)
    q = call(quantus.Selectivity(patch_size=patch, disable_warnings=True), net, X, y, a)
    np.testing.assert_allclose(ours, q, rtol=1e-5, atol=1e-6)


def test_sensitivity_n_curve_equals_quantus():
    net, X = built(2)
    y, a = targets(net, X), maps(X)
    ours = sensitivity_n_curve(net, X, a, target=y, features_in_step=5)
    q = call(quantus.SensitivityN(features_in_step=5, return_aggregate=False,
                                    disable_warnings=True), net, X, y, a)
    np.testing.assert_allclose(ours, q, atol=1e-5)


def test_non_sensitivity_equals_quantus():
    net, X = built(1)
    y, a = targets(net, X), maps(X)
    a[:, :, ::3] = 0  # some features without relevance
    ours = non_sensitivity(net, X, a, target=y, normalise=False)
    q = call(quantus.NonSensitivity(normalise=False, disable_warnings=True), net, X, y, a)
    np.testing.assert_allclose(ours, q)


def test_completeness_of_integrated_gradients_and_not_of_the_gradient():
    from sklearn_relevance.explainers import get_explainer

    net, X = built(2)
    t = torch.as_tensor(targets(net, X))
    ig = get_explainer("integrated_gradients", n_steps=256).explain(net, X, t)
    grad = get_explainer("gradient").explain(net, X, t)
    assert (completeness(net, X, ig, target=t, rtol=3e-2) == 1).all()
    assert completeness_gap(net, X, grad, target=t).min() > 0.05
    # quantus compares the two floats with ==: the same maps all fail there
    y = t.numpy()
    q = call(quantus.Completeness(normalise=False, perturb_baseline=0.0,
                                  disable_warnings=True), net, X, y, ig.detach())
    assert not q.any()


def test_sensitivity_n_per_sample():
    net, X, W = linear_case(2)
    t = torch.zeros(X.shape[0], dtype=torch.long)
    exact = X * W[0].reshape(1, *X.shape[1:])
    np.testing.assert_allclose(sensitivity_n(net, X, exact, target=t, baseline=0.0,
                                             n_values=[2, 9], random_state=0), 1, atol=1e-6)
    noise = torch.randn(X.shape, generator=torch.Generator().manual_seed(5))
    assert abs(sensitivity_n(net, X, noise, target=t, baseline=0.0, n_runs=50,
                             random_state=0).mean()) < 0.5


@pytest.mark.parametrize("F,size,margin", [(24, 3, None), (24, 3, 0), (12, 5, None)])
def test_random_subsets_distinct_seeded_and_uniform(F, size, margin, monkeypatch):
    """Every subset of ``size`` features is equally likely (chi-square over
    all of them, three seeds; a true uniform draw fails one with probability
    about 3e-4), entries of a row are distinct, and a seed repeats its draws:
    integers with spare draws, integers redrawn where they repeat (no
    spare), ranked uniform numbers (larger subsets)."""
    from itertools import combinations

    from scipy.stats import chisquare

    from sklearn_relevance.metrics import faithfulness as module

    if margin is not None:  # no spare draws: every row with a repeat redraws it
        draws = module._distinct_draws
        monkeypatch.setattr(module, "_distinct_draws",
                            lambda *a, **k: draws(*a, **k, margin=margin))
    cpu = torch.device("cpu")
    subsets = {c: i for i, c in enumerate(combinations(range(F), size))}
    for seed in range(3):
        idx = random_subsets(seed, range(160), 250, F, size, cpu).reshape(-1, size)
        assert torch.equal(idx, random_subsets(seed, range(160), 250, F, size,
                                               cpu).reshape(-1, size))
        rows = idx.sort(1).values
        assert (rows[:, 1:] > rows[:, :-1]).all()  # distinct
        counts = np.bincount([subsets[tuple(r)] for r in rows.tolist()],
                             minlength=len(subsets))
        assert chisquare(counts).pvalue > 1e-4
