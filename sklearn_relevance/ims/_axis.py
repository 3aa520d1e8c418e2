"""The m/z axis a reader puts spectra on, and vectorised binning onto it.

Two kinds of axes: *exact* (a continuous file's own axis, or the union of a
processed file's m/z values; every intensity lands in the column of its own
m/z value) and *binned* (edges; intensities are summed per bin). Both are
filled with one ``np.bincount`` over the concatenated spectra of a chunk, so
the two storage modes of the same data give identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._batching import iter_slices
from ._fileio import first_nonfinite
from ._layout import check_finite_mz, read_blocks, spectra_of
from ._resample import check_positive_int, edges_from_centres, uniform_edges


@dataclass
class Axis:
    """Target m/z axis: ``mz`` (column values) and, when binned, ``edges``."""

    mz: np.ndarray
    edges: np.ndarray | None = None

    @property
    def n(self):
        return len(self.mz)

    def columns(self, mzs):
        """Column of every m/z value, ``n`` (one past the last) where it falls outside."""
        nb = self.n
        if self.edges is None:
            col = np.minimum(np.searchsorted(self.mz, mzs), nb - 1)
            return np.where(self.mz[col] == mzs, col, nb)
        e = self.edges
        if self.uniform:  # arithmetic bin index, corrected against the edges (np.histogram)
            col = ((mzs - e[0]) * (nb / (e[-1] - e[0]))).astype(np.int64)
            np.clip(col, 0, nb - 1, out=col)
            col -= mzs < e[col]
            col += (mzs >= e[col + 1]) & (col < nb - 1)
        else:
            col = np.searchsorted(e, mzs, side="right") - 1
            col[mzs == e[-1]] = nb - 1  # last edge is inclusive, as np.histogram
        col[(mzs < e[0]) | (mzs > e[-1])] = nb
        return col

    @property
    def uniform(self):
        e = self.edges
        return e is not None and e.size > 2 and np.allclose(np.diff(e), e[1] - e[0],
                                                           rtol=1e-9, atol=0)


def check_range(mz_range, name):
    """Validate ``mz_range`` as a finite (low, high) pair with low < high."""
    if mz_range is None:
        return None
    try:
        lo, hi = (float(v) for v in mz_range)
    except (TypeError, ValueError):
        raise ValueError(
            "The 'mz_range' parameter of read_imzml must be a (low, high) pair of "
            f"numbers or None. Got {mz_range!r} instead."
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(
            "The 'mz_range' parameter of read_imzml must satisfy low < high. Got "
            f"{mz_range!r} instead."
        )
    return lo, hi


def data_range(layout):
    """(min, max) m/z of a file, from each spectrum's first and last value."""
    s = layout.mz_dtype.itemsize
    nonempty = layout.mz_lengths > 0
    offs = layout.mz_offsets[nonempty]
    last = offs + (layout.mz_lengths[nonempty] - 1) * s
    both = np.concatenate([offs, last])
    vals = read_blocks(layout.ibd, both, np.ones(len(both), np.int64), layout.mz_dtype,
                       layout.ibd_identity)
    rows = np.flatnonzero(nonempty)
    check_finite_mz(layout, vals.reshape(2, -1).T, rows)
    return float(vals.min()), float(vals.max())


def _union_mz(layout, chunk):
    union = np.empty(0, dtype=layout.mz_dtype)
    for sl in iter_slices(layout.n_pixels, chunk):
        rows = np.arange(sl.start, sl.stop)
        mzs = read_blocks(layout.ibd, layout.mz_offsets[rows], layout.mz_lengths[rows],
                          layout.mz_dtype, layout.ibd_identity)
        _check_spectra_mz(layout, mzs, layout.mz_lengths[rows], rows)
        union = np.union1d(union, mzs)
    return union


def _check_spectra_mz(layout, mzs, lengths, rows):
    """Raise naming the spectrum when the concatenated m/z arrays ``mzs`` hold NaN/inf."""
    if first_nonfinite(mzs[None, :]) is None:
        return
    bad = np.flatnonzero(~np.isfinite(mzs))[0]
    spectrum = np.searchsorted(np.cumsum(lengths), bad, side="right")
    check_finite_mz(layout, mzs[None, bad:bad + 1], rows[spectrum:spectrum + 1])


def _edges_from_centers(mz):
    mz = np.asarray(mz, dtype=np.float64)
    if mz.ndim != 1 or mz.size < 1 or not np.all(np.isfinite(mz)):
        raise ValueError(
            "The 'mz' parameter of read_imzml must be a 1D array of finite m/z "
            f"values. Got shape {mz.shape} instead."
        )
    if mz.size > 1 and not np.all(np.diff(mz) > 0):
        raise ValueError(
            "The 'mz' parameter of read_imzml must be strictly increasing."
        )
    return edges_from_centres(mz)


def make_axis(layout, *, mz_range=None, bin_width=None, n_bins=None, mz=None,
              chunk=4096):
    """Resolve the reader's axis options against one file.

    Raises ``ValueError`` naming the file when ``mz_range`` lies outside
    its data, and for conflicting or malformed options.
    """
    name = str(layout.imzml)
    given = [k for k, v in (("bin_width", bin_width), ("n_bins", n_bins), ("mz", mz))
             if v is not None]
    if len(given) > 1:
        raise ValueError(
            "Pass at most one of 'bin_width', 'n_bins' and 'mz' to read_imzml. Got "
            f"{given} instead."
        )
    if mz is not None and mz_range is not None:
        raise ValueError("Pass either 'mz' or 'mz_range' to read_imzml, not both.")
    rng = check_range(mz_range, name)
    if mz is not None:
        edges = _edges_from_centers(mz)
        lo, hi = data_range(layout)
        if edges[-1] < lo or edges[0] > hi:
            raise ValueError(
                f"The requested m/z axis [{edges[0]:g}, {edges[-1]:g}] lies outside the "
                f"data of {name!r} (m/z {lo:g} to {hi:g})."
            )
        return Axis(np.asarray(mz, dtype=np.float64), edges)
    lo, hi = data_range(layout)
    if rng is not None:
        if rng[1] < lo or rng[0] > hi:
            raise ValueError(
                f"The 'mz_range' {tuple(rng)} lies outside the data of {name!r} "
                f"(m/z {lo:g} to {hi:g})."
            )
        lo, hi = rng
    if bin_width is not None:
        if not (np.isscalar(bin_width) and np.isfinite(bin_width) and bin_width > 0):
            raise ValueError(
                "The 'bin_width' parameter of read_imzml must be a positive number. "
                f"Got {bin_width!r} instead."
            )
        edges = uniform_edges(lo, hi, bin_width=bin_width)
        return Axis((edges[:-1] + edges[1:]) / 2, edges)
    if n_bins is not None:
        edges = uniform_edges(lo, hi, n_bins=check_positive_int(n_bins, "n_bins",
                                                                "read_imzml"))
        return Axis((edges[:-1] + edges[1:]) / 2, edges)
    values = layout.shared_mz
    if values is None:
        values = _union_mz(layout, chunk)
    if rng is not None:
        values = values[(values >= rng[0]) & (values <= rng[1])]
        if values.size == 0:
            raise ValueError(
                f"The 'mz_range' {tuple(rng)} holds no m/z value of {name!r}."
            )
    return Axis(values)


def fill(layout, rows, axis, dtype):
    """Spectra ``rows`` of a file on ``axis``: array (len(rows), axis.n)."""
    rows = np.asarray(rows, dtype=np.int64)
    n, nb = len(rows), axis.n
    if layout.continuous:
        _, ints, lengths = spectra_of(layout, rows, mz=False)
        ints = ints.reshape(n, -1)
        cols = axis.columns(layout.shared_mz)
        keep = cols < nb
        if axis.edges is None:  # the file's own axis, maybe cropped: a column copy
            if cols.size == nb and np.array_equal(cols, np.arange(nb)):
                return ints.astype(dtype, copy=False)
            out = np.zeros((n, nb), dtype=dtype)
            out[:, cols[keep]] = ints[:, keep]
            return out
        flat = (np.arange(n, dtype=np.int64)[:, None] * (nb + 1) + cols[None, :]).ravel()
    else:
        mzs, ints, lengths = spectra_of(layout, rows)
        _check_spectra_mz(layout, mzs, lengths, rows)
        flat = axis.columns(mzs)
        flat += np.repeat(np.arange(n, dtype=np.int64) * (nb + 1), lengths)
    # one extra column per row collects what falls outside the axis, then is dropped
    out = np.bincount(flat, weights=ints.ravel().astype(np.float64, copy=False),
                      minlength=n * (nb + 1))
    return out.reshape(n, nb + 1)[:, :nb].astype(dtype, copy=True)
