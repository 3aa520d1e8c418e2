"""Relevance masks (expert annotations) for training: validation and transport.

A mask says, per sample, where the network's relevance is allowed (1) and
where it must vanish (0); values in between weight the penalty. A sample
whose mask is all NaN has no annotation. Masks travel through skorch with
the samples they belong to: ``fit`` packs ``X`` and the masks into one dict
under reserved keys (:func:`with_masks`), so that skorch's datasets,
``ValidSplit`` subsets and data loaders index them together, and the
training step unpacks them (:func:`split_masks`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

#: Reserved keys of a batch that carries masks.
X_KEY = "__sklearn_relevance_X__"
MASK_KEY = "__sklearn_relevance_relevance_mask__"


def is_masked(X):
    """Whether ``X`` is a pack made by :func:`with_masks`."""
    return isinstance(X, Mapping) and MASK_KEY in X


def with_masks(X, masks):
    """Pack ``X`` and its masks into one dict that skorch indexes sample-wise."""
    return {X_KEY: X, MASK_KEY: masks}


def split_masks(X):
    """``(X, masks)`` from a pack, or ``(X, None)`` for plain input."""
    if is_masked(X):
        return X[X_KEY], X[MASK_KEY]
    return X, None


def _check_one(mask, shape, n, where, owner):
    """Validate the masks of one array input of per-sample ``shape``."""
    if torch.is_tensor(mask):
        mask = mask.detach().cpu().numpy()
    try:
        arr = np.asarray(mask, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"The {where} parameter of {owner} must be an array of masks with values in "
            f"[0, 1] (NaN for unannotated samples). Got {type(mask).__name__} that "
            "cannot be converted to float."
        ) from None
    if arr.ndim < 1 or arr.shape[0] != n:
        got = "a scalar" if arr.ndim == 0 else f"{arr.shape[0]} masks (shape {arr.shape})"
        raise ValueError(
            f"The {where} parameter of {owner} must hold one mask per sample of X "
            f"({n}). Got {got} instead."
        )
    mshape = arr.shape[1:]
    try:
        ok = np.broadcast_shapes(mshape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok or len(mshape) > len(shape):
        raise ValueError(
            f"The {where} parameter of {owner} must hold masks broadcastable to X's "
            f"sample shape {tuple(shape)}. Got masks of shape {mshape} instead."
        )
    nan = np.isnan(arr)
    if nan.any():
        rows = nan.reshape(n, -1)
        partial = rows.any(1) & ~rows.all(1)
        if partial.any():
            raise ValueError(
                f"The {where} parameter of {owner} must be all NaN for an unannotated "
                "sample and free of NaN otherwise. Got partly NaN masks for samples "
                f"{np.flatnonzero(partial)[:5].tolist()}."
            )
    if not nan.all():
        low, high = (np.nanmin(arr), np.nanmax(arr)) if nan.any() else (arr.min(), arr.max())
        if not (0 <= low and high <= 1):  # also refuses infinity
            raise ValueError(
                f"The {where} parameter of {owner} must hold values in [0, 1] (1 where "
                f"relevance is allowed, 0 where it must vanish). Got values in "
                f"[{low}, {high}] instead."
            )
    # leading singleton axes, so that the masks broadcast against the relevance
    return np.ascontiguousarray(arr.reshape((n,) + (1,) * (len(shape) - len(mshape)) + mshape))


def check_relevance_mask(mask, X, owner, *, name="relevance_mask"):
    """Validate ``relevance_mask`` against validated input ``X``.

    Parameters
    ----------
    mask : None, array-like of shape (n_samples, ...) or dict of such
        One mask per sample, broadcastable to X's sample shape; for dict X a
        dict whose keys are among X's (a modality left out is penalised
        everywhere, as without masks). NaN masks mark unannotated samples.
    X : ndarray or dict of ndarrays
        The validated input.
    owner : str
        The estimator's class name, for messages.

    Returns
    -------
    None, ndarray or dict of ndarrays
        float32 masks shaped ``(n, *[1]*k, *mask_shape)`` so that they
        broadcast against relevance of X's shape.
    """
    if mask is None:
        return None
    where = f"'{name}'"
    if isinstance(X, Mapping):
        n = len(next(iter(X.values())))
        if not isinstance(mask, Mapping):
            raise ValueError(
                f"The {where} parameter of {owner} must be a dict of masks for dict "
                f"input X (keys among {sorted(X)}). Got {type(mask).__name__} instead."
            )
        unknown = sorted(set(mask) - set(X))
        if unknown or not mask:
            raise ValueError(
                f"The {where} parameter of {owner} must be a dict with keys among X's "
                f"modalities {sorted(X)}. Got keys {sorted(mask)} instead."
            )
        return {
            k: _check_one(m, X[k].shape[1:], n, f"'{name}[{k!r}]'", owner)
            for k, m in mask.items()
        }
    if isinstance(mask, Mapping):
        raise ValueError(
            f"The {where} parameter of {owner} must be an array of masks for array "
            f"input X. Got a dict with keys {sorted(mask)} instead."
        )
    return _check_one(mask, X.shape[1:], X.shape[0], where, owner)
