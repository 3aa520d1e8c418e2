"""Baselines (reference inputs) for integrated gradients, occlusion and metrics.

:func:`resolve_baselines` turns the ``baselines`` parameter into a tensor that
broadcasts against ``X`` (or a dict of them for dict inputs):

* a number: that constant everywhere;
* a tensor or array of ``X``'s shape, of one sample's shape, or of shape
  ``(1, *sample_shape)``;
* ``"zero"``: zeros;
* ``"mean"``: per sample and channel, the mean over the remaining axes (for
  ``(n, features)`` inputs, the mean over the features of each sample);
* ``"blur"``: the input blurred by a Gaussian over its spatial axes (sigma 5%
  of each axis, at least one element), the blurred baseline of Sturmfels,
  Lundberg & Lee, "Visualizing the impact of feature attribution baselines",
  Distill 2020;
* a callable ``f(X)`` returning any of the above but a string.

Results follow ``X``'s device and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BASELINE_NAMES", "gaussian_blur", "resolve_baselines"]

BASELINE_NAMES = ("zero", "mean", "blur")


def gaussian_blur(X, sigma=None):
    """Blur ``X`` of shape (n, channels, *spatial) (or (n, features)) per sample.

    Separable Gaussian convolution over each spatial axis with replicated
    borders; ``sigma`` defaults to 5% of each axis length (at least 1).

    Parameters
    ----------
    X : Tensor
    sigma : float or None

    Returns
    -------
    Tensor of ``X``'s shape.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance._baselines import gaussian_blur
    >>> gaussian_blur(torch.ones(2, 1, 8, 8)).allclose(torch.ones(2, 1, 8, 8))
    True
    """
    axes = [1] if X.ndim == 2 else list(range(2, X.ndim))
    out = X
    for axis in axes:
        length = X.shape[axis]
        s = float(sigma) if sigma is not None else max(0.05 * length, 1.0)
        radius = max(math.ceil(3 * s), 1)
        grid = torch.arange(-radius, radius + 1, device=X.device, dtype=X.dtype)
        kernel = torch.exp(-0.5 * (grid / s) ** 2)
        kernel = (kernel / kernel.sum()).reshape(1, 1, -1)
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, length)
        flat = F.pad(flat, (radius, radius), mode="replicate")
        out = F.conv1d(flat, kernel).reshape(shape).movedim(-1, axis)
    return out


def _named(name, X):
    if name == "zero":
        return torch.zeros((), dtype=X.dtype, device=X.device).expand_as(X)
    if name == "mean":
        axes = tuple(range(1, X.ndim)) if X.ndim == 2 else tuple(range(2, X.ndim))
        return X.detach().mean(dim=axes, keepdim=True).expand_as(X)
    return gaussian_blur(X.detach())


def _one(baselines, X, name, owner):
    base = _resolve_one(baselines, X, name, owner)
    values = base.detach()
    if not bool(torch.isfinite(values).all()):
        where = f" of {owner}" if owner else ""
        got = "NaN" if bool(torch.isnan(values).any()) else "infinity"
        raise ValueError(
            f"The '{name}' parameter{where} must hold finite values. Got a baseline "
            f"containing {got} instead."
        )
    return base


def _resolve_one(baselines, X, name, owner):
    where = f" of {owner}" if owner else ""
    if callable(baselines) and not isinstance(baselines, str):
        baselines = baselines(X)
        if isinstance(baselines, str):
            raise ValueError(
                f"The callable '{name}' parameter{where} must return a number, an "
                f"array or a tensor. Got the string {baselines!r} instead."
            )
    if isinstance(baselines, str):
        if baselines not in BASELINE_NAMES:
            raise ValueError(
                f"The '{name}' parameter{where} must be a number, a tensor, a "
                f"callable or a str among {list(BASELINE_NAMES)}. Got "
                f"{baselines!r} instead."
            )
        return _named(baselines, X)
    if isinstance(baselines, (Real, np.number)) and not isinstance(baselines, bool):
        return torch.full((), float(baselines), dtype=X.dtype, device=X.device).expand_as(X)
    if isinstance(baselines, (np.ndarray, list, tuple)) or torch.is_tensor(baselines):
        base = torch.as_tensor(baselines, device=X.device)
        if not (torch.is_floating_point(base) or base.dtype in (
                torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
            raise ValueError(
                f"The '{name}' parameter{where} must hold real numbers. Got dtype "
                f"{base.dtype} instead."
            )
        base = base.to(X.dtype)
        sample = tuple(X.shape[1:])
        shape = tuple(base.shape)
        if shape == ():
            return base.expand_as(X)
        if shape == sample:
            base = base.unsqueeze(0)
        elif not (shape == tuple(X.shape) or shape == (1, *sample)):
            raise ValueError(
                f"The '{name}' parameter{where} must be a number or have the shape of "
                f"X {tuple(X.shape)}, of one sample {sample} or (1, *{sample}). Got "
                f"shape {shape} instead."
            )
        return base.expand_as(X)
    raise ValueError(
        f"The '{name}' parameter{where} must be a number, a tensor, a callable or a "
        f"str among {list(BASELINE_NAMES)}. Got {type(baselines).__name__} instead."
    )


def resolve_baselines(baselines, X, *, name="baselines", owner=None):
    """Baseline tensor(s) of ``X``'s shape (expanded views where possible).

    Parameters
    ----------
    baselines : float, array-like, Tensor, {"zero", "mean", "blur"}, callable or dict
        See the module docstring. For a dict ``X``, a dict with the same keys
        gives one baseline per modality; anything else applies to each.
    X : Tensor or dict of Tensors
        The input batch.
    name : str, default="baselines"
        Parameter name used in error messages.
    owner : str or None
        Class name used in error messages.

    Returns
    -------
    Tensor or dict of Tensors
        Broadcast to ``X``'s shape, on ``X``'s device and dtype, detached from
        ``X`` for the named choices.

    Raises
    ------
    ValueError
        For an unknown name, a tensor whose shape does not fit ``X``, or a
        baseline holding NaN or infinity.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance._baselines import resolve_baselines
    >>> X = torch.tensor([[1., 3.], [2., 6.]])
    >>> resolve_baselines("mean", X)
    tensor([[2., 2.],
            [4., 4.]])
    >>> resolve_baselines(0.5, X).shape
    torch.Size([2, 2])
    """
    if isinstance(X, Mapping):
        if isinstance(baselines, Mapping):
            if set(baselines) != set(X):
                raise ValueError(
                    f"The '{name}' parameter must have the keys of X {sorted(X)}. "
                    f"Got keys {sorted(baselines)} instead."
                )
            return {k: _one(baselines[k], X[k], f"{name}[{k!r}]", owner) for k in X}
        return {k: _one(baselines, X[k], name, owner) for k in X}
    if isinstance(baselines, Mapping):
        raise ValueError(
            f"The '{name}' parameter must not be a dict for a tensor X. Got a dict "
            f"with keys {sorted(baselines)} instead."
        )
    return _one(baselines, X, name, owner)
