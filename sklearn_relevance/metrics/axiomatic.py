"""Axiomatic checks: completeness and non-sensitivity, per sample.

- :func:`completeness` (Sundararajan et al. 2017): the relevance sums to
  the output's change from the baseline, ``sum(a) = f(x) - f(x_0)``; an
  explainer that satisfies it (integrated gradients with enough steps,
  LRP-0 on bias-free ReLU networks) passes, the gradient in general not.
  quantus 0.6's ``Completeness`` compares the two floats with ``==``, so
  it fails almost every map; here the check has a tolerance and
  :func:`completeness_gap` gives the relative gap itself.
- :func:`non_sensitivity` (Nguyen and Martinez 2020): a feature that the
  output ignores should get no relevance, and one with no relevance
  should not move the output; the count of features that break this
  (quantus' ``NonSensitivity``). Lower is better.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_int, check_real
from ._checks import to_numpy
from ._perturb import masked_response, resolve_base
from .faithfulness import _setup

__all__ = ["completeness", "completeness_gap", "non_sensitivity"]


def completeness_gap(estimator, X, relevance, *, y=None, target=None, baseline=0.0,
                     response="logit", internal_batch_size=None):
    """``|sum(a) - (f(x) - f(x_0))| / |f(x) - f(x_0)|`` per sample.

    Parameters
    ----------
    estimator, X, relevance, y, target, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`.
    baseline : float, {"black", "white", "mean"} or array, default=0.0
        The reference input ``x_0`` (the explainer's own baseline).
    response : {"logit", "proba"}, default="logit"

    Returns
    -------
    ndarray of shape (n_samples,)
        0 for a complete map; NaN where the output does not change.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import completeness_gap
    >>> net = torch.nn.Linear(4, 1)
    >>> X = torch.randn(3, 4)
    >>> completeness_gap(net, X, X * net.weight.detach()).round(6)
    array([0., 0., 0.])
    """
    owner = "completeness"
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size)
    X = model.X
    base = resolve_base(baseline, X, owner)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        fb = model.response(base.contiguous(), t, response).double()
    change = f0 - fb
    gap = (a.double().sum(1) - change).abs() / change.abs()
    return to_numpy(torch.where(change == 0, torch.full_like(gap, float("nan")), gap))


def completeness(estimator, X, relevance, *, rtol=1e-2, **options):
    """Completeness check per sample: 1.0 where the relevance sums to the
    output's change from the baseline within ``rtol`` (relative), else 0.0.

    Parameters
    ----------
    estimator, X, relevance
        As :func:`completeness_gap`.
    rtol : float, default=1e-2
    **options
        ``y``, ``target``, ``baseline``, ``response``,
        ``internal_batch_size`` of :func:`completeness_gap`.

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import completeness
    >>> net = torch.nn.Linear(4, 1)
    >>> X = torch.randn(3, 4)
    >>> completeness(net, X, X * net.weight.detach())
    array([1., 1., 1.])
    """
    rtol = check_real(rtol, "rtol", "completeness", low=0)
    gap = completeness_gap(estimator, X, relevance, **options)
    return np.where(np.isnan(gap), np.nan, (gap <= rtol).astype(np.float64))


def non_sensitivity(estimator, X, relevance, *, y=None, target=None, eps=1e-5,
                    features_in_step=1, baseline="black", response="proba", absolute=True,
                    normalise=True, internal_batch_size=None):
    """Non-sensitivity (Nguyen and Martinez 2020), per sample.

    Each group of ``features_in_step`` features (in index order) is set to
    the baseline alone; the group is *ignored* when the response moves by
    less than ``eps``, and *unexplained* when all its relevance is below
    ``eps``. The score counts the groups where one holds and not the other
    (with ``features_in_step=1``, features; quantus' ``NonSensitivity``,
    which needs ``features_in_step=1``). Lower is better; 0 is a map
    that marks exactly what the output depends on.

    Parameters
    ----------
    estimator, X, relevance, y, target, baseline, internal_batch_size
        As :func:`~sklearn_relevance.metrics.faithfulness_correlation`.
    eps : float, default=1e-5
    features_in_step : int, default=1
    response : {"proba", "logit"}, default="proba"
    absolute, normalise : bool, default=True
        ``|a|``, divided by each map's largest value (quantus divides by
        the batch's).

    Returns
    -------
    ndarray of shape (n_samples,)

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.metrics import non_sensitivity
    >>> net = torch.nn.Linear(4, 1)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1., 0., 2., 0.]]))
    >>> X = torch.ones(2, 4)
    >>> non_sensitivity(net, X, X * net.weight, response="logit", baseline=0.0)
    array([0., 0.])
    """
    owner = "non_sensitivity"
    fis = check_int(features_in_step, "features_in_step", owner)
    eps = check_real(eps, "eps", owner, low=0)
    model, a = _setup(owner, estimator, X, relevance, y, target, response,
                      internal_batch_size, absolute)
    if normalise:
        m = a.abs().amax(1, keepdim=True)
        a = a / torch.where(m == 0, torch.ones_like(m), m)
    X, n, F = model.X, model.n, a.shape[1]
    base = resolve_base(baseline, X, owner)
    steps = math.ceil(F / fis)
    group = (torch.arange(F, device=X.device) // fis).expand(n, F)
    ignored = torch.empty(steps, n, dtype=torch.bool, device=X.device)
    with model.access():
        t = model.resolve_target()
        f0 = model.response(X, t, response).double()
        for sl in model.step_chunks(steps, "forward_pass_input"):
            j = torch.arange(sl.start, sl.stop, device=X.device)
            r = masked_response(model, X, base, group[None] == j[:, None, None], t, response)
            ignored[sl] = (r - f0).abs() < eps
    small = torch.ones(n, steps, dtype=torch.bool, device=X.device)
    small.scatter_reduce_(1, group, a < eps, reduce="amin")
    return to_numpy((ignored.T ^ small).sum(1).double())
