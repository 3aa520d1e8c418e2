"""Input validation shared by estimators, explainers' callers and metrics."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.utils import check_array
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    validate_parameter_constraints,
)

from ._stream import check_streamed, is_streamed


def check_array_nd(X, *, name="X", min_ndim=2, allow_nan=False, dtype=np.float32):
    """Validate an array of shape (n_samples, ...) and cast it to ``dtype``.

    Built on scikit-learn's ``check_array`` (so messages match scikit-learn's:
    sparse, complex and non-numeric data, empty arrays, NaN and infinity),
    with any number of axes after the sample axis. Torch tensors are moved to
    the CPU first.
    """
    if torch.is_tensor(X):
        X = X.detach().cpu()
        if X.dtype in (torch.bfloat16, torch.float16):
            X = X.float()  # numpy has no bfloat16: cast as float64 is cast
        X = X.numpy()
    arr = _plain_float_array(X, min_ndim=min_ndim, dtype=dtype)
    if arr is not None:
        return arr
    arr = check_array(
        X, accept_sparse=False, dtype=dtype, allow_nd=True, ensure_2d=min_ndim >= 2,
        ensure_all_finite="allow-nan" if allow_nan else True, input_name=name,
    )
    if arr.ndim < min_ndim:
        raise ValueError(
            f"Expected a {min_ndim}D array or more for '{name}' (n_samples, ...), "
            f"got a {arr.ndim}D array of shape {arr.shape} instead."
        )
    return arr


_PLAIN_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _plain_float_array(X, *, min_ndim, dtype):
    """``check_array``'s result for the common case, or None to ask it.

    A C-contiguous ``numpy.ndarray`` (the exact type) of native float32 /
    float64 with no empty axis and ``min_ndim`` axes or more (at least one)
    is cast to ``dtype`` as ``check_array`` casts it (``np.asarray``: the
    array itself when it has ``dtype`` already) and is returned when its
    values are all finite. The finiteness test is one reduction: a sum is
    finite only if every term is (a NaN or an infinity makes every partial
    sum NaN or infinite); a sum that overflows on finite values, and every
    other input, falls back to ``check_array`` (None), so its messages and
    results stay scikit-learn's exactly.
    """
    if (type(X) is not np.ndarray or X.dtype not in _PLAIN_FLOATS
            or dtype is None or np.dtype(dtype) not in _PLAIN_FLOATS
            or X.ndim < max(min_ndim, 1) or X.size == 0
            or not X.flags.c_contiguous):
        return None
    with np.errstate(all="ignore"):  # an overflow is check_array's to report
        arr = np.asarray(X, dtype=dtype)
        total = arr.sum()
    if not np.isfinite(total):
        return None  # NaN, infinity or an overflowing sum: check_array decides
    return arr


def check_input(X, *, name="X", min_ndim=2):
    """Validate ``X`` or a dict of modalities; returns float32 array(s).

    Dict inputs (multimodal) are validated per key and must hold the same
    number of samples in every modality.
    """
    if is_streamed(X):  # out-of-core row source: read batch by batch (_stream.py)
        return check_streamed(X, name=name, min_ndim=min_ndim)
    if isinstance(X, Mapping) and not issparse(X):
        if not X:
            raise ValueError(f"The '{name}' parameter must not be an empty dict.")
        out = {}
        for key, value in X.items():
            try:
                out[key] = check_array_nd(value, name=f"{name}[{key!r}]", min_ndim=min_ndim)
            except ValueError as exc:
                raise ValueError(f"Modality {key!r} of '{name}': {exc}") from None
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
        if len(expected) == 1 and len(got) == 1:
            raise ValueError(
                f"X has {n_got} features, but {owner} is expecting {n_exp} features "
                "as input."
            )
        raise ValueError(
            f"{name} has samples of shape {tuple(got)}, but {owner} was fitted on "
            f"samples of shape {tuple(expected)}."
        )


def as_torch(X):
    """Zero-copy CPU tensor(s) from validated array(s) (a dict stays a dict).

    skorch's data loader then stacks tensor rows instead of converting numpy
    rows one sample at a time. Read-only arrays (memory maps) are copied,
    since torch tensors are writable views.
    """
    if isinstance(X, Mapping):
        return {k: as_torch(v) for k, v in X.items()}
    if torch.is_tensor(X) or is_streamed(X):
        return X
    arr = np.ascontiguousarray(X)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


def check_finite_tensor(X, *, name="X", owner=None):
    """Raise ``ValueError`` when a tensor (or a dict of them) holds NaN or infinity.

    The messages are scikit-learn's (``"Input X contains NaN."``), as the
    estimators' ``check_input`` raises them, with the owner named when given.
    The check runs on the tensor's device (one reduction, no copy to the host).
    """
    if isinstance(X, Mapping):
        for key, value in X.items():
            check_finite_tensor(value, name=f"{name}[{key!r}]", owner=owner)
        return
    if not torch.is_tensor(X) or not torch.is_floating_point(X):
        return
    values = X.detach()
    if bool(torch.isfinite(values).all()):
        return
    where = f" of {owner}" if owner else ""
    if bool(torch.isnan(values).any()):
        raise ValueError(f"Input {name}{where} contains NaN.")
    raise ValueError(
        f"Input {name}{where} contains infinity or a value too large for {values.dtype}."
    )


def device_problem(device):
    """Why torch cannot use ``device`` here (a sentence), or None when it can.

    ``device`` is a str or ``torch.device``; None (skorch: leave the module
    where it is) and ``"cpu"`` are always usable. Callers word the error
    (an estimator's ``device`` parameter, the command line's ``--device``).
    """
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return "it is not a torch device (expected e.g. 'cpu', 'cuda' or 'cuda:0')"
    if dev.type == "cpu":
        return None
    if dev.type == "meta":
        return "meta tensors hold no data (nothing can be trained or predicted on them)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch was built without CUDA" if torch.version.cuda is None
                   else "torch finds no CUDA GPU")
            return f"CUDA is not available ({why})"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return f"this machine has {count} CUDA device(s)"
        return None
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return None if mps is not None and mps.is_available() else "MPS is not available"
    try:
        torch.empty(0, device=dev)
    except Exception as exc:  # any other backend that torch cannot reach here
        return f"torch cannot allocate on it ({type(exc).__name__}: {exc})"
    return None


def squeezed_shape(shape):
    """``shape`` without its singleton axes: a map of shape (1, H, W) pairs
    with a mask or atlas of shape (H, W)."""
    return tuple(s for s in shape if s != 1)


def _check_in(value, name, owner, constraint):
    """Raise scikit-learn's error unless ``value`` satisfies ``constraint``
    (bools refused: ``True`` is no number here)."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {constraint}. "
            f"Got {value!r} instead."
        )
    validate_parameter_constraints({name: [constraint]}, {name: value},
                                   caller_name=owner)


def check_int(value, name, owner, *, low=1):
    """Return ``value`` as an int, checked to be at least ``low``.

    Scikit-learn's ``Interval(Integral, low, None)`` constraint does the
    check (and words the error: "The 'name' parameter of owner must be an
    int in the range [low, inf). Got ... instead."); bools are refused too,
    since ``True`` is no count.
    """
    _check_in(value, name, owner, Interval(Integral, low, None, closed="left"))
    return int(value)


def check_real(value, name, owner, *, low=None, high=None, closed=None):
    """Return ``value`` as a float, checked to lie in the interval (``low``, ``high``).

    Scikit-learn's ``Interval(Real, low, high, closed=closed)`` constraint
    does the check and words the error ("The 'name' parameter of owner must
    be a float in the range [low, high]. Got ... instead."); ``None`` leaves
    a side open, and bools are refused. ``closed=None`` closes the bounds
    that are given.
    """
    if closed is None:
        closed = {(True, True): "both", (True, False): "left",
                  (False, True): "right", (False, False): "neither"}[
            (low is not None, high is not None)]
    _check_in(value, name, owner, Interval(Real, low, high, closed=closed))
    return float(value)


def to_numpy_numeric(value, name):
    """Numpy array of real numbers (or bools); ValueError naming ``name`` otherwise."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    if hasattr(value, "toarray") and hasattr(value, "nnz"):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. Use "
            "'.toarray()' to convert to a dense numpy array."
        )
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(
            f"The '{name}' parameter must be array-like of numbers. Got "
            f"{type(value).__name__} that numpy cannot convert ({exc})."
        ) from None
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: the '{name}' parameter must be real.")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            raise TypeError(f"The '{name}' parameter must hold numbers ({exc}).") from None
        except ValueError as exc:
            raise ValueError(f"The '{name}' parameter must hold numbers ({exc}).") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(
            f"The '{name}' parameter must hold numbers. Got dtype {arr.dtype} instead."
        )
    return arr


def as_batch(value, name, *, device=None, min_ndim=2, dtype=None):
    """Finite floating tensor of shape (n_samples, ...) on ``device``.

    Torch tensors keep their device (unless ``device`` is given) and floating
    dtype; other inputs become float32 (float64 arrays stay float64).
    """
    if torch.is_tensor(value):
        t = value.detach()
        if t.is_complex():
            raise ValueError(f"The '{name}' parameter must be real. Got dtype {t.dtype}.")
        if not torch.is_floating_point(t):
            t = t.float()
        finite = t.numel() == 0 or bool(torch.isfinite(t).all())
    else:
        arr = to_numpy_numeric(value, name)
        if arr.dtype != np.float64:
            arr = arr.astype(np.float32, copy=False)
        finite = bool(np.isfinite(arr).all())
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is not None:
        t = t.to(dtype)
    if device is not None:
        t = t.to(device)
    if t.ndim < min_ndim:
        raise ValueError(
            f"The '{name}' parameter must be a batch of shape (n_samples, ...) with at "
            f"least {min_ndim} axes. Got shape {tuple(t.shape)} instead. Reshape your "
            "data, e.g. with X.reshape(1, -1) for a single sample."
        )
    if t.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(t.shape)}) while a minimum of 1 "
            f"is required for '{name}'."
        )
    if t.ndim >= 2 and min(t.shape[1:]) == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(t.shape)}) while a minimum of 1 "
            f"is required for '{name}'."
        )
    if not finite:
        bad = "NaN" if bool(torch.isnan(t).any()) else "infinity"
        raise ValueError(f"The '{name}' parameter contains {bad}; metrics need finite values.")
    return t


def check_choice(value, name, owner, choices):
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a str among {sorted(choices)}. "
            f"Got {value!r} instead."
        )
    return value
