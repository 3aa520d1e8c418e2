"""Robustness metrics against quantus 0.6 on the same noise, and their contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sklearn_relevance.metrics import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from sklearn_relevance.metrics._explaining import seed_of
from sklearn_relevance.metrics.robustness import noise_draws

from test_metrics_randomisation import built, explain_func, targets

quantus = pytest.importorskip("quantus")

S, SEED = 5, 3


def feed(monkeypatch, name, draws):
    """Make quantus' np.random.<name> return our noise draws, in order."""
    queue = [d.numpy().astype(np.float64) for d in draws]

    def fake(*args, size=None, **kwargs):
        out = queue.pop(0)
        assert out.reshape(size).shape == tuple(size)
        return out.reshape(size)

    monkeypatch.setattr(np.random, name, fake)
    return queue


def ours_noise(kind, X, **kw):
    return noise_draws(kind, X.shape, seed_of(SEED), range(S), X.device, **kw)


CASES = [
    ("max", max_sensitivity, "MaxSensitivity", "uniform", dict(low=-0.2, high=0.2), {}),
    ("avg", avg_sensitivity, "AvgSensitivity", "uniform", dict(low=-0.2, high=0.2), {}),
    ("lle", local_lipschitz_estimate, "LocalLipschitzEstimate", "normal",
     dict(mean=0.0, std=0.1), {"normalise": False}),
    ("ris", relative_input_stability, "RelativeInputStability", "uniform",
     dict(low=0.02, high=0.2), {}),
    ("ros", relative_output_stability, "RelativeOutputStability", "uniform",
     dict(low=0.02, high=0.2), {}),
    ("rrs", relative_representation_stability, "RelativeRepresentationStability", "uniform",
     dict(low=0.02, high=0.2), {}),
]


@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_equals_quantus_on_the_same_noise(monkeypatch, ndim, case):
    _, ours_fn, q_name, np_name, bounds, extra = case
    net, X = built(ndim)
    y = targets(net, X)
    kind = "gaussian" if np_name == "normal" else "uniform"
    ours = ours_fn(net, X, target=y, n_samples=S, random_state=SEED, **extra)
    queue = feed(monkeypatch, np_name, ours_noise(kind, X, **bounds))
    q = getattr(quantus, q_name)(nr_samples=S, disable_warnings=True, **extra)(
        model=net, x_batch=X.numpy(), y_batch=y, explain_func=explain_func,
        channel_first=True)
    assert not queue
    assert np.isfinite(ours).sum() >= 3
    np.testing.assert_allclose(ours, np.asarray(q, dtype=np.float64), rtol=1e-5, atol=1e-5)


def test_chunking_does_not_change_the_result():
    net, X = built(2)
    a = max_sensitivity(net, X, n_samples=6, random_state=0)
    b = max_sensitivity(net, X, n_samples=6, random_state=0, internal_batch_size=X.shape[0])
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_constant_map_is_perfectly_robust_and_the_input_map_is_not(ndim):
    from sklearn_relevance.explainers import Gradient

    net, X = built(ndim)

    class Constant(Gradient):
        def _explain(self, module, X, target, *, create_graph):
            return torch.ones_like(X)

    class InputMap(Gradient):
        def _explain(self, module, X, target, *, create_graph):
            return X.clone()

    assert np.allclose(avg_sensitivity(net, X, explainer=Constant(), n_samples=4,
                                       random_state=0), 0)
    # the input itself moves with the noise: ||dx|| / ||x|| > 0, and its
    # Lipschitz estimate is exactly 1
    assert (avg_sensitivity(net, X, explainer=InputMap(), n_samples=4, random_state=0) > 0).all()
    np.testing.assert_allclose(local_lipschitz_estimate(net, X, explainer=InputMap(),
                                                        normalise=False, n_samples=4,
                                                        random_state=0), 1, rtol=1e-5)


def test_errors_and_seeds():
    net, X = built(2)
    with pytest.raises(ValueError, match="'norm' parameter of max_sensitivity"):
        max_sensitivity(net, X, norm="l7")
    with pytest.raises(ValueError, match="'n_samples' parameter"):
        avg_sensitivity(net, X, n_samples=0)
    with pytest.raises(ValueError, match="'layers' parameter"):
        relative_representation_stability(net, X, layers=["nope"])
    a = avg_sensitivity(net, X, n_samples=3, random_state=1)
    assert np.array_equal(a, avg_sensitivity(net, X, n_samples=3, random_state=1))
    assert not np.array_equal(a, avg_sensitivity(net, X, n_samples=3, random_state=2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relative_norm_equals_its_formula_and_leaves_inputs(dtype):
    from sklearn_relevance.metrics.robustness import _relative_l2

    e = torch.randn(5, 40, dtype=dtype)
    e[0, :7] = 0.0
    e[1] = 0.0
    es = torch.randn(3, 5, 40, dtype=dtype)
    before = e.clone(), es.clone()
    E, ES = e.double(), es.double()
    ref = ((E - ES) / (E + (E == 0).double() * 1e-6)).norm(dim=-1)  # numpy: float64 eps
    torch.testing.assert_close(_relative_l2(e, es, 1e-6), ref, rtol=1e-13, atol=0)
    assert torch.equal(e, before[0]) and torch.equal(es, before[1])


def test_representation_stability_reads_layers_with_tuple_outputs():
    class Pair(torch.nn.Module):  # a layer returning (features, something else)
        def forward(self, x):
            return torch.relu(x), x.sum()

    class First(torch.nn.Module):
        def forward(self, pair):
            return pair[0]

    net = torch.nn.Sequential(torch.nn.Linear(6, 8), Pair(), First(),
                              torch.nn.Linear(8, 3)).eval()
    X = torch.randn(4, 6)
    out = relative_representation_stability(net, X, n_samples=3, random_state=0,
                                            layers=["1"])
    assert out.shape == (4,) and np.isfinite(out).all()
