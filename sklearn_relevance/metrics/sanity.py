"""Registry forms of the sanity checks and ROAD, and the sanity columns of
:func:`~sklearn_relevance.evaluation.compare_explainers`.

A verdict metric returns 1.0 where a sample passes its randomisation test
and 0.0 where it fails, so that its mean over samples is the pass rate and
the bootstrap interval of ``compare_explainers`` is the pass rate's.
"""

from __future__ import annotations

import numpy as np

from .data_randomisation import data_randomisation
from .randomisation import model_parameter_randomisation, random_logit
from .road import road

__all__ = ["SANITY_TESTS", "check_sanity", "sanity_columns"]


def mprt_pass(estimator, X, relevance, *, explainer=None, target=None, **params):
    """Per-sample MPRT verdict (1.0 pass, 0.0 fail), see
    :func:`~sklearn_relevance.metrics.model_parameter_randomisation`."""
    return model_parameter_randomisation(estimator, X, relevance, explainer=explainer,
                                         target=target, return_verdict=True, **params)[1]


def smooth_mprt(estimator, X, *, explainer=None, target=None, smooth_samples=50, **params):
    """SmoothMPRT score per sample (:func:`model_parameter_randomisation`
    with ``smooth_samples=50`` noisy copies, the maps recomputed)."""
    return model_parameter_randomisation(estimator, X, None, explainer=explainer,
                                         target=target, smooth_samples=smooth_samples,
                                         **params)


def random_logit_pass(estimator, X, relevance, *, explainer=None, target=None, **params):
    """Per-sample random-logit verdict (1.0 pass, 0.0 fail), see
    :func:`~sklearn_relevance.metrics.random_logit`."""
    return random_logit(estimator, X, relevance, explainer=explainer, target=target,
                        return_verdict=True, **params)[1]


def data_randomisation_pass(estimator, X, y, relevance, *, explainer=None, target=None,
                            **params):
    """Per-sample data randomisation verdict (1.0 pass, 0.0 fail), see
    :func:`~sklearn_relevance.metrics.data_randomisation`."""
    return data_randomisation(estimator, X, y, relevance, explainer=explainer, target=target,
                              return_verdict=True, **params)[1]


def road_morf(estimator, X, relevance, *, y=None, target=None, **params):
    """ROAD, most relevant first (lower is better), see :func:`road`."""
    return road(estimator, X, relevance, y=y, target=target, order="morf", **params)


def road_lerf(estimator, X, relevance, *, y=None, target=None, **params):
    """ROAD, least relevant first (higher is better), see :func:`road`."""
    return road(estimator, X, relevance, y=y, target=target, order="lerf", **params)


#: ``{test: verdict function}`` of ``compare_explainers(sanity=...)``.
SANITY_TESTS = {
    "mprt": mprt_pass,
    "random_logit": random_logit_pass,
    "data_randomisation": data_randomisation_pass,
}


def check_sanity(sanity, final, n_outputs, y):
    """The tests of ``compare_explainers(sanity=...)``, validated before any work.

    ``True`` runs every test that applies (random logit needs several
    outputs, data randomisation an estimator with ``fit`` and labels).
    """
    if sanity is None or sanity is False:
        return []
    applicable = ["mprt"]
    if n_outputs > 1:
        applicable.append("random_logit")
    if hasattr(final, "fit") and y is not None:
        applicable.append("data_randomisation")
    if sanity is True:
        return applicable
    tests = [sanity] if isinstance(sanity, str) else list(sanity)
    bad = [t for t in tests if t not in SANITY_TESTS]
    if bad or not tests:
        raise ValueError(
            "The 'sanity' parameter of compare_explainers must be None, True or a list "
            f"among {sorted(SANITY_TESTS)}. Got {sanity!r} instead.")
    missing = [t for t in tests if t not in applicable]
    if missing:
        raise ValueError(
            f"The sanity test(s) {missing} do not apply here: random_logit needs a "
            "classifier, data_randomisation a fitted estimator (it is refitted on "
            "permuted labels) and y.")
    return tests


def sanity_columns(tests, *, final, net, X_raw, X, y, target, explainer, relevance,
                   random_state):
    """``{f"sanity_{test}": per-sample verdicts}`` for one explainer's maps."""
    out = {}
    for test in tests:
        if test == "data_randomisation":
            v = data_randomisation_pass(final, X_raw, y, relevance, explainer=explainer,
                                        target=target, random_state=random_state)
        else:
            v = SANITY_TESTS[test](net, X, relevance, explainer=explainer, target=target,
                                   random_state=random_state)
        out[f"sanity_{test}"] = np.asarray(v, dtype=np.float64)
    return out
