"""Re-export of the baseline resolver, which lives on the ground floor
(:mod:`sklearn_relevance._baselines`), for the explainers that import it
from here."""

from .._baselines import BASELINE_NAMES, gaussian_blur, resolve_baselines

__all__ = ["BASELINE_NAMES", "gaussian_blur", "resolve_baselines"]
