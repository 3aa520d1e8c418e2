"""Input validation shared by estimators, explainers' callers and metrics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def _to_numpy_float(value, name):
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(
            f"The '{name}' parameter must be array-like of numbers. Got "
            f"{type(value).__name__} that numpy cannot convert ({exc})."
        ) from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise ValueError(
            f"The '{name}' parameter must hold numbers. Got dtype {arr.dtype} instead."
        )
    if np.iscomplexobj(arr):
        raise ValueError(f"The '{name}' parameter must be real. Got complex data.")
    return arr


def check_array_nd(X, *, name="X", min_ndim=2, allow_nan=False, dtype=np.float32):
    """Validate an array of shape (n_samples, ...) and cast it to ``dtype``.

    Accepts numpy arrays, torch tensors, lists and pandas objects. Raises a
    ``ValueError`` naming ``name`` for non-numeric data, too few axes, no
    samples, or NaN / infinite values.
    """
    arr = _to_numpy_float(X, name)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"Expected a {min_ndim}D array or more for '{name}' (n_samples, ...), "
            f"got a {arr.ndim}D array of shape {arr.shape} instead. Reshape your "
            "data, e.g. with X.reshape(-1, 1) for a single feature."
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
            f"is required for '{name}'."
        )
    if arr.size and min(arr.shape[1:], default=1) == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 "
            f"is required for '{name}'."
        )
    arr = arr.astype(dtype, copy=False)
    if not allow_nan and arr.size and not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"Input {name} contains {bad} or a value too large for {arr.dtype!r}.")
    return arr


def check_input(X, *, name="X", min_ndim=2):
    """Validate ``X`` or a dict of modalities; returns float32 array(s).

    Dict inputs (multimodal) are validated per key and must hold the same
    number of samples in every modality.
    """
    if isinstance(X, Mapping):
        if not X:
            raise ValueError(f"The '{name}' parameter must not be an empty dict.")
        out = {}
        for key, value in X.items():
            out[key] = check_array_nd(value, name=f"{name}[{key!r}]", min_ndim=min_ndim)
        lengths = {k: v.shape[0] for k, v in out.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"All modalities of '{name}' must hold the same number of samples. "
                f"Got {lengths} instead."
            )
        return out
    return check_array_nd(X, name=name, min_ndim=min_ndim)


def sample_shape(X):
    """Per-sample shape of an array, or a dict of per-sample shapes."""
    if isinstance(X, Mapping):
        return {k: tuple(v.shape[1:]) for k, v in X.items()}
    return tuple(X.shape[1:])


def check_sample_shape(X, expected, *, name="X", owner="estimator"):
    """Raise ``ValueError`` when X's per-sample shape differs from ``expected``."""
    got = sample_shape(X)
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping) or set(got) != set(expected):
            got_keys = sorted(got) if isinstance(got, Mapping) else "an array"
            raise ValueError(
                f"{owner} was fitted on a dict with keys {sorted(expected)}; got "
                f"{name} with keys {got_keys} instead."
            )
        for key in expected:
            if tuple(got[key]) != tuple(expected[key]):
                raise ValueError(
                    f"{name}[{key!r}] has samples of shape {tuple(got[key])}, but "
                    f"{owner} was fitted on shape {tuple(expected[key])}."
                )
        return
    if isinstance(got, Mapping):
        raise ValueError(
            f"{owner} was fitted on an array; got {name} as a dict with keys "
            f"{sorted(got)} instead."
        )
    if tuple(got) != tuple(expected):
        n_got = int(np.prod(got)) if got else 0
        n_exp = int(np.prod(expected)) if expected else 0
        if len(expected) == 1:
            raise ValueError(
                f"X has {n_got} features, but {owner} is expecting {n_exp} features "
                "as input."
            )
        raise ValueError(
            f"{name} has samples of shape {tuple(got)}, but {owner} was fitted on "
            f"samples of shape {tuple(expected)}."
        )


def as_tensor(X, device, *, name="X"):
    """Validated float32 tensor (or dict of tensors) on ``device``."""
    X = check_input(X, name=name)
    if isinstance(X, Mapping):
        return {k: torch.as_tensor(v, device=device) for k, v in X.items()}
    return torch.as_tensor(X, device=device)
