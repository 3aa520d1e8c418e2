"""ROAD against quantus 0.6 (same noise) and the imputation against its solver."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from sklearn_relevance.metrics import noisy_linear_imputation, road, road_curve
from sklearn_relevance.metrics._explaining import seed_of, step_draws

from test_metrics_randomisation import built, targets

quantus = pytest.importorskip("quantus")


@pytest.mark.parametrize("side,fraction", [(7, 0.3), (12, 0.9), (16, 0.5)])
def test_imputation_equals_quantus_solver(side, fraction):
    from quantus.functions.perturb_func import noisy_linear_imputation as q_nli

    g = torch.Generator().manual_seed(side)
    x = torch.randn(1, 2, side, side, generator=g, dtype=torch.float64)
    idx = torch.randperm(side * side, generator=g)[:int(side * side * fraction)]
    removed = torch.zeros(side * side, dtype=torch.bool)
    removed[idx] = True
    ours = noisy_linear_imputation(x, removed.reshape(1, 1, side, side), noise=0.0)
    np.testing.assert_allclose(ours[0].numpy(), q_nli(x[0].numpy(), idx.numpy(), noise=0.0),
                               atol=1e-9)
    # a block hole (the slow case for iterative solvers)
    block = torch.zeros(side, side, dtype=torch.bool)
    block[1:-1, 2:] = True
    ours = noisy_linear_imputation(x, block.reshape(1, 1, side, side), noise=0.0)
    q = q_nli(x[0].numpy(), np.flatnonzero(block.numpy()), noise=0.0)
    np.testing.assert_allclose(ours[0].numpy(), q, atol=1e-9)


def test_neighbour_operator_equals_float64_convolution():
    from sklearn_relevance.metrics.road import _neighbour_sum

    k = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]],
                     dtype=torch.float64).reshape(1, 1, 3, 3)
    for shape in [(3, 1, 9, 13), (2, 1, 1, 5), (1, 1, 4, 1)]:
        v = torch.randn(shape, dtype=torch.float64)
        before = v.clone()
        torch.testing.assert_close(_neighbour_sum(v), torch.nn.functional.conv2d(v, k, padding=1),
                                   rtol=0, atol=1e-14)
        assert torch.equal(v, before)


@pytest.mark.parametrize("chunk", [1, 16 * 16, 3 * 16 * 16])
def test_imputation_the_same_in_every_row_chunking(chunk, monkeypatch):
    """Rows solved apart (the CPU's cache-sized chunks) or together give one
    answer, every channel and image its own system, each equal to quantus'."""
    from quantus.functions.perturb_func import noisy_linear_imputation as q_nli

    road_module = importlib.import_module("sklearn_relevance.metrics.road")

    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 16, 16, generator=g, dtype=torch.float64)
    removed = torch.rand(5, 1, 16, 16, generator=g) < torch.linspace(0.05, 0.95, 5)[:, None,
                                                                                    None, None]
    monkeypatch.setattr(road_module, "_CG_CHUNK", chunk)
    ours = noisy_linear_imputation(x, removed, noise=0.0)
    for i in range(5):
        idx = np.flatnonzero(removed[i, 0].numpy())
        np.testing.assert_allclose(ours[i].numpy(), q_nli(x[i].numpy(), idx, noise=0.0),
                                   atol=1e-9)
    assert torch.equal(ours[~removed.expand_as(x)], x[~removed.expand_as(x)])


def quantus_road(monkeypatch, net, X, y, a, percentages, noise):
    monkeypatch.setattr(quantus.ROAD, "custom_postprocess", lambda self, **kw: None)
    out = quantus.ROAD(percentages=list(percentages), noise=noise, normalise=False,
                       disable_warnings=True)(
        model=net, x_batch=X.numpy(), y_batch=y, a_batch=a.numpy(), channel_first=True)
    return np.asarray(out[0], dtype=np.float64)


def test_road_equals_quantus_without_noise(monkeypatch):
    net, X = built(2)
    y = targets(net, X)
    a = torch.randn(X.shape, generator=torch.Generator().manual_seed(0))
    pct = [5, 20, 40, 60, 80, 95]
    _, ours = road_curve(net, X, a, target=y, percentages=pct, noise=0.0)
    np.testing.assert_array_equal(ours, quantus_road(monkeypatch, net, X, y, a, pct, 0.0))


def test_road_equals_quantus_on_the_same_noise(monkeypatch):
    net, X = built(2)
    y = targets(net, X)
    a = torch.randn(X.shape, generator=torch.Generator().manual_seed(1))
    pct, seed, noise = [10, 50, 90], 3, 0.3
    _, ours = road_curve(net, X, a, target=y, percentages=pct, noise=noise, random_state=seed)
    n, C, H, W = X.shape
    draws = step_draws(lambda g: torch.randn(X.shape, generator=g), seed_of(seed),
                       range(len(pct)), X.device)
    order = np.argsort(-a.reshape(n, -1).numpy(), axis=1)
    queue = []
    for j, p in enumerate(pct):
        k = int(H * W * p / 100)
        for s in range(n):
            queue.append(draws[j, s].reshape(C, -1)[:, order[s, :k]].numpy().astype(np.float64))
    monkeypatch.setattr(np.random, "randn", lambda *shape: queue.pop(0))
    q = quantus_road(monkeypatch, net, X, y, a, pct, noise)
    assert not queue
    np.testing.assert_array_equal(ours, q)


def test_road_orders_and_contracts():
    """On a network that reads one pixel, a map pointing at it drops the
    accuracy at once under MoRF and keeps it under LeRF."""
    torch.manual_seed(0)
    n, H = 8, 8
    X = torch.randn(n, 1, H, H)
    X[:, 0, 3, 3] = torch.where(torch.arange(n) % 2 == 0, 5.0, -5.0)

    class Pixel(torch.nn.Module):
        def forward(self, x):
            v = x[:, 0, 3, 3:4]
            return torch.cat([v, -v], 1)

    a = torch.zeros_like(X)
    a[:, 0, 3, 3] = 1.0
    a += 1e-3 * torch.rand(X.shape)  # no ties
    morf = road(Pixel(), X, a, order="morf", percentages=[10, 50], noise=0.0)
    lerf = road(Pixel(), X, a, order="lerf", percentages=[10, 50], noise=0.0)
    assert (lerf == 1).all() and morf.mean() < 1
    with pytest.raises(ValueError, match="'order' parameter of road_curve"):
        road(Pixel(), X, a, order="top")
    with pytest.raises(ValueError, match="images of shape"):
        road_curve(Pixel(), X[:, :, 0], a[:, :, 0])
    r1 = road(Pixel(), X, a, percentages=[30, 60], random_state=0)
    r2 = road(Pixel(), X, a, percentages=[30, 60], random_state=0, internal_batch_size=8)
    np.testing.assert_array_equal(r1, r2)


def test_imputation_warns_when_not_solved_and_checks_its_parameters():
    from sklearn.exceptions import ConvergenceWarning

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64)
    removed = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    removed[:, :, 2:-2, 2:-2] = True  # one large hole: many iterations
    with pytest.warns(ConvergenceWarning, match="2 system\\(s\\) not solved"):
        noisy_linear_imputation(x, removed, noise=0.0, max_iter=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noisy_linear_imputation(x, removed, noise=0.0)  # the default converges
        noisy_linear_imputation(x, removed, noise=0.0, max_iter=10_000)
    for kw, match in [({"tol": 0}, "'tol' parameter of noisy_linear_imputation"),
                      ({"tol": -1.0}, "'tol' parameter"),
                      ({"max_iter": 0}, "'max_iter' parameter of noisy_linear_imputation"),
                      ({"max_iter": 2.5}, "'max_iter' parameter")]:
        with pytest.raises(ValueError, match=match):
            noisy_linear_imputation(x, removed, noise=0.0, **kw)
