"""A uniform view of a layer for the rules: its effective weight and bias
(after canonizers) and a functional forward taking modified parameters."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["LayerView", "DENSE", "CONV", "WEIGHTED"]

DENSE = (nn.Linear,)
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WEIGHTED = DENSE + CONV


def batchnorm_affine(bn, x):
    """Per-channel ``(scale, shift)`` such that ``bn(x) == x * scale + shift``.

    Uses the running statistics in eval mode and the (detached) batch
    statistics of ``x`` in training mode, as the BatchNorm's forward does.
    """
    use_batch = bn.training or bn.running_mean is None
    if use_batch:
        dims = [d for d in range(x.ndim) if d != 1]
        xd = x.detach()
        mean = xd.mean(dim=dims)
        var = xd.var(dim=dims, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _channel(v, ndim):
    return v.reshape(1, -1, *([1] * (ndim - 2)))


class LayerView:
    """What a rule sees of one call of a layer.

    Attributes
    ----------
    module : nn.Module
    inputs : tuple of Tensor
        The call's positional inputs.
    output : Tensor
        The call's output.
    weight, bias : Tensor or None
        Effective parameters (merged with a following BatchNorm when a
        canonizer is active; per-channel scale and shift for BatchNorm).
        ``weight`` is None for parameter-free linear layers (pooling, Add).
    output_is_z : bool
        Whether ``output`` is exactly ``forward(inputs, weight, bias)``
        with an autograd graph a rule may differentiate.
    """

    def __init__(self, module, inputs, output, params=None):
        self.module = module
        self.inputs = inputs
        self.output = output
        self.output_is_z = True
        if params is not None:
            self.weight, self.bias = params
        elif isinstance(module, _BatchNorm):
            self.weight, self.bias = batchnorm_affine(module, inputs[0])
            self.output_is_z = not (module.training or module.running_mean is None)
        elif isinstance(module, WEIGHTED):
            self.weight, self.bias = module.weight, module.bias
        else:
            self.weight = self.bias = None

    @property
    def x(self):
        """The single input of a weighted layer."""
        return self.inputs[0]

    def forward(self, x, weight, bias):
        """The layer applied to ``x`` with the given weight and bias."""
        module = self.module
        if isinstance(module, nn.Linear):
            return F.linear(x, weight, bias)
        if isinstance(module, CONV):
            return module._conv_forward(x, weight, bias)
        if isinstance(module, _BatchNorm):
            out = x * _channel(weight, x.ndim)
            return out if bias is None else out + _channel(bias, x.ndim)
        raise TypeError(f"{type(module).__name__} has no weight to modify.")

    def z(self):
        """The layer's own pre-activation (its output, recomputed if needed)."""
        if self.output_is_z:
            return self.output
        if self.weight is None:
            return self.module.forward(*self.inputs)
        return self.forward(self.x, self.weight, self.bias)
