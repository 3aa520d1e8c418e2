"""Gradient-family explainers: plain gradient (saliency) and gradient x input.

Integrated gradients and SmoothGrad live here as well (same family).
"""

from __future__ import annotations

from ._base import BaseExplainer, input_gradient, map_inputs

__all__ = ["Gradient", "GradientXInput"]


class Gradient(BaseExplainer):
    """Gradient of the target output with respect to the input (saliency).

    Parameters
    ----------
    absolute : bool, default=False
        Return ``|gradient|`` (captum's ``Saliency`` default, Simonyan et al.
        2014). The signed gradient is the default because it is what a
        training penalty differentiates.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import Gradient
    >>> module = torch.nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad():
    ...     module.weight.copy_(torch.tensor([[1., 2., 3.], [4., 5., 6.]]))
    >>> Gradient().explain(module, torch.ones(1, 3), target=1)
    tensor([[4., 5., 6.]])
    """

    def __init__(self, *, absolute=False):
        self.absolute = absolute

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        if self.absolute:
            grad = map_inputs(lambda g: g.abs(), grad)
        return grad


class GradientXInput(BaseExplainer):
    """Gradient times input (Shrikumar et al. 2016; captum's ``InputXGradient``).

    The default explainer of the deep relevance regularization penalty.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import GradientXInput
    >>> module = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     module.weight.fill_(2.0)
    >>> GradientXInput().explain(module, torch.tensor([[1., 0., -1.]]))
    tensor([[ 2.,  0., -2.]])
    """

    def __init__(self):
        pass

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        return map_inputs(lambda g, x: g * x, grad, X)
