"""The one metric registry: name, function, direction and needs of each metric.

A metric is added in one place: its function in the ``metrics/`` module of its
family, and one :class:`RegisteredMetric` line in :data:`_REGISTRY` below. The
registry serves :func:`~sklearn_relevance.metrics.make_relevance_scorer`
(names of :func:`~sklearn_relevance.metrics.available_relevance_scorers`),
the :class:`~sklearn_relevance.callbacks.RelevanceScoring` callback,
:func:`~sklearn_relevance.evaluation.compare_explainers` (names of
:func:`~sklearn_relevance.evaluation.available_metrics`) and the metric table
of the documentation (``docs/metrics.rst``, checked against it by
``tests/test_metric_registry.py``).
"""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple, Optional

import numpy as np

from .agreement import importance_ranking, importance_rmse, rank_biased_overlap
from .sanity import (
    data_randomisation_pass,
    mprt_pass,
    random_logit_pass,
    road_lerf,
    road_morf,
    smooth_mprt,
)
from .axiomatic import completeness, non_sensitivity
from .complexity import sparseness
from .faithfulness_regions import irof, selectivity, sensitivity_n
from .faithfulness import (
    faithfulness_correlation,
    faithfulness_estimate,
    infidelity,
    monotonicity_arya,
    monotonicity_nguyen,
)
from .data_randomisation import data_randomisation
from .randomisation import (
    efficient_model_parameter_randomisation,
    model_parameter_randomisation,
    random_logit,
)
from .robustness import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from .fidelity import deletion_auc, fidelity_score, insertion_auc
from .localization import (
    mask_dice,
    mask_roc_auc,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)

__all__ = ["RegisteredMetric", "registered_metrics", "NEEDS"]

#: What a metric may need besides the relevance: ``"masks"`` (ground-truth
#: regions, metadata of a scorer), ``"importances"`` (ground-truth feature
#: importances, metadata of a scorer), ``"model"`` (the network and its
#: input X: the metric runs forward passes). A metric that explains again
#: (robustness, randomisation) names an ``explainer`` parameter: the scorers
#: and ``compare_explainers`` pass the explainer whose maps they score.
NEEDS = ("masks", "importances", "model")


class RegisteredMetric(NamedTuple):
    """One metric of the registry.

    Attributes
    ----------
    name : str
        The metric's name (a column of ``compare_explainers``).
    function : callable
        ``function(relevance, ...)`` returning one value per sample; its
        parameters name what it takes among ``estimator``, ``X``, ``y``,
        ``relevance``, ``masks``, ``importances``, ``target`` and
        ``explainer``.
    greater_is_better : bool
        The direction of the metric.
    needs : frozenset of str
        A subset of :data:`NEEDS`.
    input_ndims : tuple of int or None
        The spatial dimensionalities of X it applies to (``None``: any).
    scorer : str or None
        Its name among the relevance scorers (``neg_`` prefixed where lower is
        better, as scikit-learn's), or None when it is no scorer.
    compared : bool
        Whether :func:`~sklearn_relevance.evaluation.compare_explainers`
        accepts it by name.
    """

    name: str
    function: Callable
    greater_is_better: bool
    needs: frozenset
    input_ndims: Optional[tuple]
    scorer: Optional[str]
    compared: bool

    def call(self, supplied, **params):
        """Call the function with the entries of ``supplied`` it names
        (among ``estimator``, ``X``, ``y``, ``relevance``, ``masks``,
        ``importances``, ``target``) and ``params``."""
        return self.function(**metric_arguments(self.function, supplied), **params)


def _rbo_metric(relevance, importances, *, p=0.9, extrapolated=True, top_k=None,
                absolute=True):
    """Rank-biased overlap between relevance and true importances, per sample."""
    a = importance_ranking(relevance, absolute=absolute, top_k=top_k)
    b = importance_ranking(importances, absolute=absolute, top_k=top_k)
    return rank_biased_overlap(np.atleast_2d(a), np.atleast_2d(b), p=p,
                               extrapolated=extrapolated)


def _rmse_metric(relevance, importances, *, normalize="l1"):
    """RMSE between relevance and true importances, per sample."""
    return importance_rmse(relevance, importances, normalize=normalize)


def _xrai_dice(estimator, X, relevance, masks, *, target=None, **xrai_params):
    """Dice of XRAI's top regions, grown from ``relevance``, against the mask.

    ``estimator`` is the network (a torch module); the XRAI parameters are
    keyword arguments. The CT study's "XRAI Dice".
    """
    import torch

    from ..explainers import XRAI

    if target is not None and not isinstance(target, int):
        target = torch.as_tensor(target, device=X.device)
    regions = XRAI(**xrai_params).explain(estimator, X, target,
                                          base_attribution=relevance)
    return mask_dice(regions, masks)


_rbo_metric.__name__ = "rank_biased_overlap"
_rmse_metric.__name__ = "importance_rmse"
_xrai_dice.__name__ = "xrai_dice"

_MASKS, _IMPORTANCES, _MODEL = (frozenset({"masks"}), frozenset({"importances"}),
                                frozenset({"model"}))


def _entry(name, function, greater_is_better, needs=frozenset(), *, input_ndims=None,
           scorer=True, compared=True):
    if scorer is True:
        scorer = name if greater_is_better else f"neg_{name}"
    return RegisteredMetric(name, function, greater_is_better, frozenset(needs),
                            input_ndims, scorer or None, compared)


#: The registry, in the order of the documentation's table.
_REGISTRY = (
    _entry("fidelity", fidelity_score, True, _MODEL),
    _entry("deletion_auc", deletion_auc, False, _MODEL, compared=False),
    _entry("insertion_auc", insertion_auc, True, _MODEL, compared=False),
    _entry("faithfulness_correlation", faithfulness_correlation, True, _MODEL),
    _entry("faithfulness_estimate", faithfulness_estimate, True, _MODEL),
    _entry("monotonicity_arya", monotonicity_arya, True, _MODEL),
    _entry("monotonicity_nguyen", monotonicity_nguyen, True, _MODEL),
    _entry("infidelity", infidelity, False, _MODEL, input_ndims=(1, 2, 3)),
    _entry("road_morf", road_morf, False, _MODEL, input_ndims=(2,)),
    _entry("road_lerf", road_lerf, True, _MODEL, input_ndims=(2,)),
    _entry("irof", irof, True, _MODEL, input_ndims=(2,)),
    _entry("selectivity", selectivity, False, _MODEL, input_ndims=(1, 2, 3)),
    _entry("sensitivity_n", sensitivity_n, True, _MODEL),
    _entry("completeness", completeness, True, _MODEL),
    _entry("non_sensitivity", non_sensitivity, False, _MODEL),
    _entry("max_sensitivity", max_sensitivity, False, _MODEL),
    _entry("avg_sensitivity", avg_sensitivity, False, _MODEL),
    _entry("local_lipschitz_estimate", local_lipschitz_estimate, False, _MODEL),
    _entry("relative_input_stability", relative_input_stability, False, _MODEL),
    _entry("relative_output_stability", relative_output_stability, False, _MODEL),
    _entry("relative_representation_stability", relative_representation_stability, False,
           _MODEL),
    _entry("mprt", model_parameter_randomisation, False, _MODEL),
    _entry("mprt_pass", mprt_pass, True, _MODEL),
    _entry("smooth_mprt", smooth_mprt, False, _MODEL),
    _entry("efficient_mprt", efficient_model_parameter_randomisation, True, _MODEL),
    _entry("random_logit", random_logit, False, _MODEL),
    _entry("random_logit_pass", random_logit_pass, True, _MODEL),
    _entry("data_randomisation", data_randomisation, False, _MODEL, compared=False),
    _entry("data_randomisation_pass", data_randomisation_pass, True, _MODEL,
           compared=False),
    _entry("mask_roc_auc", mask_roc_auc, True, _MASKS),
    _entry("mask_dice", mask_dice, True, _MASKS),
    _entry("relevance_mass_accuracy", relevance_mass_accuracy, True, _MASKS),
    _entry("relevance_rank_accuracy", relevance_rank_accuracy, True, _MASKS),
    _entry("pointing_game", pointing_game, True, _MASKS),
    _entry("xrai_dice", _xrai_dice, True, _MASKS | _MODEL, input_ndims=(2,),
           scorer=False),
    _entry("sparseness", sparseness, True),
    _entry("rank_biased_overlap", _rbo_metric, True, _IMPORTANCES, compared=False),
    _entry("importance_rmse", _rmse_metric, False, _IMPORTANCES, compared=False),
)


def registered_metrics():
    """The metric registry: one :class:`RegisteredMetric` per metric.

    Every named metric of the package is one entry: its function, direction
    and needs (masks, ground-truth importances, the model, input
    dimensionalities), its scorer name (for :func:`make_relevance_scorer`
    and :class:`~sklearn_relevance.callbacks.RelevanceScoring`) and whether
    :func:`~sklearn_relevance.evaluation.compare_explainers` accepts it.

    Returns
    -------
    tuple of RegisteredMetric

    Examples
    --------
    >>> from sklearn_relevance.metrics import registered_metrics
    >>> [m.scorer for m in registered_metrics() if m.name == "deletion_auc"]
    ['neg_deletion_auc']
    """
    return _REGISTRY


def scorer_table():
    """``{scorer name: RegisteredMetric}`` for the metrics that are scorers."""
    return {m.scorer: m for m in _REGISTRY if m.scorer is not None}


def metric_arguments(function, supplied):
    """The entries of ``supplied`` that ``function`` names as parameters."""
    params = inspect.signature(function).parameters
    return {k: v for k, v in supplied.items() if k in params}
