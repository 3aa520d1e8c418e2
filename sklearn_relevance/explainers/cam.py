"""Grad-CAM (Selvaraju et al. 2017) for 1D, 2D and 3D convolutional networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import StrOptions
from torch import nn

from .._module_access import frozen_batchnorm_stats, hook_acts, hook_owner
from .._tensors import forward, select_output
from ._base import BaseExplainer

__all__ = ["GradCAM", "find_layer", "spatial_layer", "upsample_to_input"]

_AUTO_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def find_layer(module, layer=None):
    """Return the submodule named ``layer`` (dotted path) or the last convolution.

    Parameters
    ----------
    module : torch.nn.Module
    layer : str, torch.nn.Module or None
        A dotted name as in ``module.named_modules()`` (e.g.
        ``"features.8"``), a submodule, or ``None`` for the last
        ``Conv1d`` / ``Conv2d`` / ``Conv3d`` in registration order.

    Returns
    -------
    name : str
    layer : torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.cam import find_layer
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(2, 2, 3))
    >>> find_layer(net)[0]
    '2'
    """
    named = dict(module.named_modules())
    if layer is None:
        convs = [name for name, m in named.items() if isinstance(m, _CONV)]
        if not convs:
            raise ValueError(
                "The 'layer' parameter of GradCAM is None, so the last convolution is "
                f"used, but {type(module).__name__} has no Conv1d/Conv2d/Conv3d. Name "
                "a layer explicitly."
            )
        return convs[-1], named[convs[-1]]
    if isinstance(layer, nn.Module):
        for name, m in named.items():
            if m is layer:
                return name, m
        raise ValueError(
            f"The 'layer' parameter of GradCAM must be a submodule of the module. "
            f"Got {type(layer).__name__} that is not part of it instead."
        )
    if layer not in named or layer == "":
        close = [n for n in named if n][:10]
        raise ValueError(
            f"The 'layer' parameter of GradCAM must name a submodule of the module "
            f"(e.g. {close}). Got {layer!r} instead."
        )
    return layer, named[layer]


def spatial_layer(module, X):
    """The last convolution (in call order) whose output has spatial extent.

    A probe forward pass on the first two samples records each convolution's
    output shape; the last one called with more than one element along its
    spatial axes is chosen (a DenseNet at 32^3 ends at 1 x 1 x 1, where
    every Grad-CAM map is blank).

    Parameters
    ----------
    module : torch.nn.Module
    X : Tensor of shape (n, c, *spatial)

    Returns
    -------
    name : str
    layer : torch.nn.Module

    Raises
    ------
    ValueError
        When no convolution is called, or none has spatial extent (the
        candidates and their output shapes are named).

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.cam import spatial_layer
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(2, 2, 6))
    >>> spatial_layer(net, torch.zeros(1, 1, 8, 8))[0]
    '0'
    """
    named = [(name, m) for name, m in module.named_modules() if isinstance(m, _CONV)]
    if not named:
        raise ValueError(
            "The 'layer' parameter of GradCAM is None, so the last convolution with "
            f"spatial extent is used, but {type(module).__name__} has no "
            "Conv1d/Conv2d/Conv3d. Name a layer explicitly."
        )
    owner = hook_owner(module)
    calls = []
    handles = []
    for name, m in named:
        def record(_, __, out, name=name, m=m):
            if hook_acts(owner) and torch.is_tensor(out):
                calls.append((name, m, tuple(out.shape[2:])))
        handles.append(m.register_forward_hook(record))
    # two samples (BatchNorm in training mode needs more than one value per
    # channel), running statistics and random state left as they were
    cpu_state = torch.get_rng_state()
    cuda = X.is_cuda and torch.cuda.is_available()
    cuda_state = torch.cuda.get_rng_state(X.device) if cuda else None
    try:
        with torch.no_grad(), frozen_batchnorm_stats(module):
            forward(module, X[:2])
    finally:
        for h in handles:
            h.remove()
        torch.set_rng_state(cpu_state)
        if cuda:
            torch.cuda.set_rng_state(cuda_state, X.device)
    extent = [(name, m) for name, m, shape in calls
              if len(shape) and int(torch.tensor(shape).prod()) > 1]
    if not extent:
        shapes = {name: shape for name, _, shape in calls}
        raise ValueError(
            "The 'layer' parameter of GradCAM is None, but no convolution of "
            f"{type(module).__name__} has an output with spatial extent on inputs of "
            f"shape {tuple(X.shape[1:])} (candidates and their spatial shapes: "
            f"{dict(list(shapes.items())[-8:])}); every Grad-CAM map would be "
            "blank. Name a layer explicitly, or give larger inputs."
        )
    return extent[-1]


def upsample_to_input(attr, X, mode="auto"):
    """Interpolate a ``(n, c, *spatial)`` map to ``X``'s spatial shape and channels.

    ``mode="auto"`` picks linear / bilinear / trilinear from the number of
    spatial axes (``torch.nn.functional.interpolate``, ``align_corners=False``
    as captum's ``LayerAttribution.interpolate``). A one-channel map is
    repeated over ``X``'s channels.

    Parameters
    ----------
    attr : Tensor of shape (n, c, *spatial)
    X : Tensor of shape (n, C, *spatial_in)
    mode : str, default="auto"

    Returns
    -------
    Tensor of ``X``'s shape.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers.cam import upsample_to_input
    >>> upsample_to_input(torch.ones(2, 1, 4, 4), torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """
    spatial = X.ndim - 2
    if mode == "auto":
        mode = _AUTO_MODES[spatial]
    if tuple(attr.shape[2:]) != tuple(X.shape[2:]):
        attr = F.interpolate(attr, size=tuple(X.shape[2:]), mode=mode)
    if attr.shape[1] == 1 and X.shape[1] != 1:
        attr = attr.expand(-1, X.shape[1], *attr.shape[2:]).contiguous()
    return attr


class GradCAM(BaseExplainer):
    """Gradient-weighted class activation mapping, upsampled to the input.

    For the activations ``A`` of ``layer`` (shape ``(n, k, *spatial)``), the
    channel weights are the gradients of the target output averaged over
    the spatial axes; the map is ``sum_k w_k A_k`` (with ``relu``), upsampled
    to the input and repeated over its channels. Equals captum's
    ``LayerGradCam(relu_attributions=relu)`` followed by
    ``LayerAttribution.interpolate``, also with in-place operations after
    the layer (the network continues with a copy of the layer's output).

    Parameters
    ----------
    layer : str, torch.nn.Module or None, default=None
        Dotted name of the layer whose activations are used (e.g.
        ``"features.8"``), or ``None`` for the last convolution (in call
        order) whose output still has spatial extent (more than one element
        along its spatial axes), found by a probe forward pass of one
        sample; a network with none raises naming the candidates.
    relu : bool, default=True
        Keep only positive evidence (the original Grad-CAM).
    interpolate_mode : {"auto", "nearest", "linear", "bilinear", "bicubic", \
"trilinear", "area"}, default="auto"
        Upsampling to the input; ``"auto"`` is linear / bilinear / trilinear
        for 1D / 2D / 3D inputs.

    Notes
    -----
    MONAI's ``monai.visualize.GradCAM`` computes the same map, upsamples it
    the same way and then rescales each sample with its
    ``default_normalizer``, which maps (min, max) to (1, 0): *flipped*, the
    strongest evidence becomes 0. This map is not normalised (relevance
    scales are kept for metrics and penalties); ``1 - (R - min) / (max -
    min)`` per sample equals MONAI's output (checked to 1e-6 on a MONAI
    DenseNet121).

    Cost: one forward and one backward pass (to the layer only). The map has
    the layer's resolution, coarse by design: good for "which region", not
    for "which pixel". Differentiable with ``create_graph=True``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import GradCAM
    >>> from sklearn_relevance.modules import ImageCNN
    >>> net = ImageCNN((1, 32, 32), 2).eval()
    >>> GradCAM().explain(net, torch.randn(2, 1, 32, 32), target=1).shape
    torch.Size([2, 1, 32, 32])
    """

    supports_dict = False
    input_ndims = (1, 2, 3)
    _parameter_constraints = {
        "layer": [str, nn.Module, None],
        "relu": ["boolean"],
        "interpolate_mode": [StrOptions({"auto", "nearest", "linear", "bilinear",
                                         "bicubic", "trilinear", "area"})],
    }

    def __init__(self, layer=None, *, relu=True, interpolate_mode="auto"):
        self.layer = layer
        self.relu = relu
        self.interpolate_mode = interpolate_mode

    def _explain(self, module, X, target, *, create_graph):
        if self.layer is None:
            name, layer = spatial_layer(module, X)
        else:
            name, layer = find_layer(module, self.layer)
        seen = []
        owner = hook_owner(module)

        def keep(_, __, output):
            if not hook_acts(owner):  # another thread's forward pass
                return None
            if not torch.is_tensor(output):
                seen.append(output)
                return None
            if not output.requires_grad:
                output = output.detach().requires_grad_(True)
            seen.append(output)
            # the network continues with a copy: an in-place operation after
            # the layer (ReLU(inplace=True)) changes the copy, not the kept
            # activations, as captum's LayerGradCam
            return output.clone()

        handle = layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                out = forward(module, X)
        finally:
            handle.remove()
        if not seen:
            raise ValueError(
                f"The 'layer' parameter of GradCAM names {name!r}, which the module "
                "did not call in its forward pass."
            )
        acts = seen[-1]
        if not torch.is_tensor(acts) or acts.ndim != X.ndim:
            got = tuple(acts.shape) if torch.is_tensor(acts) else type(acts).__name__
            raise ValueError(
                f"The 'layer' parameter of GradCAM must name a layer with outputs of "
                f"shape (n, channels, *spatial) like X {tuple(X.shape)}. Layer "
                f"{name!r} gives {got} instead."
            )
        with torch.enable_grad():
            score = select_output(out, target).sum()
            grads = None
            if score.requires_grad:
                (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph,
                                               allow_unused=True)
        if grads is None:
            raise ValueError(
                f"The output of {type(module).__name__} does not depend on the "
                f"activations of layer {name!r} through autograd (a detach(), an "
                "argmax or an integer cast after it?), so the Grad-CAM map would be "
                "all zero. Name a layer the output is differentiable in."
            )
        weights = grads.mean(dim=tuple(range(2, grads.ndim)), keepdim=True)
        cam = (weights * acts).sum(1, keepdim=True)
        if self.relu:
            cam = F.relu(cam)
        if not create_graph:
            cam = cam.detach()
        return upsample_to_input(cam, X, self.interpolate_mode)
