r"""LRP rules for the input layer only: :class:`Flat`, :class:`WSquare` and
:class:`ZBox`, whose relevance does not scale with the layer's input; they
compute ``z`` from constant "input leaves" that the engine adds to the
relevance of ``X``.

Re-exported by :mod:`sklearn_relevance.explainers.lrp.rules`.
"""

from __future__ import annotations

import numbers

import torch

from ._rule_base import _BiasOption, _Stabilized

__all__ = ["Flat", "WSquare", "ZBox"]


class Flat(_Stabilized):
    r"""Flat rule: relevance spread uniformly over the receptive field,
    :math:`R_i = \sum_j \frac{1}{\sum_{i'} 1} R_j` (sums over the inputs
    connected to ``j``). For the input layer only.

    Parameters
    ----------
    stabilizer : float, default=1e-9

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, Flat
    >>> layer = torch.nn.Linear(4, 1, bias=False)
    >>> LRP(composite={torch.nn.Linear: Flat()}).explain(layer, torch.ones(1, 4)).shape
    torch.Size([1, 4])
    """

    input_layer_only = True

    def terms(self, layer, session):
        ones = session.input_leaf(layer.x, 1.0)
        z = layer.forward(ones, torch.ones_like(layer.weight), None)
        return [(1.0, z, self.stabilizer)]


class WSquare(_BiasOption):
    r"""w^2 rule (Montavon et al. 2017): :math:`R_i = \sum_j
    \frac{w_{ij}^2}{\sum_{i'} w_{i'j}^2 [+ b_j^2]} R_j`, independent of
    the input. For the input layer only.

    ``bias=True`` adds the squared bias to the denominator (zennit's default
    ``WSquare``).

    Parameters
    ----------
    stabilizer : float, default=1e-9
    bias : bool, default=False
        Count the squared bias in the denominator.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, WSquare
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
    >>> LRP(composite={torch.nn.Linear: WSquare()}).explain(layer, torch.ones(1, 2))
    tensor([[0.6000, 2.4000]])
    """

    input_layer_only = True

    def terms(self, layer, session):
        ones = session.input_leaf(layer.x, 1.0)
        bias = self._bias(layer, torch.square)
        z = layer.forward(ones, layer.weight.square(), bias)
        return [(1.0, z, self.stabilizer)]


class ZBox(_Stabilized):
    r"""z^B rule for bounded inputs :math:`l_i \le x_i \le h_i` (Montavon
    et al. 2017), for the input layer:

    .. math:: R_i = \sum_j \frac{x_i w_{ij} - l_i w_{ij}^+ - h_i w_{ij}^-}
              {\sum_{i'} (x_{i'} w_{i'j} - l_{i'} w_{i'j}^+ - h_{i'} w_{i'j}^-)} R_j

    Parameters
    ----------
    low, high : float, array-like or None, default=None
        Bounds of the input, scalars or broadcastable to one sample's shape
        (or ``X``'s). ``None`` takes each sample's minimum / maximum.
    stabilizer : float, default=1e-9

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.lrp import LRP, ZBox
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, -1.0]]))
    >>> lrp = LRP(composite={torch.nn.Linear: ZBox(low=-1.0, high=1.0)})
    >>> lrp.explain(layer, torch.tensor([[0.5, 0.0]]))
    tensor([[0.3000, 0.2000]])
    """

    input_layer_only = True

    def __init__(self, low=None, high=None, *, stabilizer=1e-9):
        self.low = low
        self.high = high
        self.stabilizer = stabilizer

    def _validate(self):
        super()._validate()
        for name in ("low", "high"):
            value = getattr(self, name)
            if value is None or isinstance(value, numbers.Real) and not isinstance(
                value, bool
            ):
                continue
            try:
                arr = torch.as_tensor(value)
            except Exception:
                arr = None
            if arr is None or not (torch.is_floating_point(arr) or arr.dtype in (
                torch.int32, torch.int64
            )):
                raise ValueError(
                    f"The '{name}' parameter of ZBox must be None, a real number or "
                    f"an array of bounds. Got {type(value).__name__} instead."
                )
        if isinstance(self.low, numbers.Real) and isinstance(self.high, numbers.Real):
            if not self.low < self.high:
                raise ValueError(
                    "The 'low' parameter of ZBox must be smaller than 'high'. Got "
                    f"low={self.low!r}, high={self.high!r} instead."
                )

    def terms(self, layer, session):
        w, x = layer.weight, layer.x
        low = session.input_leaf(x, "min" if self.low is None else self.low)
        high = session.input_leaf(x, "max" if self.high is None else self.high)
        z = (
            layer.forward(x, w, None)
            - layer.forward(low, w.clamp(min=0), None)
            - layer.forward(high, w.clamp(max=0), None)
        )
        return [(1.0, z, self.stabilizer)]
