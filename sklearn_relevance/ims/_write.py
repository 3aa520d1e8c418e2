"""Checks and file handling behind :func:`~sklearn_relevance.ims.write_imzml`.

Every argument is validated (and X cast to the stored precision) before
any file is opened. Output goes to temporary files named
``.<stem>.<pid>-<random>.tmp.imzML`` / ``.ibd`` in the target folder; the
next write to the same target removes those of writers that no longer run
(a killed process), so no stale temporaries pile up. The two renames that
put a pair in place run under a lock of the target folder (:func:`pair_lock`),
so concurrent writers (threads or processes) never interleave their halves:
the last to take the lock leaves its complete pair.
"""

from __future__ import annotations

import os
import re
import time
import uuid as _uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_FLOATS = (np.float32, np.float64)


def _tmp_pattern(stem):
    return re.compile(rf"^\.{re.escape(stem)}\.(\d+)-[0-9a-f]{{12}}\.tmp\.(imzML|ibd)$")


def temporary_base(base):
    """``<folder>/.<stem>.<pid>-<random>.tmp``: the stem of this writer's temporaries."""
    return base.parent / f".{base.name}.{os.getpid()}-{_uuid.uuid4().hex[:12]}.tmp"


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's live process
        return True
    return True


def remove_stale_temporaries(base):
    """Delete temporaries of writers to ``base`` whose process no longer runs.

    Returns
    -------
    list of Path
        The files removed.
    """
    pattern = _tmp_pattern(base.name)
    removed = []
    for p in base.parent.iterdir():
        m = pattern.match(p.name)
        if m and not _alive(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:  # pragma: no cover - removed concurrently
                pass
    return removed


@contextmanager
def pair_lock(folder):
    """Hold an exclusive lock of ``folder`` (threads and processes alike).

    ``flock`` on a descriptor of the folder itself: each call opens its own
    descriptor, so threads of one process exclude each other as processes
    do, and the kernel drops the lock of a process that dies, leaving no
    file behind. Where ``fcntl`` is missing, a lock file made with
    ``O_EXCL`` (``.imzml-write.lock``, holding the writer's pid; one whose
    writer no longer runs is removed) does the same.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    if fcntl is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock
        return
    lock = Path(folder) / ".imzml-write.lock"  # pragma: no cover - not POSIX
    while True:  # pragma: no cover
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                owner = int(lock.read_text() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and not _alive(owner):
                lock.unlink(missing_ok=True)
            time.sleep(0.001)
    try:  # pragma: no cover
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:  # pragma: no cover
        lock.unlink(missing_ok=True)


def _float_dtype(value, name):
    try:
        dtype = np.dtype(value).type
    except TypeError:
        dtype = None
    if dtype not in _FLOATS:
        raise ValueError(
            f"The '{name}' parameter of write_imzml must be np.float32 or np.float64. "
            f"Got {value!r} instead."
        )
    return dtype


def _cast(values, dtype, name):
    """``values`` as ``dtype``, refusing finite values the dtype cannot hold."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(dtype)
    bad = np.isfinite(values) & ~np.isfinite(out)
    if bad.any():
        where = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
        raise ValueError(
            f"The '{name}' parameter of write_imzml holds values that overflow the "
            f"requested {np.dtype(dtype).name}: e.g. {values[where]!r} at index "
            f"{tuple(int(i) for i in where)}. Pass a wider dtype."
        )
    return out


def check_target(path):
    """The target's stem path; refuses a missing folder or directories named like outputs."""
    try:
        path = Path(path)
    except TypeError:
        raise ValueError(
            "The 'path' parameter of write_imzml must be a str or path-like. Got "
            f"{path!r} instead."
        ) from None
    if path.suffix.lower() in (".imzml", ".ibd"):
        path = path.with_suffix("")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write {str(path)!r}.imzML: folder {str(path.parent)!r} does not exist."
        )
    for ext in (".imzML", ".ibd"):
        target = path.parent / (path.name + ext)
        if target.is_dir():
            raise IsADirectoryError(
                f"Cannot write {str(target)!r}: it is a directory. Nothing was changed."
            )
    return path


def check_write_args(path, X, coords, mz, intensity_dtype, mz_dtype, spec_type,
                     polarity):
    """Validate every argument of ``write_imzml``; cast X and mz to the stored dtypes.

    Returns
    -------
    base : Path
        Target path without suffix.
    X : ndarray of intensity_dtype
    coords : ndarray of int64, shape (n_pixels, 3)
    mz : ndarray of mz_dtype
    """
    base = check_target(path)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            "The 'X' parameter of write_imzml must be a non-empty 2D array "
            f"(n_pixels, n_mz). Got shape {X.shape} instead."
        )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)
            or X.dtype == bool):
        raise ValueError(
            "The 'X' parameter of write_imzml must hold real numbers. Got dtype "
            f"{X.dtype} instead."
        )
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[0] != X.shape[0] or coords.shape[1] not in (2, 3):
        raise ValueError(
            "The 'coords' parameter of write_imzml must have shape (n_pixels, 2) or "
            f"(n_pixels, 3) with n_pixels={X.shape[0]}. Got shape {coords.shape} instead."
        )
    if not np.issubdtype(coords.dtype, np.number) or not np.all(np.isfinite(coords)) \
            or np.any(coords != np.round(coords)) or np.any(coords < 1):
        raise ValueError(
            "The 'coords' parameter of write_imzml must hold 1-based integer pixel "
            "coordinates (>= 1)."
        )
    coords = coords.astype(np.int64)
    if coords.shape[1] == 2:
        coords = np.column_stack([coords, np.ones(len(coords), np.int64)])
    if len(np.unique(coords, axis=0)) != len(coords):
        raise ValueError("The 'coords' parameter of write_imzml holds duplicate pixels.")
    try:
        mz = np.asarray(mz, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "The 'mz' parameter of write_imzml must be a 1D array of numbers. Got "
            f"{mz!r} instead."
        ) from None
    if mz.shape != (X.shape[1],) or not np.all(np.isfinite(mz)) \
            or (mz.size > 1 and not np.all(np.diff(mz) > 0)):
        raise ValueError(
            "The 'mz' parameter of write_imzml must be a strictly increasing, finite "
            f"1D array of length {X.shape[1]} (X's columns). Got shape {mz.shape} "
            "instead."
        )
    if intensity_dtype is None:
        intensity_dtype = X.dtype.type if X.dtype.kind == "f" else np.float32
    intensity_dtype = _float_dtype(intensity_dtype, "intensity_dtype")
    mz_dtype = _float_dtype(mz_dtype, "mz_dtype")
    if spec_type not in ("profile", "centroid"):
        raise ValueError(
            "The 'spec_type' parameter of write_imzml must be 'profile' or 'centroid'. "
            f"Got {spec_type!r} instead."
        )
    if polarity is not None and polarity not in ("positive", "negative"):
        raise ValueError(
            "The 'polarity' parameter of write_imzml must be 'positive', 'negative' or "
            f"None. Got {polarity!r} instead."
        )
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        row, col = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
        raise ValueError(
            "The 'X' parameter of write_imzml must hold finite values (NaN or infinity "
            "is no intensity, and read_imzml refuses it as a damaged file). Got "
            f"{X[row, col]!r} at row {row}, column {col} instead."
        )
    X = _cast(X, intensity_dtype, "X")
    mz_out = _cast(mz, mz_dtype, "mz")
    if mz_out.size > 1 and not np.all(np.diff(mz_out) > 0):
        raise ValueError(
            "The 'mz' parameter of write_imzml holds values that the requested "
            f"mz_dtype {np.dtype(mz_dtype).name} cannot tell apart (the stored axis "
            "would not be strictly increasing). Pass mz_dtype=np.float64."
        )
    return base, X, coords, mz_out
