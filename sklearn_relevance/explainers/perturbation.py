"""Occlusion (Zeiler & Fergus 2014): sliding-window perturbation in 1D, 2D and 3D."""

from __future__ import annotations

import math
from numbers import Integral

import torch
from sklearn.utils._param_validation import Interval

from .._batching import iter_slices
from .._targets import repeat_target
from .._tensors import forward, select_output
from ._base import BaseExplainer
from .._baselines import resolve_baselines
from ._engine import (
    expanded_chunks,
    max_rows_for,
    slice_target,
)

__all__ = ["Occlusion"]


def _as_tuple(value, n_axes, name, X):
    """Per-axis sizes over the windowed axes (channels first when given)."""
    if isinstance(value, Integral):
        return (int(value),) * n_axes, False
    sizes = tuple(int(v) for v in value)
    if len(sizes) == n_axes:
        return sizes, False
    if len(sizes) == n_axes + 1 and X.ndim > 2:
        return sizes, True
    raise ValueError(
        f"The '{name}' parameter of Occlusion must be an int or a tuple with one "
        f"value per spatial axis ({n_axes}) or per axis of a sample "
        f"({X.ndim - 1}) for X of shape {tuple(X.shape)}. Got {value!r} instead."
    )


def _axis_windows(X, window, stride):
    """Per windowed axis: ``(axis, indicator (n_windows, length))``."""
    spatial = [1] if X.ndim == 2 else list(range(2, X.ndim))
    n_axes = len(spatial)
    window, with_channels = _as_tuple(window, n_axes, "window", X)
    if stride is None:
        stride = tuple(max(w // 2, 1) for w in window)
    elif isinstance(stride, Integral):
        stride = (int(stride),) * len(window)
    else:
        stride = tuple(int(v) for v in stride)
    if len(stride) != len(window):
        raise ValueError(
            f"The 'stride' parameter of Occlusion must have as many values as "
            f"'window' ({len(window)}). Got {stride!r} instead."
        )
    axes = ([1] + spatial) if with_channels else spatial
    out = []
    for axis, w, s in zip(axes, window, stride):
        length = X.shape[axis]
        if not 1 <= w <= length:
            raise ValueError(
                f"The 'window' parameter of Occlusion must lie in [1, {length}] on "
                f"axis {axis} of X {tuple(X.shape)}. Got {w} instead."
            )
        if s < 1 or (s > w and w < length):
            raise ValueError(
                f"The 'stride' parameter of Occlusion must lie in [1, window={w}] "
                f"on axis {axis} so that every element is occluded. Got {s} instead."
            )
        count = math.ceil((length - w) / s) + 1
        starts = torch.arange(count, device=X.device)[:, None] * s
        pos = torch.arange(length, device=X.device)[None, :]
        out.append((axis, (pos >= starts) & (pos < starts + w)))
    return out


def _window_masks(windows, index, sample_shape):
    """Boolean masks ``(len(index), *sample_shape)`` of the windows ``index``."""
    counts = [ind.shape[0] for _, ind in windows]
    mask = torch.ones((len(index),) + (1,) * len(sample_shape), dtype=torch.bool,
                      device=index.device)
    rest = index
    for (axis, ind), count in zip(reversed(windows), reversed(counts)):
        shape = [len(index)] + [1] * len(sample_shape)
        shape[axis] = ind.shape[1]
        mask = mask & ind[rest % count].view(shape)
        rest = rest // count
    return mask.expand((len(index),) + tuple(sample_shape))


class Occlusion(BaseExplainer):
    """Occlusion: the drop of the target output when a window is replaced.

    A window slides over the spatial axes (all channels at once, or a
    channel window too); at each position the window is set to the baseline
    and ``f(x) - f(x_occluded)`` is credited to every element of the window.
    Each element's relevance is the mean over the windows that cover it.
    Windows that would pass the end of an axis are cut at the border, as in
    captum's ``Occlusion``, so every element is covered. All windows of a
    chunk are evaluated in one forward pass of at most
    ``internal_batch_size`` rows (windows x samples), under ``no_grad``.

    Parameters
    ----------
    window : int or tuple of int, default=8
        Window size per spatial axis (an int for all), or per axis of a
        sample including the channel axis first. captum's
        ``sliding_window_shapes=(C, 8, 8)`` is ``window=8`` here.
    stride : int, tuple of int or None, default=None
        Step between windows per axis; ``None`` is half the window (at
        least 1). Must not exceed the window.
    baselines : float, array-like, Tensor, {"zero", "mean", "blur"} or \
callable, default=0.0
        Value put into the occluded window.
    internal_batch_size : int or None, default=None
        Upper bound on the rows of one forward pass; ``None`` uses a 32 MiB
        budget on the inputs of a pass (forward passes keep no activations).

    Notes
    -----
    Cost: one forward pass per window position and sample (e.g. 225 for an
    8x8 window with stride 4 on 64x64). Not differentiable: refused as a
    ``relevance_explainer`` for training.

    Examples
    --------
    >>> import torch
    >>> from sklearn_relevance.explainers import Occlusion
    >>> module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    >>> Occlusion(window=2, stride=2).explain(module, torch.randn(3, 1, 4, 4)).shape
    torch.Size([3, 1, 4, 4])
    """

    differentiable = False
    supports_dict = False
    _parameter_constraints = {
        "window": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "stride": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
        "baselines": "no_validation",
        "internal_batch_size": [Interval(Integral, 1, None, closed="left"), None],
    }

    uses_layers = False
    shares_module = True

    def __init__(self, window=8, *, stride=None, baselines=0.0,
                 internal_batch_size=None):
        self.window = window
        self.stride = stride
        self.baselines = baselines
        self.internal_batch_size = internal_batch_size

    @torch.no_grad()
    def _explain(self, module, X, target, *, create_graph):
        windows = _axis_windows(X, self.window, self.stride)
        base = resolve_baselines(self.baselines, X, owner="Occlusion")
        n, sample_shape = X.shape[0], tuple(X.shape[1:])
        n_windows = math.prod(ind.shape[0] for _, ind in windows)
        # forward passes only (no activations kept)
        max_rows = max_rows_for(X, self.internal_batch_size, "forward_pass_input",
                                module=module)
        f0 = torch.cat([
            select_output(forward(module, X[s]), slice_target(target, s))
            for s in iter_slices(n, max_rows)
        ])
        total = torch.zeros((n, math.prod(sample_shape)), dtype=f0.dtype,
                            device=X.device)
        for wins, samples in expanded_chunks(n, n_windows, max_rows):
            index = torch.arange(wins.start, wins.stop, device=X.device)
            mask = _window_masks(windows, index, sample_shape)
            k = len(index)
            x, b = X[samples].unsqueeze(0), base[samples].unsqueeze(0)
            rows = torch.where(mask.unsqueeze(1), b, x).reshape(-1, *sample_shape)
            t = repeat_target(slice_target(target, samples), k)
            out = select_output(forward(module, rows), t).reshape(k, -1)
            diff = f0[samples].unsqueeze(0) - out
            total[samples] += diff.T @ mask.reshape(k, -1).to(diff.dtype)
        coverage = torch.ones((), device=X.device)
        for axis, ind in windows:
            shape = [1] * len(sample_shape)
            shape[axis - 1] = ind.shape[1]
            coverage = coverage * ind.sum(0).view(shape)
        coverage = coverage.expand(sample_shape).reshape(1, -1).to(total.dtype)
        return (total / coverage).reshape(X.shape).to(X.dtype)
