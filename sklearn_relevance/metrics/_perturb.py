"""Perturbed forwards shared by the faithfulness metrics.

A metric describes its perturbations as boolean masks over the features of
X (k steps x n samples x F features, built a chunk of steps at a time from
the features' ranks or groups) and a replacement (a baseline, or other
values); :func:`masked_response` runs every step of a chunk in one forward
pass through :class:`~sklearn_relevance.metrics._explaining.Model`.
"""

from __future__ import annotations

import numbers

import torch

from .._baselines import resolve_baselines
from ._sorting import stable_order

__all__ = ["resolve_base", "masked_response", "feature_ranks"]


def resolve_base(baseline, X, owner):
    """Replacement values of X's shape: ``"black"`` / ``"white"`` (each
    sample's smallest / largest value, quantus' names), ``"mean"`` (each
    sample's mean, quantus' "mean"), a number, an array, ``"blur"`` or a
    callable (:func:`~sklearn_relevance._baselines.resolve_baselines`)."""
    flat = X.reshape(X.shape[0], -1)
    if isinstance(baseline, str) and baseline in ("black", "white", "mean"):
        v = {"black": lambda: flat.amin(1), "white": lambda: flat.amax(1),
             "mean": lambda: flat.mean(1)}[baseline]()
        return v.reshape(-1, *([1] * (X.ndim - 1))).expand(X.shape)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full_like(X, float(baseline))
    return resolve_baselines(baseline, X, name="baseline", owner=owner)


def feature_ranks(a, descending):
    """Rank of each feature in the order of ``a`` (0 = first), ties by index."""
    n, F = a.shape
    order = stable_order(a, descending=descending)
    ar = torch.arange(F, device=a.device).expand(n, F)
    return torch.empty_like(order).scatter_(1, order, ar)


def masked_response(model, X, base, mask, target, response, *, per_step=False):
    """Responses (k, n) to X with ``mask`` (k, n, F) features set to ``base``.

    ``base`` is of X's shape, or (k, n, F) values per step (``per_step``).
    """
    k, n = mask.shape[:2]
    xf = X.reshape(1, n, -1)
    bf = base if per_step else base.reshape(1, n, -1)
    rows = torch.where(mask, bf, xf).reshape(k * n, *X.shape[1:])
    t = None if target is None else target.repeat(k)
    return model.response(rows, t, response).reshape(k, n).double()
