"""Choose a default network from the shape of the training input."""

from __future__ import annotations

from collections.abc import Mapping


def default_module(input_shape):
    """Return the default network class for one sample's shape.

    ``(f,)`` -> :class:`MLP`, ``(c, L)`` -> :class:`SpectrumCNN`,
    ``(c, H, W)`` and ``(c, D, H, W)`` -> :class:`ImageCNN`, a dict of shapes
    -> :class:`FusionNet`.
    """
    if isinstance(input_shape, Mapping):
        from .fusion import FusionNet

        return FusionNet
    ndim = len(input_shape)
    if ndim == 1:
        from .mlp import MLP

        return MLP
    if ndim == 2:
        from .spectrum import SpectrumCNN

        return SpectrumCNN
    if ndim in (3, 4):
        from .image import ImageCNN

        return ImageCNN
    raise ValueError(
        "No default network for samples of shape "
        f"{tuple(input_shape)}: expected (features,), (channels, length), "
        "(channels, H, W) or (channels, D, H, W). Pass a module explicitly."
    )
