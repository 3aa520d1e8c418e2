"""The training penalty of an estimator: one object, resolved at one point.

An estimator's penalty is a :class:`~sklearn_relevance.penalties.RelevancePenalty`
(its ``relevance_term``, or the default one) whose ``None`` parameters take
the estimator's ``relevance_explainer`` (with its ``relevance_explainer__*``
parameters), ``relevance_norm`` and ``relevance_target``. The resolved
object owns the explainer, norm and target the training uses.

:func:`training_penalty` is the one place it is resolved. Its cache is keyed
on everything that can change it: the term's and the explainer's parameters
(deeply: objects by identity and public attributes, tensors by identity
and version), the estimator's three parameters and its explainer parameters.
So a change made by ``set_params`` or by assigning an attribute, between
``fit`` and ``partial_fit`` or in a callback between epochs, takes effect at
the next batch, and nothing has to clear the cache by hand.

:func:`check_training_penalty` checks the configuration against the data
before any training work (the errors that would otherwise be raised inside
epoch 1).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .penalties import RelevancePenalty

__all__ = ["training_penalty", "check_training_penalty", "penalty_key"]


def _key(value, depth=0):
    """A hashable description of ``value`` that changes when it does."""
    if value is None or isinstance(value, (str, bool, int, float, np.generic)):
        return (type(value).__name__, value)
    if torch.is_tensor(value):
        return ("tensor", id(value), value._version)
    if isinstance(value, np.ndarray):
        return ("array", id(value), value.tobytes() if value.size <= 64 else value.shape)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_key(v, depth + 1) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _key(v, depth + 1))
                                     for k, v in value.items())))
    if hasattr(value, "get_params") and hasattr(value, "__dict__") and depth < 8 \
            and not isinstance(value, (type, torch.nn.Module)):
        # scikit-learn-style objects keep their parameters as attributes:
        # read them directly (get_params inspects the signature: 50 us a call,
        # too slow for every batch); private attributes are caches
        return (type(value), id(value),
                tuple(sorted((k, _key(v, depth + 1)) for k, v in vars(value).items()
                             if not k.startswith("_"))))
    return ("object", type(value), id(value))


def penalty_key(estimator):
    """Everything the resolved penalty of ``estimator`` depends on."""
    return (
        _key(estimator.relevance_term),
        _key(estimator.relevance_explainer),
        _key(estimator.relevance_norm),
        _key(estimator.relevance_target),
        _key({k: v for k, v in vars(estimator).items()
              if k.startswith("relevance_explainer__")}),
    )


def _resolve(estimator):
    from sklearn.base import clone

    from .explainers import get_explainer

    explainer = get_explainer(estimator.relevance_explainer, param_name="relevance_explainer")
    if explainer is estimator.relevance_explainer and hasattr(explainer, "get_params"):
        explainer = clone(explainer)
    extra = estimator.get_params_for("relevance_explainer")
    if extra:
        explainer.set_params(**extra)
    term = (estimator.relevance_term if estimator.relevance_term is not None
            else RelevancePenalty())
    return term.resolved(explainer=explainer, norm=estimator.relevance_norm,
                         target=estimator.relevance_target)


def training_penalty(estimator):
    """The resolved penalty ``estimator`` trains with (cached on its key)."""
    key = penalty_key(estimator)
    cached = vars(estimator).get("_penalty_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
    term = _resolve(estimator)
    vars(estimator)["_penalty_cache"] = (key, term)
    return term


def check_training_penalty(estimator, X=None):
    """Refuse a penalty that cannot train on ``X``, before any work.

    Checks the term's parameters (scikit-learn's wording), a differentiable
    explainer, a term that applies to the estimator (``log_prob_sum``, Ross
    et al.'s target, needs class probabilities: classifiers only) and an
    explainer that applies to ``X``'s number of spatial axes (Grad-CAM needs
    a spatial layer: not on tabular data). Only with
    ``relevance_penalty > 0``.
    """
    name = type(estimator).__name__
    penalty = estimator.relevance_penalty
    if not (isinstance(penalty, (int, float, np.number)) and penalty > 0):
        return None
    term = training_penalty(estimator)
    param = ("relevance_term" if estimator.relevance_term is not None
             and estimator.relevance_term.explainer is not None else "relevance_explainer")
    explainer = term.explainer
    if not getattr(explainer, "differentiable", True):
        raise ValueError(
            f"The '{param}' parameter of {name} must use a differentiable explainer when "
            "relevance_penalty > 0 (its relevance is trained on by double "
            f"backpropagation). Got {type(explainer).__name__}, which is not "
            "differentiable."
        )
    if term.target == "log_prob_sum" and getattr(estimator, "_is_regressor", False):
        raise ValueError(
            f"The 'relevance_term' parameter of {name} must not have "
            "target='log_prob_sum' (the sum of log-probabilities, RightReasonsPenalty's "
            f"default): a regressor has no probabilities. Got {term!r} instead. Use "
            "RightReasonsPenalty(target='all') or RelevancePenalty()."
        )
    ndims = getattr(explainer, "input_ndims", None)
    if ndims is not None and X is not None and not isinstance(X, Mapping):
        spatial = len(X.shape) - 2
        if spatial not in ndims:
            raise ValueError(
                f"The '{param}' parameter of {name} is {type(explainer).__name__}, which "
                f"applies to inputs with {' or '.join(map(str, ndims))} spatial axes "
                f"(n, channels, ...). Got X of shape {tuple(X.shape)} instead. Use an "
                "input-level explainer such as 'gradient_x_input' for tabular data."
            )
    return term
