"""Training penalties built on an explainer: deep relevance regularization
and "right for the right reasons" with expert masks.

The penalty is the norm of the network's own relevance for the training
batch, added to the loss with weight ``relevance_penalty`` and minimised by
double backpropagation: the relevance is computed with ``create_graph=True``
so that its norm can be differentiated with respect to the weights.

Without annotations this is deep relevance regularization (DRR): the
network learns to rely on few input features. With per-sample masks (1
where relevance is allowed, 0 where it must vanish) only the relevance
outside the allowed region is penalised, ``norm(relevance * (1 - mask))``
(Ross et al. 2017, "Right for the right reasons"); DRR is the case of an
empty allowed region.

Penalties are objects (:class:`RelevancePenalty`, :class:`RightReasonsPenalty`
or a subclass) given to an estimator as ``relevance_term``; subclasses
override :meth:`RelevancePenalty.relevance` (how relevance is computed) or
:meth:`RelevancePenalty.reduce` (how it becomes a number).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, StrOptions

from .explainers import get_explainer
from ._module_access import frozen_batchnorm_stats
from ._penalty_scale import feature_norm as _feature_norm
from ._tensors import flatten_inputs

__all__ = ["RelevancePenalty", "RightReasonsPenalty", "relevance_norm"]

NORMS = ("l1", "l2", "l1_mean", "l2_mean")
TARGETS = ("true", "predicted", "all")
PENALTY_TARGETS = TARGETS + ("log_prob_sum",)
UNANNOTATED = ("skip", "drr")


def relevance_norm(relevance, norm="l1"):
    """Mean over samples of the per-sample norm of a relevance batch.

    Parameters
    ----------
    relevance : Tensor of shape (n, ...) or dict of such Tensors
        Relevance maps; the modalities of a dict add up.
    norm : {"l1", "l2", "l1_mean", "l2_mean"}
        ``"l1"``: sum of absolute values per sample (sparsity-inducing, as in
        deep relevance regularization). ``"l2"``: sum of squares per sample
        (the squared L2 norm, smooth at zero, as in double backpropagation).
        ``"l1_mean"`` / ``"l2_mean"``: the same divided by the number of
        input features, so that one penalty grid serves spectra, images and
        volumes (``docs/masked_training.rst``, "Penalty scale").

    Returns
    -------
    Tensor
        A scalar.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.penalties import relevance_norm
    >>> relevance_norm(torch.tensor([[1.0, -2.0], [0.0, 3.0]]), "l1")
    tensor(3.)
    """
    return _per_sample_norm(relevance, norm).mean()


def _per_sample_norm(relevance, norm):
    """Per-sample norms of a relevance batch (modalities of a dict add up)."""
    parts, _ = flatten_inputs(relevance)
    total = 0.0
    for r in parts:
        r = r.reshape(r.shape[0], -1)
        if norm in ("l1", "l2", "l1_mean", "l2_mean"):
            total = total + _feature_norm(r, norm)
        else:
            raise ValueError(
                f"The 'norm' parameter must be one of {list(NORMS)}. Got {norm!r} instead."
            )
    return total


class RelevancePenalty(BaseEstimator):
    """Norm of an explainer's relevance outside the allowed region.

    Called on a training batch, it returns
    ``mean_i norm(relevance_i * (1 - mask_i))``, differentiable with respect
    to the module's weights (double backpropagation). Without masks this is
    deep relevance regularization, ``mean_i norm(relevance_i)``. Give it to an
    estimator as ``relevance_term`` (the estimator's ``relevance_penalty``
    is the weight of the term); it is also the estimator's default term.

    Parameters
    ----------
    explainer : str, explainer object or None, default=None
        Any differentiable explainer of :mod:`sklearn_relevance.explainers`.
        ``None``: the estimator's ``relevance_explainer`` (with its
        ``relevance_explainer__*`` parameters), ``"gradient_x_input"`` when
        used alone. Explainers with an ``explain_from_output`` method
        (:class:`~sklearn_relevance.explainers.Gradient`,
        :class:`~sklearn_relevance.explainers.GradientXInput`) reuse the
        training forward pass; the others (integrated gradients, Grad-CAM,
        LRP, ...) run their own passes.
    norm : {"l1", "l2"} or None, default=None
        See :func:`relevance_norm`; ``None``: the estimator's
        ``relevance_norm`` (``"l1"`` alone).
    target : {"true", "predicted", "all", "log_prob_sum"} or None, default=None
        Output explained: the true class, the predicted class, every output
        (their norms add up; for a regressor, the relevance of the sum of
        outputs), or the sum of the log-probabilities of all classes (Ross
        et al. 2017; classifiers only). ``None``: the estimator's
        ``relevance_target`` (``"true"`` alone).
    unannotated : {"skip", "drr"}, default="skip"
        What a sample whose mask is all NaN (no annotation) gets: ``"skip"``
        no penalty (only the plain loss), ``"drr"`` the unmasked penalty
        (all its relevance is penalised, as with a mask of zeros). The mean
        runs over all samples of the batch in both cases.

    See Also
    --------
    RightReasonsPenalty : Ross et al.'s choice of explainer, norm and target.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.penalties import RelevancePenalty
    >>> module = torch.nn.Linear(4, 2)
    >>> X = torch.randn(8, 4, requires_grad=True)
    >>> out = module(X)
    >>> mask = torch.zeros(8, 4)
    >>> mask[:, 0] = 1  # relevance allowed on the first feature only
    >>> term = RelevancePenalty()(module, X, out, torch.zeros(8, dtype=torch.long),
    ...                           mask=mask)
    >>> term.backward()  # reaches the weights by double backpropagation
    >>> module.weight.grad is not None
    True
    """

    _parameter_constraints = {
        "explainer": [None, str, HasMethods(["explain"])],
        "norm": [None, StrOptions(set(NORMS))],
        "target": [None, StrOptions(set(PENALTY_TARGETS))],
        "unannotated": [StrOptions(set(UNANNOTATED))],
    }

    _defaults = {"explainer": "gradient_x_input", "norm": "l1", "target": "true"}

    def __init__(self, explainer=None, norm=None, target=None, *, unannotated="skip"):
        self.explainer = explainer
        self.norm = norm
        self.target = target
        self.unannotated = unannotated

    # ---------------------------------------------------------- resolution
    def resolved(self, **defaults):
        """A copy with ``None`` parameters filled and the explainer resolved.

        Parameters
        ----------
        **defaults
            ``explainer``, ``norm``, ``target`` used where this penalty's
            parameter is ``None`` (the estimator passes its own).

        Returns
        -------
        RelevancePenalty
            A checked copy, ready to be called on batches.
        """
        self._validate_params()
        out = clone(self)
        for key, fallback in self._defaults.items():
            if getattr(out, key) is None:
                setattr(out, key, defaults.get(key) or fallback)
        explainer = get_explainer(out.explainer, param_name="explainer")
        if explainer is out.explainer and hasattr(explainer, "get_params"):
            explainer = clone(explainer)
        out.explainer = explainer
        out._validate_params()
        out._ready = True
        return out

    @property
    def differentiable(self):
        """Whether the penalty's explainer can be trained on."""
        exp = self.explainer if self.explainer is not None else self._defaults["explainer"]
        exp = get_explainer(exp, param_name="explainer")
        return bool(getattr(exp, "differentiable", True))

    # ---------------------------------------------------------------- call
    def __call__(self, module, X, y_pred, y_true=None, *, mask=None, create_graph=True,
                 regression=False):
        """Return the penalty term for a batch.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor or dict of Tensors
            The batch, requiring grad, that produced ``y_pred``.
        y_pred : Tensor
            The module's output on ``X`` (the training forward pass).
        y_true : Tensor, optional
            Class indices (``target="true"``).
        mask : Tensor or dict of Tensors, optional
            Per-sample masks broadcastable to the relevance (1: allowed,
            0: penalised; an all-NaN mask marks an unannotated sample).
        create_graph : bool, default=True
            Keep the graph for the backward pass through the penalty.
        regression : bool, default=False
            Outputs are regression targets: every output is explained.

        Returns
        -------
        Tensor
            A scalar.
        """
        pen = self if getattr(self, "_ready", False) else self.resolved()
        if mask is not None:
            _check_mask_values(mask)
        targets = pen._targets(y_pred, y_true, regression)
        total = 0.0
        for i, target in enumerate(targets):
            retain = create_graph or i < len(targets) - 1
            rel = pen.relevance(module, X, y_pred, target, create_graph=create_graph,
                                retain_graph=retain)
            total = total + pen.reduce(rel, mask)
        return total

    def _targets(self, y_pred, y_true, regression):
        fast = hasattr(self.explainer, "explain_from_output")
        k = _n_outputs(y_pred)
        if self.target == "log_prob_sum":
            if regression:
                raise ValueError(
                    "The 'target' parameter of RelevancePenalty must not be "
                    "'log_prob_sum' for a regressor (it has no probabilities)."
                )
            return ["log_prob_sum"]
        if k == 1:
            return [None]
        if regression:
            return ["sum"] if fast else list(range(k))
        if self.target == "true":
            return [torch.as_tensor(y_true, device=_first(y_pred).device).long()]
        if self.target == "predicted":
            return [_first(y_pred).detach().argmax(1)]
        return list(range(k))

    def relevance(self, module, X, y_pred, target, *, create_graph=True,
                  retain_graph=True):
        """Relevance of one target for the batch (override to change the method).

        Explainers with ``explain_from_output`` reuse the training forward
        pass ``y_pred``; the others explain ``module`` anew (BatchNorm
        statistics frozen).

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor or dict of Tensors
        y_pred : Tensor
        target : None, int, LongTensor, "sum" or "log_prob_sum"
        create_graph, retain_graph : bool

        Returns
        -------
        Tensor or dict of Tensors of X's structure
        """
        explainer = self.explainer
        if hasattr(explainer, "explain_from_output"):
            out = y_pred
            if target == "log_prob_sum":
                out, target = torch.log_softmax(_first(y_pred), 1), "sum"
            return explainer.explain_from_output(
                X, out, target, create_graph=create_graph, retain_graph=retain_graph
            )
        if target == "log_prob_sum":
            module, target = _LogProbSum(module), None
        with frozen_batchnorm_stats(module):
            return explainer.explain(module, X, target, create_graph=create_graph)

    def reduce(self, relevance, mask=None):
        """Mean over samples of the norm of the relevance outside the masks.

        Parameters
        ----------
        relevance : Tensor or dict of Tensors
        mask : None, Tensor or dict of Tensors
            See :meth:`__call__`; a modality without a mask is penalised
            everywhere.

        Returns
        -------
        Tensor
            A scalar.
        """
        if mask is None:
            return relevance_norm(relevance, self.norm)
        if isinstance(relevance, Mapping):
            rels = relevance
            masks = mask if isinstance(mask, Mapping) else {}
        else:
            rels, masks = {None: relevance}, {None: mask}
        total = 0.0
        for key, r in rels.items():
            m = masks.get(key)
            if m is None:
                total = total + _per_sample_norm(r, self.norm)
                continue
            # an unannotated (all-NaN) mask reads as "all allowed" (skip:
            # no penalty) or "nothing allowed" (drr: the unmasked penalty)
            allowed = torch.nan_to_num(m, nan=1.0 if self.unannotated == "skip" else 0.0)
            total = total + _per_sample_norm(r * (1 - allowed.to(r.dtype)), self.norm)
        return total.mean()


class RightReasonsPenalty(RelevancePenalty):
    """"Right for the right reasons" (Ross, Hughes & Doshi-Velez 2017).

    The squared input gradient of the summed log-probabilities of all
    classes, outside the expert's masks: ``sum_d ((1 - mask_d) *
    d/dx_d sum_k log p_k)^2``. A :class:`RelevancePenalty` with Ross et al.'s
    explainer, norm and target as defaults; any differentiable explainer can
    replace the gradient (Grad-CAM gives RRR-G, Schramowski et al. 2020).

    Parameters
    ----------
    explainer : str or explainer object, default="gradient"
    norm : {"l1", "l2"}, default="l2"
    target : {"log_prob_sum", "true", "predicted", "all"}, default="log_prob_sum"
    unannotated : {"skip", "drr"}, default="skip"
        See :class:`RelevancePenalty`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance import RelevanceNetClassifier
    >>> from sklearn_relevance.penalties import RightReasonsPenalty
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> masks = np.zeros_like(X)
    >>> masks[:, :3] = 1  # the evidence lies in the first three features
    >>> clf = RelevanceNetClassifier(relevance_penalty=1.0,
    ...                              relevance_term=RightReasonsPenalty(),
    ...                              max_epochs=2, random_state=0)
    >>> clf.fit(X, y, relevance_mask=masks).predict(X[:2]).shape
    (2,)
    """

    def __init__(self, explainer="gradient", norm="l2", target="log_prob_sum", *,
                 unannotated="skip"):
        super().__init__(explainer, norm, target, unannotated=unannotated)


class _LogProbSum(torch.nn.Module):
    """``sum_k log_softmax(module(x))_k``: one output per sample."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return torch.log_softmax(_first(self.module(*args, **kwargs)), 1).sum(1)


def _check_mask_values(mask):
    """Masks hold weights in [0, 1], NaN for an unannotated sample."""
    for m in (mask.values() if isinstance(mask, Mapping) else [mask]):
        m = torch.as_tensor(m)
        if not m.is_floating_point():
            m = m.float()
        bad = (m < 0) | (m > 1)
        if bool(bad.any()):
            values = m[~torch.isnan(m)]
            raise ValueError(
                "The 'mask' parameter of RelevancePenalty must hold values in [0, 1] "
                "(1 where relevance is allowed, 0 where it is penalised, NaN for a "
                f"sample without annotation). Got values in [{float(values.min()):g}, "
                f"{float(values.max()):g}] instead."
            )


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _n_outputs(out):
    out = _first(out)
    return 1 if out.ndim == 1 else int(out[0].numel())
