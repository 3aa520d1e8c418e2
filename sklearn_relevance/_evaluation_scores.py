"""The scoring half of :func:`~sklearn_relevance.evaluation.compare_explainers`.

One explanation request per explainer, the metrics of the registry scored
per sample (NaN where a mask is empty or full, or where fidelity's class
is not the predicted one), and the mean with a bootstrap (or normal)
interval per column.
"""

from __future__ import annotations

import numpy as np
import torch

from ._request import ExplainRequest, resolve_explainer
from .metrics import registered_metrics


_PREDICTED_ONLY = ("fidelity",)
"""Metrics scored only where the explained class is the predicted one.

Fidelity divides by the followed class's unperturbed response: where the
explained class is not the predicted one (a misclassified sample under
``target="true"``) that response can be near 0 and one sample dominates the
mean; those samples are left out (NaN), so every denominator is at least
``1 / n_classes``.
"""

def _registered(entry, params):
    """``(relevance, ctx) -> scores`` for a metric of the registry."""

    def metric(rel, ctx):
        if ctx["absolute"] and "masks" in entry.needs:
            rel = rel.abs()
        target = ctx["target"]  # class indices as numpy, whatever the device
        supplied = {"estimator": ctx["module"], "X": ctx["X"], "y": None,
                    "relevance": rel, "masks": ctx["masks"],
                    "explainer": ctx.get("explainer"),
                    "target": None if target is None else target.detach().cpu().numpy()}
        if "random_state" not in params:  # one seed for every explainer: paired draws
            supplied["random_state"] = ctx.get("metric_seed")
        scores = entry.call(supplied, **params)
        predicted = ctx.get("predicted")
        if (entry.name in _PREDICTED_ONLY and predicted is not None
                and torch.is_tensor(target) and target.ndim):
            other = (target != predicted).detach().cpu().numpy()
            scores = np.where(other, np.nan, _as_scores(scores, rel.shape[0]))
        return scores

    return metric

def _compared():
    """``{name: RegisteredMetric}`` of the registry's metrics compared here."""
    return {m.name: m for m in registered_metrics() if m.compared}

def _explainer_params(explainer, seed):
    """``{"random_state": seed}`` for a stochastic explainer without a seed."""
    params = explainer.get_params(deep=False) if hasattr(explainer, "get_params") else {}
    if "random_state" in params and params["random_state"] is None:
        return {"random_state": int(seed)}
    return {}

def _explain(final, module, explainer, X, Xt, target, chunk, params):
    """The maps of ``explainer`` for every sample, as a tensor on Xt's device.

    One explanation request per explainer: an estimator explains ``X`` as
    given (a DataFrame keeps its column names for the estimator's checks)
    through its own ``explain``; a plain torch module is explained on
    ``Xt`` by an :class:`~sklearn_relevance._request.ExplainRequest` (eval
    mode and the module's lock for the call, the network decided once:
    the module or its inference copy). The target indices are resolved once
    by the caller and shared with the metrics.
    """
    if not isinstance(final, torch.nn.Module):
        rel = final.explain(X, explainer=explainer, target=target, batch_size=chunk,
                            **params)
        return torch.as_tensor(rel, device=Xt.device)
    exp = resolve_explainer(explainer, params)
    request = ExplainRequest(module, Xt, target, exp, chunk, device=Xt.device)
    return request.run(as_numpy=False)

def _scores_on_valid(fn, rel, ctx, valid):
    """Per-sample scores, NaN where the mask is empty or full (undefined)."""
    out = np.full(rel.shape[0], np.nan)
    if valid is None:
        out[:] = _as_scores(fn(rel, ctx), rel.shape[0])
        return out
    if not valid.any():
        return out
    idx = torch.as_tensor(np.flatnonzero(valid), device=rel.device)
    sub = dict(ctx, masks=ctx["masks"][idx], X=ctx["X"][idx])
    sub["target"] = ctx["target"][idx] if torch.is_tensor(ctx["target"]) else ctx["target"]
    out[valid] = _as_scores(fn(rel[idx], sub), int(valid.sum()))
    return out

def _as_scores(values, n):
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != n:
        raise ValueError(
            f"A metric returned {values.shape[0]} scores for {n} samples; metrics "
            "must return one score per sample."
        )
    return values

def _summarise(scores, n_bootstrap, confidence, rs):
    """Mean and interval per column of ``scores`` (n, k), NaNs ignored."""
    n = scores.shape[0]
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in scores.T])
    alpha = (1.0 - confidence) / 2
    if n_bootstrap:
        idx = rs.randint(0, n, size=(n_bootstrap, n))
        finite = np.isfinite(scores)
        vals = np.where(finite, scores, 0.0)[idx]  # (B, n, k)
        counts = finite[idx].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = vals.sum(1) / counts  # (B, k)
        low = np.array([np.nanquantile(b, alpha) if np.isfinite(b).any() else np.nan
                        for b in boot.T])
        high = np.array([np.nanquantile(b, 1 - alpha) if np.isfinite(b).any() else np.nan
                         for b in boot.T])
        return mean, low, high
    from scipy.stats import norm

    count = np.isfinite(scores).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = np.nanstd(scores, axis=0, ddof=1) / np.sqrt(count)
    half = norm.ppf(1 - alpha) * sem
    return mean, mean - half, mean + half
