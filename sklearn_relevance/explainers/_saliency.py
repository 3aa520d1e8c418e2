"""Gradient (saliency) and gradient x input: one forward and one backward
pass, or one extra backward pass on an output already computed
(``explain_from_output``, used by the training penalties).

Re-exported by :mod:`sklearn_relevance.explainers.gradient`.
"""

from __future__ import annotations

from .._tensors import (
    flatten_inputs,
    gradient_wrt_inputs,
    input_gradient,
    map_inputs,
    select_output,
)
from ._base import BaseExplainer

__all__ = ["Gradient", "GradientXInput"]


class Gradient(BaseExplainer):
    """Gradient of the target output with respect to the input (saliency).

    Parameters
    ----------
    absolute : bool, default=False
        Return ``|gradient|`` (captum's ``Saliency`` default, Simonyan et al.
        2014). The signed gradient is the default because it is what a
        training penalty differentiates.

    Notes
    -----
    Cost: one forward and one backward pass. Equals captum's
    ``Saliency(abs=absolute)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import Gradient
    >>> module = torch.nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = module.weight.copy_(torch.tensor([[1., 2., 3.], [4., 5., 6.]]))
    >>> Gradient().explain(module, torch.ones(1, 3), target=1)
    tensor([[4., 5., 6.]])
    """

    _parameter_constraints = {"absolute": ["boolean"]}

    uses_layers = False
    shares_module = True

    def __init__(self, *, absolute=False):
        self.absolute = absolute

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        if self.absolute:
            grad = map_inputs(lambda g: g.abs(), grad)
        return grad

    def explain_from_output(self, X, output, target=None, *, create_graph=False,
                            retain_graph=None):
        """The relevance of an output that was already computed from ``X``.

        Training penalties call this with the training forward pass, so the
        relevance costs one extra backward pass and no extra forward.

        Parameters
        ----------
        X : Tensor or dict of Tensors
            The input that produced ``output``; it must require grad.
        output : Tensor or tuple
            The module's output on ``X`` (or any differentiable function of
            it, such as its log-softmax).
        target : None, int, LongTensor or "sum"
            The output explained (see ``explain``); ``"sum"`` explains the
            sum of all outputs.
        create_graph : bool, default=False
            Keep the graph of the relevance (double backpropagation).
        retain_graph : bool, optional
            Keep the graph of ``output`` for later backward passes; defaults
            to ``create_graph``.

        Returns
        -------
        Tensor or dict of Tensors
            Relevance of ``X``'s shape and structure.
        """
        grad = _output_gradient(X, output, target, create_graph=create_graph,
                                retain_graph=retain_graph)
        if self.absolute:
            grad = map_inputs(lambda g: g.abs(), grad)
        return grad


class GradientXInput(BaseExplainer):
    """Gradient times input (Shrikumar et al. 2016; captum's ``InputXGradient``).

    The default explainer of the deep relevance regularization penalty.

    Notes
    -----
    Cost: one forward and one backward pass.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import GradientXInput
    >>> module = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = module.weight.fill_(2.0)
    >>> GradientXInput().explain(module, torch.tensor([[1., 0., -1.]]))
    tensor([[ 2.,  0., -2.]])
    """

    uses_layers = False
    shares_module = True

    def __init__(self):
        pass

    def _explain(self, module, X, target, *, create_graph):
        grad = input_gradient(module, X, target, create_graph=create_graph)
        return map_inputs(lambda g, x: g * x, grad, X)

    def explain_from_output(self, X, output, target=None, *, create_graph=False,
                            retain_graph=None):
        """Gradient x input of an output already computed from ``X``.

        See :meth:`Gradient.explain_from_output`.
        """
        grad = _output_gradient(X, output, target, create_graph=create_graph,
                                retain_graph=retain_graph)
        return map_inputs(lambda g, x: g * x, grad, X)


def _output_gradient(X, output, target, *, create_graph, retain_graph):
    """Gradient of the selected (or summed) ``output`` with respect to ``X``."""
    tensors, rebuild = flatten_inputs(X)
    if not all(t.requires_grad for t in tensors):
        raise ValueError(
            "explain_from_output needs the input X that produced the output, with "
            "requires_grad=True. Got an X that does not require grad."
        )
    out = output[0] if isinstance(output, tuple) else output
    if isinstance(target, str) and target == "sum":
        score = out.sum()
    else:
        score = select_output(out, target).sum()
    # an output not connected to X is an error, never all-zero relevance
    # (as a training penalty it would silently be 0)
    return rebuild(gradient_wrt_inputs(
        score, tensors, None, create_graph=create_graph,
        retain_graph=create_graph if retain_graph is None else retain_graph,
    ))
