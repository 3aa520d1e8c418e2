"""Guided backpropagation (Springenberg et al. 2015)."""

from __future__ import annotations

import torch
from torch import nn

from .._module_access import hook_acts, hook_owner
from .._tensors import input_gradient
from ._base import BaseExplainer

__all__ = ["GuidedBackprop"]


class _GuidedGate(torch.autograd.Function):
    """Identity forward; backward passes only the positive part of the gradient.

    The backward is written with differentiable operations, so with
    ``create_graph=True`` the guided gradient can itself be differentiated
    (double backpropagation).
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _gate_hook(owner):
    """A forward hook gating ReLU outputs in the thread ``owner`` only."""

    def hook(module, inputs, output):
        if not hook_acts(owner):
            return None
        return _GuidedGate.apply(output)

    return hook


class GuidedBackprop(BaseExplainer):
    """Guided backpropagation: gradients with negative parts cut at every ReLU.

    Every ``torch.nn.ReLU`` module of the network passes back only positive
    gradients where its input was positive (``relu(grad) * (x > 0)``), as
    captum's ``GuidedBackprop``; functional ``torch.relu`` calls inside a
    ``forward`` are not modified (as in captum). Hooks are placed for the
    duration of one call, act only in the calling thread, and are removed
    afterwards.

    Notes
    -----
    Cost: one forward and one backward pass. Differentiable: with
    ``create_graph=True`` the result reaches the module's weights (the ReLU
    masks are piecewise constant). Guided backpropagation is largely
    insensitive to the upper layers' weights (Adebayo et al. 2018, "Sanity
    checks for saliency maps"): prefer it for sharp pictures, not for
    judging what a model uses.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import GuidedBackprop
    >>> module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(),
    ...                              torch.nn.Linear(2, 1))
    >>> GuidedBackprop().explain(module, torch.randn(3, 2)).shape
    torch.Size([3, 2])
    """

    uses_layers = False

    def __init__(self):
        pass

    def _explain(self, module, X, target, *, create_graph):
        hook = _gate_hook(hook_owner(module))
        handles = [
            m.register_forward_hook(hook)
            for m in module.modules() if isinstance(m, nn.ReLU)
        ]
        try:
            return input_gradient(module, X, target, create_graph=create_graph)
        finally:
            for handle in handles:
                handle.remove()
