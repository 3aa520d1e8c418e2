"""Which network an explanation runs on, decided once per call.

Every explanation (an estimator's ``explain``, ``sklearn_relevance.explain``,
scorers, ``compare_explainers``, and an explainer called on a bare module)
asks :func:`~sklearn_relevance._inference.module_for_explainer` once, at
the outermost call, which network to run: the caller's module or its
inference copy. Explainers that call other explainers (SmoothGrad's base
method, XRAI's base attribution) run inside that decision and do not ask
again: a context variable, :func:`network_decided`, marks the calls made
under it (per thread and per task, so concurrent calls never see each
other's decision).

Training penalties (``create_graph=True``) always run on the module itself:
their relevance must reach the module's own parameters.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from ._inference import module_for_explainer

__all__ = ["network_decided", "network_for"]

_DECIDED = contextvars.ContextVar("sklearn_relevance_network_decided", default=False)


@contextmanager
def network_decided():
    """Calls made inside run on the network they are given (no second decision)."""
    token = _DECIDED.set(True)
    try:
        yield
    finally:
        _DECIDED.reset(token)


def network_for(module, X, explainer, *, create_graph=False, n_samples=None):
    """The network ``explainer`` should run on for ``X``: ``module`` or its copy.

    ``module`` itself inside :func:`network_decided`, for
    ``create_graph=True`` (training), or where
    :func:`~sklearn_relevance._inference.module_for_explainer` says so
    (modules in training mode, explainers that read inner layers, small
    calls). ``n_samples`` is the number of samples the whole call explains
    (``X`` may hold only the first ones).
    """
    if _DECIDED.get() or create_graph:
        return module
    return module_for_explainer(module, X, explainer, n_samples=n_samples)
