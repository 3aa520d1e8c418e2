"""1D residual CNN for spectra (mass spectra, signals)."""

from __future__ import annotations

from torch import nn

from ._utils import as_shape, mlp_layers, output_numel

__all__ = ["SpectrumCNN", "ResidualBlock1d"]


class ResidualBlock1d(nn.Module):
    """Two 3-wide convolutions with BatchNorm and a (projected) skip connection.

    ``forward`` returns ``relu(main(x) + shortcut(x))``; the addition is an
    explicit child (``self.add``) so LRP can split relevance between the two
    branches in proportion to their contributions.
    """

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Conv1d(c_out, c_out, 3, padding=1),
            nn.BatchNorm1d(c_out),
        )
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride), nn.BatchNorm1d(c_out)
            )
        else:
            self.shortcut = nn.Identity()
        self.add = Add()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.add(self.main(x), self.shortcut(x)))


class Add(nn.Module):
    """Elementwise sum of two tensors, as a module LRP rules can attach to."""

    def forward(self, a, b):
        return a + b


class SpectrumCNN(nn.Module):
    """Residual 1D CNN for spectra.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, length)`` of one spectrum (or ``(length,)``).
    n_outputs : int
    channels : tuple of int, default=(16, 32)
        Filters of the residual blocks.
    strides : tuple of int, default=(5, 3)
        Stride of each block.
    hidden_units : int, default=64
    dropout : float, default=0.3

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import SpectrumCNN
    >>> SpectrumCNN((1, 300), 2)(torch.zeros(4, 1, 300)).shape
    torch.Size([4, 2])
    """

    def __init__(self, input_shape, n_outputs, *, channels=(16, 32), strides=(5, 3),
                 hidden_units=64, dropout=0.3):
        super().__init__()
        shape = as_shape(input_shape)
        if len(shape) == 1:
            shape = (1, shape[0])
        if len(shape) != 2:
            raise ValueError(
                "The 'input_shape' parameter of SpectrumCNN must be (channels, length). "
                f"Got {shape} instead."
            )
        self.input_shape = shape
        self.n_outputs = int(n_outputs)
        blocks, c_in = [], shape[0]
        for c_out, stride in zip(channels, strides):
            blocks.append(ResidualBlock1d(c_in, int(c_out), stride=int(stride)))
            c_in = int(c_out)
        self.features = nn.Sequential(*blocks)
        n_flat = output_numel(self.features, shape)
        self.classifier = nn.Sequential(
            nn.Flatten(), *mlp_layers(n_flat, (hidden_units,), self.n_outputs, dropout)
        )

    def forward(self, X):
        if X.ndim == 2:
            X = X[:, None, :]
        return self.classifier(self.features(X))
