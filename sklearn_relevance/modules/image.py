"""Convolutional networks for 2D and 3D images (CT slices, MRI volumes)."""

from __future__ import annotations


from torch import nn

from ._utils import BATCHNORM, CONV, MAXPOOL, as_shape, mlp_layers, output_numel

__all__ = ["ImageCNN"]


class ImageCNN(nn.Module):
    """Blocks of convolution, BatchNorm, ReLU and max pooling, then a dense head.

    The 3D default follows the network of the MRI (Alzheimer's) LRP study:
    four blocks of ``Conv3d -> BatchNorm3d -> ReLU -> MaxPool3d`` with 8, 16,
    32 and 64 filters, dropout, and two dense layers. The same layout serves
    2D images (and 1D signals). Blocks whose pooling would shrink an axis
    below one voxel are built without pooling, so small inputs (28 x 28
    MedMNIST) work as they are.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, *spatial)`` of one sample, with 1 to 3 spatial axes.
    n_outputs : int
        Number of outputs.
    channels : tuple of int, default=(8, 16, 32, 64)
        Filters per block.
    kernel_size : int, default=3
    batchnorm : bool, default=True
    hidden_units : int, default=128
        Width of the first dense layer.
    dropout : float, default=0.3

    Attributes
    ----------
    features : nn.Sequential
        The convolutional blocks (``features[-k]`` are valid Grad-CAM layers).
    classifier : nn.Sequential
        ``Flatten, Dropout, Linear, ReLU, Dropout, Linear``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules import ImageCNN
    >>> ImageCNN((1, 28, 28), 2)(torch.zeros(5, 1, 28, 28)).shape
    torch.Size([5, 2])
    >>> ImageCNN((1, 16, 16, 16), 2)(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2, 2])
    """

    def __init__(self, input_shape, n_outputs, *, channels=(8, 16, 32, 64),
                 kernel_size=3, batchnorm=True, hidden_units=128, dropout=0.3):
        super().__init__()
        shape = as_shape(input_shape)
        if not 2 <= len(shape) <= 4:
            raise ValueError(
                "The 'input_shape' parameter of ImageCNN must be (channels, *spatial) "
                f"with 1 to 3 spatial axes. Got {shape} instead."
            )
        self.input_shape = shape
        self.n_outputs = int(n_outputs)
        dim = len(shape) - 1
        size = min(shape[1:])
        layers = []
        c_in = shape[0]
        for c_out in channels:
            layers.append(CONV[dim](c_in, int(c_out), kernel_size, padding=kernel_size // 2))
            if batchnorm:
                layers.append(BATCHNORM[dim](int(c_out)))
            layers.append(nn.ReLU())
            if size >= 2:
                layers.append(MAXPOOL[dim](2))
                size //= 2
            c_in = int(c_out)
        self.features = nn.Sequential(*layers)
        n_flat = output_numel(self.features, shape)
        head = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head += mlp_layers(n_flat, (hidden_units,), self.n_outputs, dropout)
        self.classifier = nn.Sequential(*head)

    def forward(self, X):
        return self.classifier(self.features(X))

    @property
    def n_spatial_dims(self):
        """Number of spatial axes of the input."""
        return len(self.input_shape) - 1


