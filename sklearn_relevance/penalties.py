"""Training penalties built on an explainer (deep relevance regularization).

The penalty of deep relevance regularization (DRR) is the norm of the
network's own relevance for the training batch, added to the loss and
minimised by double backpropagation: the relevance is computed with
``create_graph=True`` so that its norm can be differentiated with respect to
the weights. A network trained this way relies on few input features, which
makes it hold up on data from a laboratory it never saw and makes its
relevance maps sparser.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .explainers import get_explainer
from .explainers._base import (
    flatten_inputs,
    frozen_batchnorm_stats,
    gradient_wrt_inputs,
    select_output,
)
from .explainers.gradient import Gradient, GradientXInput

__all__ = ["RelevancePenalty", "relevance_norm"]

NORMS = ("l1", "l2")
TARGETS = ("true", "predicted", "all")


def relevance_norm(relevance, norm="l1"):
    """Mean over samples of the per-sample norm of a relevance batch.

    Parameters
    ----------
    relevance : Tensor of shape (n, ...) or dict of such Tensors
        Relevance maps; the modalities of a dict add up.
    norm : {"l1", "l2"}
        ``"l1"``: sum of absolute values per sample (sparsity-inducing, as in
        deep relevance regularization). ``"l2"``: sum of squares per sample
        (the squared L2 norm, smooth at zero, as in double backpropagation).

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
    parts, _ = flatten_inputs(relevance)
    total = 0.0
    for r in parts:
        r = r.reshape(r.shape[0], -1)
        if norm == "l1":
            total = total + r.abs().sum(1)
        elif norm == "l2":
            total = total + r.pow(2).sum(1)
        else:
            raise ValueError(
                f"The 'norm' parameter must be one of {list(NORMS)}. Got {norm!r} instead."
            )
    return total.mean()


class RelevancePenalty:
    """Norm of an explainer's relevance, differentiable with respect to weights.

    Parameters
    ----------
    explainer : str or explainer object, default="gradient_x_input"
        Any differentiable explainer of :mod:`sklearn_relevance.explainers`.
    norm : {"l1", "l2"}, default="l1"
        See :func:`relevance_norm`.
    target : {"true", "predicted", "all"}, default="true"
        Output explained: the true class, the predicted class, or every
        output (the norms of all classes add up for a classifier; for a
        regressor, the relevance of the sum of outputs).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.penalties import RelevancePenalty
    >>> module = torch.nn.Linear(4, 2)
    >>> X = torch.randn(8, 4, requires_grad=True)
    >>> out = module(X)
    >>> term = RelevancePenalty()(module, X, out, torch.zeros(8, dtype=torch.long))
    >>> term.backward()  # reaches the weights by double backpropagation
    >>> module.weight.grad is not None
    True
    """

    def __init__(self, explainer="gradient_x_input", norm="l1", target="true"):
        self.explainer = explainer
        self.norm = norm
        self.target = target

    def __call__(self, module, X, y_pred, y_true=None, *, create_graph=True,
                 regression=False):
        """Return the penalty term for a batch.

        Parameters
        ----------
        module : torch.nn.Module
        X : Tensor or dict of Tensors
            The batch; for the fast path it must require grad and be the
            input that produced ``y_pred``.
        y_pred : Tensor
            The module's output on ``X``. Gradient-based explainers reuse it
            instead of running a second forward pass.
        y_true : Tensor, optional
            Class indices (``target="true"``).
        create_graph : bool, default=True
            Keep the graph for the backward pass through the penalty.
        regression : bool, default=False
            Outputs are regression targets: every output is explained.
        """
        explainer = get_explainer(self.explainer, param_name="explainer")
        fast = type(explainer) in (Gradient, GradientXInput)
        k = _n_outputs(y_pred)
        if k == 1:
            targets = [None]
        elif regression:
            targets = ["sum"] if fast else list(range(k))
        elif self.target == "true":
            targets = [torch.as_tensor(y_true, device=_first(y_pred).device).long()]
        elif self.target == "predicted":
            targets = [_first(y_pred).detach().argmax(1)]
        elif self.target == "all":
            targets = list(range(k))
        else:
            raise ValueError(
                f"The 'target' parameter must be one of {list(TARGETS)}. "
                f"Got {self.target!r} instead."
            )
        total = 0.0
        for i, target in enumerate(targets):
            retain = create_graph or i < len(targets) - 1
            if fast:
                rel = _gradient_relevance(
                    explainer, X, y_pred, target, create_graph=create_graph,
                    retain_graph=retain, module=module,
                )
            else:
                with frozen_batchnorm_stats(module):
                    rel = explainer.explain(module, X, target, create_graph=create_graph)
            total = total + relevance_norm(rel, self.norm)
        return total


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _n_outputs(out):
    out = _first(out)
    return 1 if out.ndim == 1 else int(out[0].numel())


def _gradient_relevance(explainer, X, y_pred, target, *, create_graph, retain_graph,
                        module=None):
    """Gradient (x input) relevance from an existing forward pass."""
    tensors, rebuild = flatten_inputs(X)
    out = _first(y_pred)
    score = out.sum() if target == "sum" else select_output(out, target).sum()
    # raises when the output does not depend on X (the penalty would be 0)
    grads = gradient_wrt_inputs(score, tensors, module, create_graph=create_graph,
                                retain_graph=retain_graph)
    if isinstance(explainer, GradientXInput):
        grads = [g * t for g, t in zip(grads, tensors)]
    elif getattr(explainer, "absolute", False):
        grads = [g.abs() for g in grads]
    return rebuild(grads) if isinstance(X, Mapping) else grads[0]
