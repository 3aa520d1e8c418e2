"""Attribution-quality metrics and scorers (extension point 2).

Every metric is a pure function on batches (numpy arrays or torch tensors)
that computes in torch on the estimator's (or the input's) device and returns
one value per sample. :func:`make_relevance_scorer` turns any of them into a
scikit-learn scorer for ``GridSearchCV`` / ``cross_validate``; masks and
ground-truth importances reach it through metadata routing.

Families:

- fidelity (:mod:`.fidelity`): :func:`perturbation_curve`,
  :func:`fidelity_score`, :func:`deletion_auc`, :func:`insertion_auc`;
- localisation (:mod:`.localization`): :func:`mask_roc_auc`,
  :func:`mask_dice`, :func:`relevance_mass_accuracy`,
  :func:`relevance_rank_accuracy`, :func:`pointing_game`;
- complexity (:mod:`.complexity`): :func:`sparseness`;
- agreement (:mod:`.agreement`): :func:`importance_ranking`,
  :func:`rank_biased_overlap`, :func:`importance_rmse`;
- regions (:mod:`.regions`): :func:`region_relevance`,
  :func:`fingerprint_similarity`.

A named metric is one line of the registry (:func:`registered_metrics`,
``metrics/_registry.py``), which serves the scorers, the
``RelevanceScoring`` callback and ``compare_explainers``.
"""

from ._registry import RegisteredMetric, registered_metrics
from ._scorer import available_relevance_scorers, get_relevance_scorer, make_relevance_scorer
from .agreement import importance_ranking, importance_rmse, rank_biased_overlap
from .axiomatic import completeness, completeness_gap, non_sensitivity
from .complexity import sparseness
from .fidelity import deletion_auc, fidelity_score, insertion_auc, perturbation_curve
from .faithfulness import (
    faithfulness_correlation,
    faithfulness_estimate,
    infidelity,
    monotonicity_arya,
    monotonicity_nguyen,
)
from .faithfulness_regions import (
    irof,
    selectivity,
    selectivity_curve,
    sensitivity_n,
    sensitivity_n_curve,
)
from .localization import (
    mask_dice,
    mask_roc_auc,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from .data_randomisation import data_randomisation
from .randomisation import (
    efficient_model_parameter_randomisation,
    model_parameter_randomisation,
    random_logit,
    randomised_layers,
)
from .regions import fingerprint_similarity, region_relevance
from .road import noisy_linear_imputation, road, road_curve
from .robustness import (
    avg_sensitivity,
    local_lipschitz_estimate,
    max_sensitivity,
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)

__all__ = [
    "perturbation_curve",
    "fidelity_score",
    "deletion_auc",
    "insertion_auc",
    "mask_roc_auc",
    "mask_dice",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "pointing_game",
    "sparseness",
    "importance_ranking",
    "rank_biased_overlap",
    "importance_rmse",
    "region_relevance",
    "fingerprint_similarity",
    "model_parameter_randomisation",
    "efficient_model_parameter_randomisation",
    "random_logit",
    "data_randomisation",
    "randomised_layers",
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "relative_input_stability",
    "relative_output_stability",
    "relative_representation_stability",
    "faithfulness_correlation",
    "faithfulness_estimate",
    "monotonicity_arya",
    "monotonicity_nguyen",
    "infidelity",
    "road",
    "road_curve",
    "noisy_linear_imputation",
    "irof",
    "selectivity",
    "selectivity_curve",
    "sensitivity_n",
    "sensitivity_n_curve",
    "completeness",
    "completeness_gap",
    "non_sensitivity",
    "make_relevance_scorer",
    "get_relevance_scorer",
    "available_relevance_scorers",
    "registered_metrics",
    "RegisteredMetric",
]
