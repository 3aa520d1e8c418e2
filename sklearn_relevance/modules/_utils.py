"""Helpers shared by the default networks."""

from __future__ import annotations

import torch
from torch import nn

from .._module_access import eval_mode

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def as_shape(input_shape, name="input_shape"):
    """Validate a per-sample input shape and return it as a tuple of ints."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"The '{name}' parameter must be a tuple of positive ints. "
            f"Got {input_shape!r} instead."
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            f"The '{name}' parameter must be a tuple of positive ints. "
            f"Got {input_shape!r} instead."
        )
    return shape


def mlp_layers(n_in, hidden_units, n_out, dropout=0.0, activation=nn.ReLU):
    """Linear -> activation -> dropout blocks ending in a linear layer."""
    layers = []
    for width in hidden_units:
        layers += [nn.Linear(n_in, int(width)), activation()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n_in = int(width)
    layers.append(nn.Linear(n_in, n_out))
    return layers


def output_numel(module, input_shape):
    """Number of features ``module`` produces per sample for ``input_shape``."""
    with eval_mode(module):
        out = module(torch.zeros(1, *input_shape))
    return int(out[0].numel())
