"""Vectorised resampling of spectra from one or per-row m/z axes onto another."""

from __future__ import annotations

from numbers import Integral

import numpy as np


def edges_from_centres(centres):
    """Bin edges half-way between centres (outer bins as wide as their neighbour)."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def uniform_edges(lo, hi, *, n_bins=None, bin_width=None):
    """Edges of ``n_bins`` equal bins over [lo, hi], or of bins ``bin_width`` wide."""
    if n_bins is not None:
        return np.linspace(lo, hi, int(n_bins) + 1)
    k = max(int(np.ceil((hi - lo) / bin_width - 1e-9)), 1)
    return lo + bin_width * np.arange(k + 1)


def check_positive_int(value, name, caller):
    """Raise the scikit-learn style error unless ``value`` is an int >= 1.

    The check itself imports nothing: reading a file must not import torch
    (which :mod:`sklearn_relevance._validation` does); only a refused value
    goes there for scikit-learn's wording of the error.
    """
    if isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)) \
            and value >= 1:
        return int(value)
    from .._validation import check_int

    return check_int(value, name, caller, low=1)


def _right_index(axis, target):
    """Per row, the number of ``axis`` values <= each target (searchsorted 'right')."""
    if axis.ndim == 1:
        return np.broadcast_to(np.searchsorted(axis, target, side="right"),
                               (1, target.size))
    n, m = axis.shape
    merged = np.concatenate([axis, np.broadcast_to(target, (n, target.size))], axis=1)
    order = np.argsort(merged, axis=1, kind="stable")  # axis values first on ties
    is_target = order >= m
    below = np.cumsum(~is_target, axis=1)
    idx = np.empty((n, target.size), dtype=np.int64)
    rows = np.nonzero(is_target)[0]
    idx[rows, order[is_target] - m] = below[is_target]
    return idx


def _linear(X, axis, target):
    n, m = X.shape
    idx = _right_index(axis, target)
    hi = np.clip(idx, 1, m - 1)
    lo = hi - 1
    ax = np.broadcast_to(axis, (n, m)) if axis.ndim == 1 else axis
    rows = np.arange(n)[:, None]
    a_lo, a_hi = ax[rows, lo], ax[rows, hi]
    w = (target - a_lo) / (a_hi - a_lo)
    out = X[rows, lo] * (1 - w) + X[rows, hi] * w
    inside = (target >= ax[:, :1]) & (target <= ax[:, -1:])
    return np.where(inside, out, 0.0)


def _sum(X, axis, target):
    n, _m = X.shape
    edges = edges_from_centres(target)
    nb = target.size
    col = np.searchsorted(edges, axis, side="right") - 1
    col[axis == edges[-1]] = nb - 1
    keep = (col >= 0) & (col < nb)
    if axis.ndim == 1:  # one axis: columns map to runs of bins, one reduceat
        out = np.zeros((n, nb), dtype=np.float64)
        ck = col[keep]
        if ck.size:
            starts = np.flatnonzero(np.r_[True, np.diff(ck) != 0])
            out[:, ck[starts]] = np.add.reduceat(X[:, keep], starts, axis=1)
        return out
    flat = (np.arange(n)[:, None] * nb + col)[keep]
    return np.bincount(flat, weights=X[keep], minlength=n * nb).reshape(n, nb)


def resample(X, axis, target, method):
    """Spectra ``X`` (n, m) on ``axis`` ((m,) or (n, m)) resampled at ``target``."""
    X = np.asarray(X, dtype=np.float64)
    axis = np.asarray(axis, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if axis.ndim == 1 and axis.shape == target.shape and np.array_equal(axis, target):
        return X.copy()
    if method == "linear":
        if X.shape[1] == 1:
            hit = np.broadcast_to(axis, X.shape) == target
            return np.where(hit, X, 0.0)
        return _linear(X, axis, target)
    return _sum(X, axis, target)
