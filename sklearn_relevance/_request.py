"""One explanation request: every decision of an explanation, made once.

An :class:`ExplainRequest` holds what an explanation call settles before any
work: the network (the caller's module; which copy of it runs is asked once,
through :func:`~sklearn_relevance._which_network.network_for`), ``X`` (checked,
as torch tensors), the target (resolved by the one policy of
:mod:`sklearn_relevance._target_policy`), the explainer (resolved once, with
all its parameters) and the number of samples per explainer call (the
explainers size their inner passes by the memory budgets of
:mod:`sklearn_relevance._batching`). :meth:`ExplainRequest.run` then runs it:
eval mode and the module's lock for the whole call, the network decided
once, one explainer call per slice of samples.

Who builds requests: estimators' ``explain`` (:func:`estimator_request`,
which :func:`sklearn_relevance.explain`, relevance scorers, callbacks and
:class:`~sklearn_relevance.transformers.RelevanceTransformer` reach through
it) and :func:`~sklearn_relevance.evaluation.compare_explainers` (an
:class:`ExplainRequest` on a plain torch module, with the target indices it
resolved once). An explainer
called directly on a module decides the network the same way (in
:meth:`~sklearn_relevance.explainers.BaseExplainer.explain`).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone

from ._batching import batch_len, index_batch, iter_slices
from ._module_access import module_access, shares_module
from ._stream import is_streamed
from ._target_policy import resolve_target
from ._which_network import network_decided, network_for
from .explainers import get_explainer

__all__ = ["ExplainRequest", "estimator_request", "estimator_targets",
           "resolve_explainer", "check_explain_batch_size"]


class ExplainRequest:
    """A resolved explanation: run it with :meth:`run`.

    Parameters
    ----------
    module : torch.nn.Module
        The caller's network (locked and put in eval mode while it runs).
    X : Tensor or dict of Tensors
        Checked input, on any device (moved slice by slice to ``device``).
    targets : None, int or ndarray of int64 of shape (n,)
        Resolved by :func:`~sklearn_relevance._target_policy.resolve_target`.
    explainer : explainer object
        Resolved, parameters set.
    batch_size : int
        Samples per explainer call.
    device : torch.device or str or None
    verbose : int
        ``>= 1`` shows a progress bar.
    """

    def __init__(self, module, X, targets, explainer, batch_size, device=None, verbose=0):
        self.module = module
        self.X = X
        self.targets = targets
        self.explainer = explainer
        self.batch_size = int(batch_size)
        self.device = device
        self.verbose = verbose

    @property
    def n(self):
        return batch_len(self.X)

    def _on_device(self, Xb):
        if self.device is None:
            return Xb
        if isinstance(Xb, Mapping):
            return {k: torch.as_tensor(v).to(self.device) for k, v in Xb.items()}
        return torch.as_tensor(Xb).to(self.device)

    def run(self, *, as_numpy=True):
        """Explain every sample; numpy arrays (or tensors with ``as_numpy=False``)."""
        exp, module, n = self.explainer, self.module, self.n
        parts = []
        with module_access(module, shared=shares_module(exp), eval_mode=True):
            net = network_for(module, self._on_device(index_batch(self.X, slice(0, 2))),
                              exp, n_samples=n)
            slices = list(iter_slices(n, self.batch_size))
            if isinstance(self.verbose, Real) and self.verbose >= 1:
                from tqdm.auto import tqdm

                slices = tqdm(slices, desc="explain", unit="batch")
            with network_decided():
                for i, sl in enumerate(slices):
                    Xb = self._on_device(index_batch(self.X, sl))
                    tb = self.targets
                    if isinstance(tb, np.ndarray):
                        tb = torch.as_tensor(tb[sl], device=self.device)
                    rel = _seeded_for_batch(exp, i).explain(net, Xb, tb)
                    parts.append(_to_numpy(rel) if as_numpy else _detached(rel))
        if isinstance(parts[0], Mapping):
            join = np.concatenate if as_numpy else torch.cat
            return {k: join([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts) if as_numpy else torch.cat(parts)


def _seeded_for_batch(exp, i):
    """``exp`` for the ``i``-th batch of one call: a stochastic explainer
    seeded with an int draws batch 0 from its own seed (one batch equals the
    explainer called alone) and batch ``i > 0`` from a seed derived from
    ``(random_state, i)``, so that no two batches of a call share their noise
    (each batch draws its noise for its own rows from the seed it is given)."""
    if i == 0 or not hasattr(exp, "get_params"):
        return exp
    seed = exp.get_params(deep=False).get("random_state")
    if isinstance(seed, bool) or not isinstance(seed, (Integral, np.integer)):
        return exp
    derived = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0] >> 1)
    return clone(exp).set_params(random_state=derived)


def resolve_explainer(explainer, params=None, *, defaults=None):
    """The explainer object of a call, resolved once.

    ``explainer`` (a name or an object) with ``defaults`` (the estimator's
    ``relevance_explainer__*``) then ``params`` set; an object is cloned,
    never changed.
    """
    merged = {**(defaults or {}), **(params or {})}
    exp = get_explainer(explainer, param_name="explainer", **merged)
    if exp is explainer and hasattr(exp, "get_params"):
        exp = clone(exp)
    return exp


def check_explain_batch_size(batch_size, n, owner="explain"):
    """Samples per explainer call: a positive int, or -1 for all ``n``."""
    if (not isinstance(batch_size, (Integral, np.integer)) or isinstance(batch_size, bool)
            or batch_size == 0 or batch_size < -1):
        raise ValueError(
            f"The 'batch_size' parameter of {owner} must be a positive int or -1. "
            f"Got {batch_size!r} instead."
        )
    return max(n, 1) if batch_size == -1 else int(batch_size)


def estimator_request(estimator, X, y=None, *, explainer=None, target=None,
                      batch_size=None, explainer_params=None, **params):
    """The request of ``estimator.explain(X, y, ...)`` (a fitted RelevanceNet)."""
    if explainer_params is not None and not isinstance(explainer_params, Mapping):
        raise ValueError(
            "The 'explainer_params' parameter of explain must be a dict or None. "
            f"Got {type(explainer_params).__name__} instead."
        )
    X = estimator._check_predict_input(X)
    _refuse_streamed(X)
    params = {**(explainer_params or {}), **params}
    if explainer is None:
        exp = resolve_explainer(estimator.relevance_explainer, params,
                                defaults=estimator.get_params_for("relevance_explainer"))
    else:
        exp = resolve_explainer(explainer, params)
    n = batch_len(X)
    targets = _estimator_targets(estimator, X, y, target)
    bs = check_explain_batch_size(
        batch_size if batch_size is not None else estimator.batch_size, n)
    return ExplainRequest(estimator.module_, X, targets, exp, bs, device=estimator.device,
                          verbose=getattr(estimator, "verbose", 0))


def _refuse_streamed(X):
    """Row sources (lazy imzML spectra) are read batch by batch by fit and
    predict only; explanations take arrays. Refused before any work."""
    if is_streamed(X):
        from skorch.utils import to_tensor

        to_tensor(X, device="cpu")  # a row source refuses with its own message
        raise TypeError(
            f"explain takes arrays, not the row source {type(X).__name__}: pass "
            "X[rows].read() (the rows to explain)."
        )


def _estimator_targets(estimator, X, y, target, owner="explain"):
    return resolve_target(
        target, n=batch_len(X), n_outputs=estimator.n_outputs_, y=y,
        classes=getattr(estimator, "classes_", None),
        predicted=lambda: estimator._predicted_indices(X, checked=True),
        regression=bool(getattr(estimator, "_is_regressor", False)), owner=owner)


def estimator_targets(estimator, X, y=None, target=None, *, owner="explain"):
    """The target policy applied to a fitted estimator of this package and X.

    Returns ``None`` (single output), an ``int`` or int64 indices ``(n,)``:
    callers that explain and then score (scorers, ``compare_explainers``)
    resolve the target once and hand the same indices to both.
    """
    X = estimator._check_predict_input(X)
    _refuse_streamed(X)
    return _estimator_targets(estimator, X, y, target, owner)


def _detached(rel):
    if isinstance(rel, Mapping):
        return {k: v.detach() for k, v in rel.items()}
    return rel.detach()


def _to_numpy(rel):
    if isinstance(rel, Mapping):
        return {k: v.detach().cpu().numpy() for k, v in rel.items()}
    return rel.detach().cpu().numpy()
