"""Reading an imzML pair: its layout, its m/z axis and its spectra.

The readers that :mod:`.io` (whole files and chunks) and :mod:`._lazy` (rows
on demand) share: opening a file (layout, axis and dtype checked), reading
rows in any order onto an axis, and reading a continuous file's intensity
block straight into an array.
"""

from __future__ import annotations

import numpy as np

from .._batching import MEMORY_BUDGETS, iter_slices
from ._axis import Axis, fill, make_axis
from ._fileio import first_nonfinite, open_checked, read_exactly
from ._layout import parse
from ._resample import check_positive_int


def _check_dtype(dtype):
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(
            "The 'dtype' parameter of read_imzml must be a floating dtype or None. "
            f"Got {dtype} instead."
        )
    return dtype


#: Working set of one vectorised binning pass: small enough to stay in cache.
_WORKING_SET = MEMORY_BUDGETS["binning_pass"]


def _per_pixel_bytes(layout, axis, dtype):
    longest = int(layout.int_lengths.max())
    # raw values, m/z values and int64 scatter indices, plus the float64 output row
    return longest * (layout.int_dtype.itemsize + layout.mz_dtype.itemsize + 16) \
        + axis.n * (8 + dtype.itemsize)


def _chunk_rows(layout, axis, dtype, chunk_size, budget):
    if chunk_size is not None:
        return check_positive_int(chunk_size, "chunk_size", "iter_imzml")
    return max(int(budget // max(_per_pixel_bytes(layout, axis, dtype), 1)), 1)


def check_finite_intensities(layout, X, rows):
    """Raise naming the spectrum when ``X`` (spectra ``rows``) holds NaN or infinity.

    NaN or infinite intensities are no valid spectrum: they come from a
    damaged .ibd file (bytes overwritten), whatever its checksum says.
    """
    bad = first_nonfinite(X)
    if bad is not None:
        row = int(rows[bad])
        x, y, z = (int(v) for v in layout.coords[row])
        raise ValueError(
            f"The binary file {str(layout.ibd)!r} holds NaN or infinity in the "
            f"intensities of spectrum {row} (pixel x={x}, y={y}, z={z}) of {str(layout.imzml)!r}: no "
            "valid spectrum holds them, so the file is damaged (verify_checksum=True "
            "compares it with the checksum its imzML file declares)."
        )
    return X


def read_index(layout, rows, axis, dtype):
    """Spectra ``rows`` (any order) on ``axis``; binning runs in cache-sized passes.

    The .ibd is compared with the identity recorded when it was parsed before
    every read, and NaN or infinite intensities raise.
    """
    rows = np.asarray(rows, dtype=np.int64)
    direct = layout.continuous and axis.edges is None
    sub = len(rows) if direct else _chunk_rows(layout, axis, dtype, None, _WORKING_SET)
    if sub >= len(rows):
        out = np.ascontiguousarray(fill(layout, rows, axis, dtype))
    else:
        out = np.empty((len(rows), axis.n), dtype=dtype)
        for sl in iter_slices(len(rows), sub):
            out[sl] = fill(layout, rows[sl], axis, dtype)
    return check_finite_intensities(layout, out, rows)


def regular_block(layout, axis):
    """Byte offset of the intensities when they form one (n_pixels, n_mz) block, or None.

    That is: a continuous file read on its own, uncropped m/z axis, whose
    spectra follow each other at regular offsets with no gap.
    """
    if not layout.continuous or axis.edges is not None or layout.n_pixels < 1:
        return None
    L = int(layout.int_lengths[0])
    if axis.n != L or not np.array_equal(np.asarray(axis.mz), layout.shared_mz):
        return None
    if np.any(layout.int_lengths != L) or np.any(
            np.diff(layout.int_offsets) != L * layout.int_dtype.itemsize):
        return None
    return int(layout.int_offsets[0])


#: Bytes read per step of a block read: each step is checked for NaN and infinity
#: while it is still in cache.
_READ_STEP = 4 * 2**20


def _read_block(layout, offset, dtype):
    """The whole intensity block, read straight into the returned array.

    Sequential ``readinto`` steps of about ``_READ_STEP`` bytes on the
    calling thread (threads sharing the read measured faster on some calls
    only: 10 consecutive reads of the 2,000 x 20,000 file of
    ``benchmarks/bench_ims_scale.py`` on a loaded 2-core machine took 0.07
    to 0.89 s with 3 threads, 0.08 to 0.16 s with one), straight into ``X``
    when the file's dtype is the one asked for, else through a bounded
    buffer converted into place. Each step is checked for NaN and infinity
    while in cache.
    """
    n, L = layout.n_pixels, int(layout.int_lengths[0])
    X = np.empty((n, L), dtype=dtype)
    direct = dtype == layout.int_dtype
    rows = max(int(_READ_STEP // max(L * layout.int_dtype.itemsize, 1)), 1)
    buf = None if direct else np.empty((min(rows, n), L), dtype=layout.int_dtype)
    with open_checked(layout.ibd, layout.ibd_identity) as f:
        f.seek(offset)
        for sl in iter_slices(n, rows):
            part = X[sl] if direct else buf[: sl.stop - sl.start]
            read_exactly(f, part, layout.ibd)
            check_finite_intensities(layout, part, np.arange(sl.start, sl.stop))
            if not direct:
                X[sl] = part
    return X


def _read_rows(layout, start, stop, axis, dtype):
    """Spectra ``start:stop`` on ``axis``."""
    return read_index(layout, np.arange(start, stop), axis, dtype)


def _check_flag(value, name, caller):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"The '{name}' parameter of {caller} must be a bool. Got {value!r} instead."
        )
    return bool(value)


def open_layout(path, mz_range, bin_width, n_bins, mz, dtype, verify_checksum=False,
          caller="read_imzml"):
    verify_checksum = _check_flag(verify_checksum, "verify_checksum", caller)
    layout = parse(path, verify_checksum=verify_checksum)
    if all(v is None for v in (mz_range, bin_width, n_bins, mz)) \
            and layout.shared_mz is not None \
            and layout.shared_mz.size:
        axis = Axis(layout.shared_mz)  # make_axis's answer, without reading the data range
    else:
        axis = make_axis(layout, mz_range=mz_range, bin_width=bin_width, n_bins=n_bins,
                         mz=mz)
    dtype = _check_dtype(dtype)
    if dtype is None:
        dtype = layout.int_dtype if layout.int_dtype.kind == "f" else np.dtype(np.float64)
    return layout, axis, dtype
