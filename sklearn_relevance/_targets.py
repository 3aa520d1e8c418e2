"""Validation of explanation targets and encoding of labels as class indices."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch

__all__ = ["check_target", "encode_labels", "repeat_target"]


def _target_error(got):
    return ValueError(
        "The 'target' parameter must be None, an int or integer class indices of "
        f"shape (n_samples,). Got {got} instead."
    )


def check_target(target, n=None):
    """Validate a target; return None, an int or a LongTensor of shape (n,).

    Floats, bools and arrays of more than one axis are refused, never
    truncated or flattened into class indices.

    Parameters
    ----------
    target : None, int or integer array-like of shape (n,)
    n : int or None
        The number of samples the target must cover (not checked when None).

    Returns
    -------
    None, int or LongTensor
    """
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)):
        raise _target_error(f"the bool {target!r}")
    if isinstance(target, Integral):
        return int(target)
    if isinstance(target, Real):
        raise _target_error(f"the float {target!r}")
    if not torch.is_tensor(target):
        try:
            arr = np.asarray(target)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise _target_error(f"{type(target).__name__} of dtype {arr.dtype}")
        target = torch.as_tensor(arr)
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise _target_error(f"a tensor of dtype {target.dtype}")
    if target.ndim == 0:
        return int(target)
    if target.ndim != 1:
        raise _target_error(f"an array of shape {tuple(target.shape)}")
    if n is not None and target.shape[0] != n:
        raise ValueError(
            f"The 'target' parameter must hold one class index per sample ({n}). "
            f"Got {target.shape[0]} indices instead."
        )
    return target.long()


def repeat_target(target, copies: int):
    """Repeat a per-sample target for ``copies`` stacked copies of a batch.

    The copies are stacked copy-major, i.e. copy ``r`` of sample ``i`` sits
    at row ``r * n + i``. ``None`` and a single class index apply to every
    row and are returned unchanged; a sequence is converted to a tensor.
    """
    target = check_target(target)
    if target is None or isinstance(target, int):
        return target
    return target.repeat(copies)


def encode_labels(classes, y, n=None):
    """Column index of each label in ``y``: its position in ``classes``.

    The one label-to-class-index encoder of the package (classifiers,
    metrics and studies call it).

    Parameters
    ----------
    classes : sorted ndarray or None
        A classifier's ``classes_``. ``None`` (a plain torch module) takes
        ``y`` as class indices, which must then be integers.
    y : array-like or Tensor of shape (n,)
        Labels.
    n : int or None
        The number of samples ``y`` must label (not checked when None).

    Returns
    -------
    ndarray of int64 of shape (n,)
    """
    y = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y)
    if n is not None:
        y = y.ravel()
        if y.shape[0] != n:
            raise ValueError(
                f"y must hold one label per sample ({n}). Got {y.shape[0]} labels."
            )
    if classes is None:
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                "With a torch module, y must hold class indices (ints). Got dtype "
                f"{y.dtype} instead."
            )
        return y.astype(np.int64)
    idx = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    unknown = classes[idx] != y
    if np.any(unknown):
        raise ValueError(
            f"y contains previously unseen labels: {np.unique(y[unknown]).tolist()}"
        )
    return idx.astype(np.int64)
