"""Hybrid fusion network for several modalities (images plus tabular data)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .._validation import check_int, check_real
from ._utils import BATCHNORM, CONV, MAXPOOL, as_shape, mlp_layers, output_numel

__all__ = ["FusionNet"]


def _image_encoder(shape, n_features, channels, kernel_size):
    """Conv -> BatchNorm -> ReLU -> MaxPool blocks, projected to ``n_features``."""
    dim = len(shape) - 1
    size = min(shape[1:])
    layers, c_in = [], shape[0]
    for c_out in channels:
        layers += [
            CONV[dim](c_in, int(c_out), kernel_size, padding=kernel_size // 2),
            BATCHNORM[dim](int(c_out)),
            nn.ReLU(),
        ]
        if size >= 2:
            layers.append(MAXPOOL[dim](2))
            size //= 2
        c_in = int(c_out)
    convs = nn.Sequential(*layers)
    n_flat = output_numel(convs, shape)
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(n_flat, n_features))


def _tabular_encoder(n_in, n_features, hidden_units):
    """Small MLP ``n_in -> hidden -> n_features`` (linear output)."""
    return nn.Sequential(nn.Flatten(), *mlp_layers(n_in, hidden_units, n_features))


class FusionNet(nn.Module):
    """Hybrid (intermediate) fusion of several modalities, returning logits.

    Each modality gets its own encoder chosen from its per-sample shape: a
    small CNN for images ``(c, H, W)`` / volumes ``(c, D, H, W)``, and for
    tabular data ``(k,)`` a small MLP (``tabular_encoder="mlp"``) or the raw
    values (``"raw"``). The encoded features are standardised
    (``BatchNorm1d`` without affine parameters, so every post-fusion feature
    has the same scale and gradients with respect to them are comparable
    across modalities), concatenated into the *post-fusion features*, and
    classified by an MLP head.

    Parameters
    ----------
    input_shape : dict of str to tuple of int
        Per-sample shape of each modality, e.g.
        ``{"ct": (1, 28, 28), "clinical": (5,)}``. Keys are the keyword
        arguments of :meth:`forward`; they must be identifiers without ``"."``.
    n_outputs : int
        Number of outputs (classes, or regression targets).
    n_features : int, default=16
        Encoded features per modality (except raw tabular modalities, which
        keep their ``k`` values).
    image_channels : tuple of int, default=(8, 16)
        Filters of the convolutional blocks of image encoders.
    kernel_size : int, default=3
    tabular_encoder : {"mlp", "raw"}, default="mlp"
    tabular_hidden : tuple of int, default=(32,)
        Hidden widths of the tabular MLP encoders.
    head_hidden : tuple of int, default=(32,)
        Hidden widths of the fusion head.
    dropout : float, default=0.1
        Dropout on the post-fusion features and in the head.

    Attributes
    ----------
    encoders : nn.ModuleDict
        One encoder per modality, in the order of ``input_shape``.
    head : nn.Sequential
        Maps post-fusion features (``n_fused`` columns) to logits.
    feature_slices : dict of str to slice
        Columns of each modality in the post-fusion feature vector.
    n_fused : int
        Number of post-fusion features.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.modules.fusion import FusionNet
    >>> net = FusionNet({"ct": (1, 28, 28), "clinical": (5,)}, 2)
    >>> X = {"ct": torch.zeros(4, 1, 28, 28), "clinical": torch.zeros(4, 5)}
    >>> net(**X).shape
    torch.Size([4, 2])
    >>> net.feature_slices
    {'ct': slice(0, 16, None), 'clinical': slice(16, 32, None)}
    >>> net.fuse(**X).shape
    torch.Size([4, 32])
    """

    def __init__(self, input_shape, n_outputs, *, n_features=16, image_channels=(8, 16),
                 kernel_size=3, tabular_encoder="mlp", tabular_hidden=(32,),
                 head_hidden=(32,), dropout=0.1):
        super().__init__()
        if not isinstance(input_shape, Mapping) or not input_shape:
            raise ValueError(
                "The 'input_shape' parameter of FusionNet must be a non-empty dict "
                f"mapping modality names to per-sample shapes. Got {input_shape!r} instead."
            )
        if tabular_encoder not in ("mlp", "raw"):
            raise ValueError(
                "The 'tabular_encoder' parameter of FusionNet must be 'mlp' or 'raw'. "
                f"Got {tabular_encoder!r} instead."
            )
        check_real(dropout, "dropout", "FusionNet", low=0.0, high=1.0, closed="left")
        n_features = check_int(n_features, "n_features", "FusionNet")
        self.n_outputs = check_int(n_outputs, "n_outputs", "FusionNet")
        self.input_shape = {}
        encoders, slices, start = {}, {}, 0
        for name, shape in input_shape.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(
                    "The 'input_shape' parameter of FusionNet must have modality "
                    f"names that are Python identifiers. Got {name!r} instead."
                )
            shape = as_shape(shape, name=f"input_shape[{name!r}]")
            if len(shape) == 1:
                if tabular_encoder == "raw":
                    encoder, width = nn.Flatten(), shape[0]
                else:
                    encoder = _tabular_encoder(shape[0], n_features, tabular_hidden)
                    width = n_features
            elif 3 <= len(shape) <= 4:
                encoder = _image_encoder(shape, n_features, image_channels, kernel_size)
                width = n_features
            else:
                raise ValueError(
                    f"The 'input_shape' parameter of FusionNet has no encoder for "
                    f"modality {name!r} of shape {shape}: expected (features,), "
                    "(channels, H, W) or (channels, D, H, W)."
                )
            self.input_shape[name] = shape
            encoders[name] = nn.Sequential(encoder, nn.BatchNorm1d(width, affine=False))
            slices[name] = slice(start, start + width)
            start += width
        self.encoders = nn.ModuleDict(encoders)
        self.feature_slices = slices
        self.n_fused = start
        head = [nn.Dropout(dropout)] if dropout else []
        self.head = nn.Sequential(
            *head, *mlp_layers(start, head_hidden, self.n_outputs, dropout)
        )

    def _check_keys(self, modalities):
        expected, got = set(self.encoders), set(modalities)
        if expected != got:
            missing, extra = sorted(expected - got), sorted(got - expected)
            raise ValueError(
                f"FusionNet expects the modalities {sorted(expected)}; missing "
                f"{missing}, unexpected {extra}."
            )

    def fuse(self, **modalities):
        """Post-fusion features: the concatenated, standardised encodings.

        Parameters
        ----------
        **modalities : Tensor
            One batch per modality, named as in ``input_shape``.

        Returns
        -------
        Tensor of shape (n_samples, n_fused)
            Modality ``name`` occupies the columns ``feature_slices[name]``.
        """
        self._check_keys(modalities)
        return torch.cat(
            [enc(modalities[name]) for name, enc in self.encoders.items()], dim=1
        )

    def forward(self, **modalities):
        """Logits of shape (n_samples, n_outputs): ``head(fuse(**modalities))``."""
        return self.head(self.fuse(**modalities))
