r"""LRP rules: how one layer hands its output relevance to its input.

A rule is a small scikit-learn-style object (parameters in ``__init__``)
with one method, :meth:`Rule.terms`, returning *modified forwards* of the
layer: ``[(coef, z, stabilizer), ...]``. The engine (:class:`LRP`) turns them
into relevance with autograd: for a layer ``y = f(x)`` with output relevance
``R``, the input receives

.. math:: R_i = x_i \sum_k \mathrm{coef}_k \sum_j
          \frac{\partial z_{k,j}}{\partial x_i} \frac{R_j}{z_{k,j} \pm \varepsilon}

which is the rule's formula when ``z_k`` is the layer with modified weights.
Rules that give relevance independent of ``x`` (:class:`Flat`,
:class:`WSquare`, the bound terms of :class:`ZBox`) compute ``z`` from
constant "input leaves" that the engine adds to the relevance of ``X``; they
apply to layers that receive the explained input only.
"""

from __future__ import annotations

from torch import nn

from ..._validation import check_real
from ._input_rules import Flat, WSquare, ZBox
from ._rule_base import (
    Rule,
    _BiasOption,
    _check_bool,
    _clamped,
    _split,
    _Stabilized,
)

__all__ = [
    "Rule",
    "Epsilon",
    "ZPlus",
    "AlphaBeta",
    "Gamma",
    "Flat",
    "WSquare",
    "ZBox",
    "Pass",
    "Norm",
]

#: Layers whose ordinary gradient already passes relevance unchanged in the
#: gradient x activation form (``y = x * f'(x)``): positively homogeneous
#: activations, dropout, reshapes, and max pooling (winner takes all).
HOMOGENEOUS = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)


class Epsilon(Rule):
    r"""LRP-epsilon: :math:`R_i = \sum_j \frac{x_i w_{ij}}{z_j + \varepsilon\,
    \mathrm{sign}(z_j)} R_j` with :math:`z_j = \sum_i x_i w_{ij} + b_j`.

    The bias takes its share of relevance (so relevance is conserved only
    up to the bias and ``epsilon`` terms); ``epsilon`` absorbs the
    relevance of weak, contradictory activations. ``epsilon -> 0`` is LRP-0
    (gradient x input on ReLU networks). Applies to any linear layer,
    parameter-free ones (pooling, Add) included.

    Parameters
    ----------
    epsilon : float, default=1e-6
        Stabiliser added to the denominators (> 0).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, Epsilon
    >>> layer = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, 3.0]])), layer.bias.zero_()
    >>> LRP(composite={torch.nn.Linear: Epsilon(1e-9)}).explain(layer, torch.ones(1, 2))
    tensor([[1., 3.]])
    """

    needs_weight = False

    def __init__(self, epsilon=1e-6):
        self.epsilon = epsilon

    def _validate(self):
        check_real(self.epsilon, "epsilon", "Epsilon", low=0, closed="neither")

    def terms(self, layer, session):
        return [(1.0, layer.z(), self.epsilon)]


class Norm(_Stabilized):
    r"""Proportional split for parameter-free linear layers (average
    pooling, the residual ``Add``):
    :math:`R_i = \frac{z_{ij}}{z_j} R_j`, the epsilon rule with a tiny
    stabiliser.

    Parameters
    ----------
    stabilizer : float, default=1e-9

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, Norm
    >>> pool = torch.nn.Sequential(torch.nn.AvgPool1d(2), torch.nn.Flatten())
    >>> LRP(composite={torch.nn.AvgPool1d: Norm()}).explain(
    ...     pool, torch.tensor([[[1.0, 3.0]]]))
    tensor([[[0.5000, 1.5000]]])
    """

    needs_weight = False

    def terms(self, layer, session):
        return [(1.0, layer.z(), self.stabilizer)]


class ZPlus(_BiasOption):
    r"""LRP-z+ (Montavon et al. 2017): only positive contributions,
    :math:`R_i = \sum_j \frac{(x_i w_{ij})^+}{\sum_{i'} (x_{i'} w_{i'j})^+
    [+ b_j^+]} R_j`.

    By default the bias is ignored, so relevance is conserved exactly
    wherever a neuron has a positive contribution. ``bias=True`` adds the
    positive part of the bias to the denominator (it absorbs its share of
    relevance), which is zennit's default ``ZPlus``. Equal to
    ``AlphaBeta(1, 0)`` with the same ``bias``.

    Parameters
    ----------
    stabilizer : float, default=1e-9
    bias : bool, default=False
        Count the bias (its positive part) in the denominator.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, ZPlus
    >>> layer = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, -1.0, 2.0]]))
    >>> LRP(composite={torch.nn.Linear: ZPlus()}).explain(layer, torch.ones(1, 3))
    tensor([[0.6667, 0.0000, 1.3333]])
    """

    def terms(self, layer, session):
        w = layer.weight
        bias = self._bias(layer, lambda b: b.clamp(min=0))
        z = _split(layer, layer.x, w.clamp(min=0), lambda: w.clamp(max=0), bias)
        return [(1.0, z, self.stabilizer)]


class AlphaBeta(_BiasOption):
    r"""LRP-alpha-beta (Bach et al. 2015): positive and negative
    contributions weighted separately,

    .. math:: R_i = \sum_j \Big(\alpha \frac{(x_i w_{ij})^+}{\sum_{i'}
              (x_{i'} w_{i'j})^+} - \beta \frac{(x_i w_{ij})^-}{\sum_{i'}
              (x_{i'} w_{i'j})^-}\Big) R_j, \qquad \alpha - \beta = 1.

    By default biases are ignored. ``bias=True`` adds the bias's positive
    part to the positive denominator and its negative part to the negative
    one (zennit's default ``AlphaBeta``). ``AlphaBeta(1, 0)`` is the rule of
    the MRI (Alzheimer's) study; ``AlphaBeta(2, 1)`` keeps some negative
    evidence.

    Parameters
    ----------
    alpha : float, default=1.0
    beta : float, default=0.0
    stabilizer : float, default=1e-9
    bias : bool, default=False
        Count the bias in the denominators.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, AlphaBeta
    >>> layer = torch.nn.Linear(3, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, -1.0, 2.0]]))
    >>> LRP(composite={torch.nn.Linear: AlphaBeta(2, 1)}).explain(layer, torch.ones(1, 3))
    tensor([[ 1.3333, -2.0000,  2.6667]])
    """

    def __init__(self, alpha=1.0, beta=0.0, *, stabilizer=1e-9, bias=False):
        self.alpha = alpha
        self.beta = beta
        self.stabilizer = stabilizer
        self.bias = bias

    def _validate(self):
        check_real(self.alpha, "alpha", "AlphaBeta", low=1, closed="left")
        check_real(self.beta, "beta", "AlphaBeta", low=0, closed="left")
        super()._validate()
        if abs(self.alpha - self.beta - 1) > 1e-9:
            raise ValueError(
                "The 'alpha' and 'beta' parameters of AlphaBeta must satisfy "
                f"alpha - beta = 1. Got alpha={self.alpha!r}, beta={self.beta!r} instead."
            )

    def terms(self, layer, session):
        w, x = layer.weight, layer.x
        wp = w.clamp(min=0)
        wn = w.clamp(max=0) if self.beta else (lambda: w.clamp(max=0))
        bp = self._bias(layer, lambda b: b.clamp(min=0))
        out = [(self.alpha, _split(layer, x, wp, wn, bp), self.stabilizer)]
        if self.beta:
            bn = self._bias(layer, lambda b: b.clamp(max=0))
            out.append((-self.beta, _split(layer, x, wn, wp, bn), self.stabilizer))
        return out


class Gamma(_Stabilized):
    r"""LRP-gamma (Montavon et al. 2019): positive weights favoured,
    :math:`R_i = \sum_j \frac{x_i (w_{ij} + \gamma w_{ij}^+)}{\sum_{i'} x_{i'}
    (w_{i'j} + \gamma w_{i'j}^+) + b_j + \gamma b_j^+} R_j`.

    Meant for non-negative inputs (after ReLU). ``gamma=0`` is LRP-0,
    ``gamma -> inf`` tends to z+.

    ``generalized=True`` is the generalised rule (zennit's ``Gamma``), which
    also handles negative inputs and neurons with negative output: a neuron
    with positive output favours the contributions of its own sign,

    .. math:: z_j^+ = \sum_i x_i^+ (w_{ij} + \gamma w_{ij}^+)
              + x_i^- (w_{ij} + \gamma w_{ij}^-) + b_j + \gamma b_j^+,

    and distributes :math:`R_j` in proportion to these terms; a neuron with
    negative output uses :math:`z_j^-` (``+`` and ``-`` swapped, bias
    :math:`b_j + \gamma b_j^-`); a neuron with zero output passes nothing.
    On non-negative inputs and positive outputs both forms agree.

    Parameters
    ----------
    gamma : float, default=0.25
    stabilizer : float, default=1e-9
    generalized : bool, default=False
        Use the generalised rule (above) instead of the original one.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, Gamma
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[2.0, -1.0]]))
    >>> LRP(composite={torch.nn.Linear: Gamma(1.0)}).explain(layer, torch.ones(1, 2))
    tensor([[ 1.3333, -0.3333]])
    """

    def __init__(self, gamma=0.25, *, stabilizer=1e-9, generalized=False):
        self.gamma = gamma
        self.stabilizer = stabilizer
        self.generalized = generalized

    def _validate(self):
        check_real(self.gamma, "gamma", "Gamma", low=0, closed="left")
        super()._validate()
        _check_bool("Gamma", "generalized", self.generalized)

    def terms(self, layer, session):
        w, b, g = layer.weight, layer.bias, self.gamma

        def favour(p, positive):
            return None if p is None else p + g * _clamped(p, positive)

        if not self.generalized:
            z = layer.forward(layer.x, favour(w, True), favour(b, True))
            return [(1.0, z, self.stabilizer)]
        x, out = layer.x, layer.z().detach()
        z_pos = _split(layer, x, favour(w, True), favour(w, False), favour(b, True))
        z_neg = _split(layer, x, favour(w, False), favour(w, True), favour(b, False))
        return [
            ((out > 0).to(out.dtype), z_pos, self.stabilizer),
            ((out < 0).to(out.dtype), z_neg, self.stabilizer),
        ]


class Pass(_Stabilized):
    """Pass relevance through unchanged (activations, dropout, reshapes).

    For positively homogeneous layers (ReLU, LeakyReLU, dropout, flatten,
    max pooling) the ordinary gradient already does so, and nothing is
    changed; other element-wise activations (tanh, sigmoid, GELU, ...) get
    :math:`R_x = x \\cdot R_y / (x \\pm \\varepsilon)`.

    Parameters
    ----------
    stabilizer : float, default=1e-9

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, Pass
    >>> net = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(2, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.fill_(1.0)
    >>> R = LRP(composite="epsilon").explain(net, torch.tensor([[1.0, 2.0]]))
    >>> bool(torch.isclose(R.sum(), torch.tanh(torch.tensor([1.0, 2.0])).sum()))
    True
    """

    needs_weight = False

    def terms(self, layer, session):
        if isinstance(layer.module, HOMOGENEOUS):
            return None
        if len(layer.inputs) != 1 or layer.x.shape != layer.output.shape:
            raise ValueError(
                f"The Pass rule applies to element-wise layers; "
                f"{type(layer.module).__name__} maps shape "
                f"{tuple(layer.inputs[0].shape)} to {tuple(layer.output.shape)}."
            )
        return [(1.0, layer.x, self.stabilizer)]
