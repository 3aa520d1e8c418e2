"""Input checks and small tensor helpers shared by the metric functions.

Every metric takes batches as numpy arrays or torch tensors. Torch tensors stay
on their device; numpy inputs are moved to ``device`` (CPU by default). Bad
input raises a ``ValueError`` naming the problem before any work is done.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._validation import as_batch, check_real, squeezed_shape


def as_mask(value, name, *, device=None):
    """Boolean tensor of a binary (0/1 or bool) batch."""
    if isinstance(value, np.ndarray) and value.dtype == bool:
        value = torch.from_numpy(value)
    if torch.is_tensor(value) and value.dtype == torch.bool:
        m = value.detach()
        if device is not None:
            m = m.to(device)
        if m.ndim < 2:
            raise ValueError(
                f"The '{name}' parameter must be a batch of shape (n_samples, ...). "
                f"Got shape {tuple(m.shape)} instead."
            )
        return m
    t = as_batch(value, name, device=device)
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(
            f"The '{name}' parameter must be binary (bool or 0/1 values). Got values "
            f"in [{float(t.min())}, {float(t.max())}] instead."
        )
    return t.bool()


def flatten_pair(relevance, other, *, names=("relevance", "masks")):
    """Flatten two batches of matching per-sample shapes to (n, n_features).

    Shapes match when they are equal after dropping singleton axes, so a
    relevance map of shape (n, 1, H, W) pairs with masks of shape (n, H, W).
    """
    a, b = names
    if relevance.shape[0] != other.shape[0]:
        raise ValueError(
            f"'{a}' and '{b}' must hold the same number of samples. Got "
            f"{relevance.shape[0]} and {other.shape[0]} instead."
        )
    if squeezed_shape(relevance.shape[1:]) != squeezed_shape(other.shape[1:]):
        raise ValueError(
            f"'{a}' and '{b}' must have the same per-sample shape. Got {a} of shape "
            f"{tuple(relevance.shape)} and {b} of shape {tuple(other.shape)} instead."
        )
    n = relevance.shape[0]
    return relevance.reshape(n, -1), other.reshape(n, -1)


def nan_where(values, bad, metric, reason):
    """Set ``values[bad]`` to NaN (numpy) and warn how many samples it hit."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        values = np.array(values, dtype=np.float64, copy=True)
        values[bad] = np.nan
        warnings.warn(
            f"{metric} is undefined for {int(bad.sum())} of {bad.size} sample(s) "
            f"({reason}); returning NaN for them.",
            UserWarning,
            stacklevel=3,
        )
    return values


def check_mask_coverage(mask):
    """Boolean numpy vectors of the samples whose mask is empty, and full."""
    count = mask.sum(1)
    return (count == 0).cpu().numpy(), (count == mask.shape[1]).cpu().numpy()


def constant_rows(a):
    """Boolean numpy vector: rows of ``a`` (n, F) whose values are all equal."""
    return (a.amax(1) == a.amin(1)).cpu().numpy()


def sort_rows(a):
    """``torch.sort(a, dim=1)`` (not stable); on CPU through numpy's vectorised sort.

    numpy's SIMD sorts are several times faster than ``torch.sort`` on CPU;
    other devices use ``torch.sort``.
    """
    if a.device.type != "cpu":
        return torch.sort(a, dim=1)
    arr = a.numpy()
    order = np.argsort(arr, axis=1)
    return torch.from_numpy(np.take_along_axis(arr, order, axis=1)), torch.from_numpy(order)


def to_numpy(t):
    """Float64 numpy array of a tensor."""
    return t.detach().cpu().double().numpy()


def check_interval(value, name, owner, low, high, *, closed="neither"):
    """Raise a ValueError unless ``value`` is a real number in the interval."""
    return check_real(value, name, owner, low=low, high=high, closed=closed)
