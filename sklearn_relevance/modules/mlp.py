"""Multilayer perceptron for tabular data and flat spectra."""

from __future__ import annotations

import math

from torch import nn

from ._utils import as_shape, mlp_layers

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected ReLU network returning logits.

    The layers form one ``nn.Sequential`` (``self.layers``) of
    ``Flatten, Linear, ReLU[, Dropout], ..., Linear`` so that every
    explainer, LRP included, can walk it.

    Parameters
    ----------
    input_shape : tuple of int or int
        Shape of one sample (without the batch axis); flattened.
    n_outputs : int
        Number of outputs (classes, or regression targets).
    hidden_units : tuple of int, default=(64, 64)
        Width of each hidden layer.
    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import MLP
    >>> MLP(10, 3)(torch.zeros(4, 10)).shape
    torch.Size([4, 3])
    """

    def __init__(self, input_shape, n_outputs, *, hidden_units=(64, 64), dropout=0.0):
        super().__init__()
        shape = as_shape(input_shape)
        self.input_shape = shape
        self.n_outputs = int(n_outputs)
        n_in = math.prod(shape)
        self.layers = nn.Sequential(
            nn.Flatten(), *mlp_layers(n_in, hidden_units, self.n_outputs, dropout)
        )

    def forward(self, X):
        return self.layers(X)
