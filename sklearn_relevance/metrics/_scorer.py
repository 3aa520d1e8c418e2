"""Scorers: attribution-quality metrics as scikit-learn scorers.

A relevance scorer is called as ``scorer(estimator, X, y, **metadata)``: it
computes the relevance with ``estimator.explain(X, y, explainer=...)`` and
averages the metric over the samples. Masks and ground-truth importances are
metadata: with ``sklearn.set_config(enable_metadata_routing=True)`` and
``scorer.set_score_request(masks=True)``, ``GridSearchCV.fit(X, y,
masks=masks)`` hands each fold's masks to the scorer.
"""

from __future__ import annotations

import inspect
from functools import partial
from numbers import Integral

import numpy as np
from sklearn.metrics._scorer import _BaseScorer
from sklearn.utils._metadata_requests import (
    MetadataRequest,
    MethodMetadataRequest,
    get_routing_for_object,
)

from ..explainers import get_explainer
from .fidelity import deletion_auc, fidelity_score, insertion_auc, perturbation_curve
from ._registry import metric_arguments, scorer_table
from .._nets import final_input
from .._request import estimator_targets

__all__ = [
    "make_relevance_scorer",
    "get_relevance_scorer",
    "available_relevance_scorers",
    "relevance_of",
]

#: Arguments the scorer itself supplies to a metric (never metadata).
SUPPLIED = {"estimator", "X", "y", "relevance", "explainer"}

#: Metadata a metric may need, and how to pass it to a scorer.
_METADATA = {"masks", "importances"}


def relevance_of(estimator, X, y=None, *, explainer=None, target=None, batch_size=None):
    """``(final_estimator, X_final, relevance)`` for an estimator or a Pipeline.

    For a Pipeline, X is transformed by every step but the last and the final
    step's ``explain`` runs on the result; the relevance refers to that input.
    """
    final, Xt = final_input(estimator, X)
    if not callable(getattr(final, "explain", None)):
        raise ValueError(
            "Relevance scorers need an estimator with an 'explain' method (a "
            "RelevanceNet estimator, or a Pipeline ending in one). Got "
            f"{type(final).__name__} instead."
        )
    final, Xt, rel, _ = _explained(final, Xt, y, explainer=explainer, target=target,
                                   batch_size=batch_size)
    return final, Xt, rel


def _explained(final, Xt, y, *, explainer, target, batch_size):
    """``(final, Xt, relevance, target)`` with the target resolved once.

    The library's estimators resolve the target by the one policy
    (:mod:`sklearn_relevance._target_policy`) before explaining, and the
    same class indices go to ``explain`` and to the metric, so the map and
    its score follow one output.
    """
    if callable(getattr(final, "_predicted_indices", None)):
        target = estimator_targets(final, Xt, y, target, owner="the relevance scorer")
    rel = final.explain(Xt, y, explainer=explainer, target=target, batch_size=batch_size)
    return final, Xt, rel, target


def available_relevance_scorers():
    """Sorted names accepted by :func:`get_relevance_scorer`.

    Examples
    --------
    >>> from sklearn_relevance.metrics import available_relevance_scorers
    >>> "mask_roc_auc" in available_relevance_scorers()
    True
    """
    return sorted(scorer_table())


def _cache_of(method_caller):
    """The per-call cache dict of scikit-learn's multimetric scoring, if any."""
    if isinstance(method_caller, partial) and method_caller.args:
        cache = method_caller.args[0]
        if isinstance(cache, dict):
            return cache
    return None


def _metric_name(metric):
    return getattr(metric, "__name__", type(metric).__name__)


def _accepted_keywords(metric):
    """Keyword names ``metric`` accepts, or None when any is accepted.

    The perturbation metrics forward ``**curve_options`` to
    :func:`perturbation_curve`, whose keywords are added.
    """
    params = inspect.signature(metric).parameters
    names = {k for k, p in params.items()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        if metric not in (fidelity_score, deletion_auc, insertion_auc):
            return None
        names |= set(inspect.signature(perturbation_curve).parameters)
    return names


def _required_metadata(metric, fixed):
    """Metric parameters without a default that neither the scorer nor ``fixed``
    supplies (``masks``, ``importances``): they must come as metadata."""
    params = inspect.signature(metric).parameters
    return sorted(
        k for k, p in params.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and k not in SUPPLIED and k not in fixed
    )


def _check_scorer_params(metric, kwargs, explainer, target, batch_size):
    """Validate ``make_relevance_scorer``'s arguments before any scoring."""
    name = _metric_name(metric)
    clash = sorted(set(kwargs) & SUPPLIED)
    if clash:
        raise ValueError(
            f"make_relevance_scorer cannot fix {clash} for {name}: the scorer supplies "
            "estimator, X, y and relevance itself at each call."
        )
    accepted = _accepted_keywords(metric)
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown:
        raise ValueError(
            f"make_relevance_scorer got keyword argument(s) {unknown} that the metric "
            f"{name} does not accept. Accepted: {sorted(accepted - SUPPLIED)}."
        )
    if explainer is not None:
        get_explainer(explainer, param_name="explainer")
    if not (target is None or (isinstance(target, str) and target in ("true", "predicted"))
            or (isinstance(target, (Integral, np.integer)) and not isinstance(target, bool))):
        raise ValueError(
            "The 'target' parameter of make_relevance_scorer must be None, 'predicted', "
            f"'true' or an int output index. Got {target!r} instead."
        )
    if batch_size is not None and not (
            isinstance(batch_size, (Integral, np.integer)) and not isinstance(batch_size, bool)
            and (batch_size >= 1 or batch_size == -1)):
        raise ValueError(
            "The 'batch_size' parameter of make_relevance_scorer must be None, a positive "
            f"int or -1. Got {batch_size!r} instead."
        )


def _missing_metadata_error(metric, missing):
    name = _metric_name(metric)
    keys = ", ".join(f"{k}=True" for k in missing)
    args = ", ".join(f"{k}={k}" for k in missing)
    return ValueError(
        f"The relevance scorer of {name} needs {missing} metadata, which was not "
        f"passed. Call it as scorer(estimator, X, y, {args}); in GridSearchCV or "
        "cross_validate, enable metadata routing "
        "(sklearn.set_config(enable_metadata_routing=True)), request it with "
        f"scorer.set_score_request({keys}) and pass it to fit "
        f"(search.fit(X, y, {args}))."
    )


class _RelevanceScorer(_BaseScorer):
    """Scorer computing relevance with ``explain`` and averaging a metric."""

    def __init__(self, metric, sign, kwargs, explainer=None, target=None, batch_size=None):
        super().__init__(score_func=metric, sign=sign, kwargs=kwargs,
                         response_method=("explain", "predict"))
        self._explainer = explainer
        self._target = target
        self._batch_size = batch_size
        self._params = set(inspect.signature(metric).parameters)

    def __repr__(self):
        sign = "" if self._sign > 0 else ", greater_is_better=False"
        extra = "" if self._explainer is None else f", explainer={self._explainer!r}"
        if self._target is not None:
            extra += f", target={self._target!r}"
        kwargs = "".join(f", {k}={v!r}" for k, v in self._kwargs.items())
        name = getattr(self._score_func, "__name__", repr(self._score_func))
        return f"make_relevance_scorer({name}{sign}{extra}{kwargs})"

    def __call__(self, estimator, X, y_true=None, **metadata):
        """Score ``estimator`` on ``X``: the metric's mean over the samples.

        Metadata (``masks``, ``importances``, ``sample_weight``) may be
        passed directly; inside ``GridSearchCV`` it arrives through
        metadata routing.
        """
        return self._score(None, estimator, X, y_true, **metadata)

    def _relevance(self, method_caller, estimator, X, y):
        cache = _cache_of(method_caller)
        key = ("sklearn_relevance.explain", repr(self._explainer), repr(self._target))
        if cache is not None and key in cache:
            return cache[key]
        final, Xt = final_input(estimator, X)
        if not callable(getattr(final, "explain", None)):
            relevance_of(estimator, X, y)  # raises its error
        result = _explained(final, Xt, y, explainer=self._explainer, target=self._target,
                            batch_size=self._batch_size)
        if cache is not None:
            cache[key] = result
        return result

    def _score(self, method_caller, estimator, X, y_true, **kwargs):
        sample_weight = kwargs.pop("sample_weight", None)
        self._check_metadata(kwargs)  # before the relevance is computed
        final, Xt, rel, target = self._relevance(method_caller, estimator, X, y_true)
        args = metric_arguments(self._score_func, {"estimator": final, "X": Xt,
                                                   "y": y_true, "relevance": rel,
                                                   "explainer": self._explainer})
        call_kwargs = {**self._kwargs, **kwargs}
        if "target" in self._params and "target" not in call_kwargs:
            # follow the output that was explained: the same class indices
            call_kwargs["target"] = "predicted" if target is None else target
        values = np.asarray(self._score_func(**args, **call_kwargs), dtype=np.float64)
        return self._sign * _nan_average(values, sample_weight)

    def _check_metadata(self, metadata):
        accepted = _accepted_keywords(self._score_func)
        unknown = sorted(set(metadata) - accepted) if accepted is not None else []
        if unknown:
            raise ValueError(
                f"The relevance scorer of {_metric_name(self._score_func)} got metadata "
                f"{unknown} that its metric does not accept."
            )
        missing = [k for k in _required_metadata(self._score_func, self._kwargs)
                   if k not in metadata or metadata[k] is None]
        if missing:
            raise _missing_metadata_error(self._score_func, missing)

    def _get_metadata_request(self):
        if hasattr(self, "_metadata_request"):
            return get_routing_for_object(self._metadata_request)
        requests = MetadataRequest(owner=self)
        values = self._get_class_level_metadata_request_values(
            method_name="score", method=self._score_func, ignore_params=SUPPLIED
        ) if hasattr(self, "_get_class_level_metadata_request_values") else {}
        requests.score = MethodMetadataRequest(owner=self, method="score",
                                               requests=values)
        return requests


def _nan_average(values, sample_weight=None):
    """Mean (weighted) over the samples where the metric is defined."""
    values = np.ravel(values)
    ok = ~np.isnan(values)
    if not ok.any():
        return float("nan")
    if sample_weight is None:
        return float(values[ok].mean())
    w = np.ravel(np.asarray(sample_weight, dtype=np.float64))
    if w.shape != values.shape:
        raise ValueError(
            f"sample_weight must hold one weight per sample ({values.size}). Got "
            f"{w.size} instead."
        )
    return float(np.average(values[ok], weights=w[ok]))


def make_relevance_scorer(metric, *, explainer=None, greater_is_better=True, target=None,
                          batch_size=None, **kwargs):
    """Make a scorer from an attribution-quality metric.

    The scorer, called as ``scorer(estimator, X, y, **metadata)``, computes
    the relevance with ``estimator.explain(X, y, explainer=explainer,
    target=target)`` (for a Pipeline: X transformed by all steps but the
    last, then the last step's ``explain``), calls the metric and returns
    its mean over the samples where it is defined (NaN values are skipped;
    ``sample_weight`` metadata weights the mean). It works in
    ``GridSearchCV`` / ``cross_validate`` scoring dicts; several relevance
    scorers with the same explainer share one ``explain`` call per fold.

    The metric is called with the arguments it names among ``estimator``
    (the final estimator), ``X`` (its input), ``y`` and ``relevance``, plus
    ``kwargs`` and the routed metadata. A metric with a ``target`` parameter
    follows the explained output.

    Parameters
    ----------
    metric : str or callable
        A name of :func:`available_relevance_scorers` (its direction is then
        known) or a function such as :func:`~sklearn_relevance.metrics.mask_dice`
        returning one value per sample (or a float).
    explainer : str or explainer object, optional
        Passed to ``explain``; ``None`` uses the estimator's own
        ``relevance_explainer``.
    greater_is_better : bool, default=True
        ``False`` negates the score (as scikit-learn's ``neg_*`` scorers).
        Ignored for a metric name.
    target : None, "predicted", "true" or int, default=None
        The output explained, by the library's one target policy
        (:ref:`target-policy`): ``None`` (or ``"predicted"``) the class
        ``predict`` returns, ``"true"`` the label ``y``, an int that output.
        It is resolved once per call, and the metric (if it has a
        ``target`` parameter) follows the same class indices.
    batch_size : int, optional
        Samples per ``explain`` call.
    **kwargs
        Fixed keyword arguments of the metric (e.g. ``steps=10``).

    Returns
    -------
    scorer : callable
        Supports ``set_score_request`` for metadata routing (``masks``,
        ``importances``, ``sample_weight``).

    Examples
    --------
    >>> from sklearn_relevance.metrics import make_relevance_scorer, mask_dice
    >>> scorer = make_relevance_scorer(mask_dice, fraction=0.1)
    >>> scorer
    make_relevance_scorer(mask_dice, fraction=0.1)
    >>> make_relevance_scorer("neg_deletion_auc", explainer="gradient", steps=10)
    make_relevance_scorer(deletion_auc, greater_is_better=False, explainer='gradient', steps=10)
    """
    if isinstance(metric, str):
        try:
            entry = scorer_table()[metric]
        except KeyError:
            raise ValueError(
                "The 'metric' parameter of make_relevance_scorer must be a callable or "
                f"a str among {available_relevance_scorers()}. Got {metric!r} instead."
            ) from None
        metric, greater_is_better = entry.function, entry.greater_is_better
    elif not callable(metric):
        raise ValueError(
            "The 'metric' parameter of make_relevance_scorer must be a callable or a "
            f"str. Got {type(metric).__name__} instead."
        )
    _check_scorer_params(metric, kwargs, explainer, target, batch_size)
    sign = 1 if greater_is_better else -1
    return _RelevanceScorer(metric, sign, kwargs, explainer=explainer, target=target,
                            batch_size=batch_size)


def get_relevance_scorer(scoring, **kwargs):
    """Return a relevance scorer from its name (or a scorer, unchanged).

    Parameters
    ----------
    scoring : str or callable
        One of :func:`available_relevance_scorers`, the scorer names of the
        metric registry (:func:`registered_metrics` says which need
        ``masks`` or ``importances`` metadata).
    **kwargs
        ``explainer``, ``target``, ``batch_size`` and metric options, as in
        :func:`make_relevance_scorer`.

    Returns
    -------
    scorer : callable

    Examples
    --------
    >>> from sklearn_relevance.metrics import get_relevance_scorer
    >>> get_relevance_scorer("sparseness", explainer="gradient_x_input")
    make_relevance_scorer(sparseness, explainer='gradient_x_input')
    """
    if callable(scoring) and not isinstance(scoring, str):
        return scoring
    if not isinstance(scoring, str) or scoring not in scorer_table():
        raise ValueError(
            "The 'scoring' parameter of get_relevance_scorer must be a str among "
            f"{available_relevance_scorers()} or a callable. Got {scoring!r} instead."
        )
    return make_relevance_scorer(scoring, **kwargs)
