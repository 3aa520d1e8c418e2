"""The base class of LRP rules and what the rules share: the stabiliser
parameter, the optional bias, and the split of a layer into the terms of
positive and negative inputs.

Re-exported by :mod:`sklearn_relevance.explainers.lrp.rules`.
"""

from __future__ import annotations

import torch
from sklearn.base import BaseEstimator
from torch import nn

from ..._validation import check_real
from ._layers import CONV

__all__ = ["Rule"]


class Rule(BaseEstimator):
    """Base class of LRP rules.

    Subclasses implement :meth:`terms`. Class attributes:

    ``needs_weight``
        The rule modifies weights, so it applies to Linear, Conv and
        BatchNorm layers only.
    ``input_layer_only``
        The rule's relevance does not scale with the layer's input
        (Flat, WSquare, ZBox), so it applies to layers that receive the
        explained input ``X`` (or a view of it).
    """

    needs_weight = True
    input_layer_only = False

    def _validate(self):
        """Raise ``ValueError`` for invalid parameters."""

    def terms(self, layer, session):
        """Modified forwards of ``layer`` as ``[(coef, z, stabilizer), ...]``.

        Parameters
        ----------
        layer : LayerView
            The call being explained: ``layer.x`` (input), ``layer.output``,
            ``layer.weight`` / ``layer.bias`` (effective parameters) and
            ``layer.forward(x, weight, bias)``.
        session : object
            Gives ``session.input_leaf(x, fill)``: a constant tensor of
            ``x``'s shape whose relevance is added to that of ``X``.

        Returns
        -------
        list of tuple, or None
            ``None`` keeps the layer's ordinary gradient.
        """
        raise NotImplementedError


class _Stabilized(Rule):
    """A rule whose only common parameter is the denominator's stabiliser."""

    def __init__(self, stabilizer=1e-9):
        self.stabilizer = stabilizer

    def _validate(self):
        check_real(self.stabilizer, "stabilizer", type(self).__name__, low=0,
                   closed="neither")


def _check_bool(owner, name, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a bool. "
            f"Got {value!r} instead."
        )


def _split(layer, x, w_for_pos, w_for_neg, bias=None):
    """``f(x+, w_for_pos, bias) + f(x-, w_for_neg)``: the bias (if any) joins
    the positive inputs' term once.

    Inputs without negative entries (after ReLU, most layers) skip the
    second term, which is then a layer applied to zeros without bias: zero,
    and ``x`` equals ``x+`` with the same gradient (clamp passes it at 0).
    ``w_for_neg`` may be a callable, called only when the term is needed."""
    if not bool((x < 0).any()):
        return layer.forward(x, w_for_pos, bias)
    w_for_neg = w_for_neg() if callable(w_for_neg) else w_for_neg
    module = layer.module
    if isinstance(module, nn.Linear) or (isinstance(module, CONV) and module.groups == 1):
        # one layer call on [x+, x-] with [w_pos, w_neg] (input channels /
        # features side by side) is the sum of the two calls, with one
        # backward instead of two (a 1-channel 7^3 stem's backward costs
        # 16 forwards)
        dim = -1 if isinstance(module, nn.Linear) else 1
        return layer.forward(torch.cat([x.clamp(min=0), x.clamp(max=0)], dim),
                             torch.cat([w_for_pos, w_for_neg], 1), bias)
    return layer.forward(x.clamp(min=0), w_for_pos, bias) + layer.forward(
        x.clamp(max=0), w_for_neg, None
    )


def _clamped(p, positive):
    """``p+`` (positive) or ``p-``; None stays None."""
    if p is None:
        return None
    return p.clamp(min=0) if positive else p.clamp(max=0)


class _BiasOption(_Stabilized):
    """A weight-modifying rule that may count the layer's bias (``bias=True``)."""

    def __init__(self, stabilizer=1e-9, *, bias=False):
        self.stabilizer = stabilizer
        self.bias = bias

    def _validate(self):
        super()._validate()
        _check_bool(type(self).__name__, "bias", self.bias)

    def _bias(self, layer, transform):
        if not self.bias or layer.bias is None:
            return None
        return transform(layer.bias)
