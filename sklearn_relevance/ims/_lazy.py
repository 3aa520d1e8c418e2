"""Lazy spectra: an array-like ``X`` that reads rows of an imzML file on demand.

``read_imzml(path, lazy=True).X`` is a :class:`LazySpectra`: it has the
shape and dtype of the array a full read would give, but holds only the
parsed layout. Indexing rows (a fold, a batch) gives another lazy view;
:meth:`LazySpectra.read`, integer or column indexing and ``np.asarray``
read just those spectra, with explicit reads (never from a memory map, which
kills the process with SIGBUS when the file shrinks) after the .ibd is
compared with the identity it had when parsed: a truncated, rewritten or
renamed-over file raises ``ValueError``. Estimators stream it batch by batch
(:mod:`sklearn_relevance._stream`). A lazy X pickles as its file path, reader
options, row indices and a fingerprint of the pair (UUID, sizes and
modification times of both files): joblib workers reopen the file instead of
receiving arrays, and refuse a file that is no longer the one pickled.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from numbers import Integral

import numpy as np

from .._batching import DEFAULT_MEMORY_BUDGET, iter_slices

#: Parsed files kept per process (workers reopen the same file for every task).
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 4


class _Source:
    """One opened file: layout, axis, output dtype, and the options that made them."""

    def __init__(self, path, options, layout, axis, dtype):
        self.path, self.options = str(path), options
        self.layout, self.axis, self.dtype = layout, axis, np.dtype(dtype)
        self._memmap = None

    @property
    def memmap(self):
        """Read-only memmap of the intensities (continuous, regular files), made on demand.

        For the caller only: reads never go through it (a map over a file
        that shrinks ends the process with SIGBUS).
        """
        if self._memmap is None:
            self._memmap = _memmap_view(self.layout, self.axis)
        return self._memmap

    @property
    def fingerprint(self):
        """What a reopened file must match: UUID, sizes and mtimes of both files, shape."""
        lay = self.layout
        return {"uuid": lay.metadata.get("uuid"), "shape": (lay.n_pixels, self.axis.n),
                "imzml": (lay.imzml_identity.size, lay.imzml_identity.mtime_ns),
                "ibd": (lay.ibd_identity.size, lay.ibd_identity.mtime_ns)}

    @property
    def n_pixels(self):
        return self.layout.n_pixels

    def read(self, rows):
        """Spectra ``rows`` (file positions, any order) as an (len(rows), n_mz) array."""
        from ._reader import read_index

        return read_index(self.layout, np.asarray(rows, dtype=np.int64), self.axis,
                          self.dtype)


def _memmap_view(layout, axis):
    """Read-only (n_pixels, n_mz) memmap of a continuous file's intensities, or None.

    Only when the spectra lie at regular offsets and the axis is the file's
    own, uncropped.
    """
    from ._reader import regular_block

    offset = regular_block(layout, axis)
    if offset is None:
        return None
    from ._fileio import check_identity

    check_identity(layout.ibd, layout.ibd_identity, os.stat(layout.ibd))
    return np.memmap(layout.ibd, dtype=layout.int_dtype, mode="r", offset=offset,
                     shape=(layout.n_pixels, int(layout.int_lengths[0])))


def _key(path, options):
    """Everything that can change a source: both files' identities and the options."""
    from pathlib import Path

    from ._fileio import file_identity
    from ._layout import check_regular, find_ibd

    imzml = Path(path)
    st = check_regular(imzml, "imzML file")
    frozen = tuple((k, v.tobytes() if isinstance(v, np.ndarray) else v)
                   for k, v in sorted(options.items()))
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
            file_identity(find_ibd(imzml)), frozen)


def open_source(path, options, *, verify_checksum=False):
    """The :class:`_Source` of ``path`` read with ``options`` (cached per process)."""
    from ._reader import open_layout

    key = _key(path, options)
    if not verify_checksum and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    layout, axis, dtype = open_layout(path, options["mz_range"], options["bin_width"],
                                options["n_bins"], options["mz"], options["dtype"],
                                verify_checksum)
    source = _Source(path, options, layout, axis, dtype)
    _CACHE[key] = source
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return source


def _reopen(path, options, rows, transforms, fingerprint=None):
    source = open_source(path, options)
    if fingerprint is not None and source.fingerprint != fingerprint:
        now = source.fingerprint
        what = [k for k in ("uuid", "shape", "imzml", "ibd") if now[k] != fingerprint[k]]
        raise ValueError(
            f"The imzML pair {path!r} changed after this LazySpectra was pickled "
            f"(differs in {', '.join(what)}: pickled {[fingerprint[k] for k in what]}, "
            f"now {[now[k] for k in what]}); its rows would be read from other data. "
            "Read the file again with read_imzml."
        )
    return LazySpectra(source, rows, transforms)


def _row_positions(key, n):
    """Positions ``0 .. n-1`` selected by a row key (slice, ints, bools)."""
    if isinstance(key, slice):
        return np.arange(n)[key]
    key = np.asarray(key)
    if key.dtype == bool:
        if key.shape != (n,):
            raise IndexError(
                f"Boolean index of shape {key.shape} does not match {n} rows."
            )
        return np.flatnonzero(key)
    if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
        raise IndexError(
            "Rows of a LazySpectra are selected by a slice, a 1D integer array or a "
            f"boolean mask. Got {key!r} instead."
        )
    if key.size and (key.min() < -n or key.max() >= n):
        raise IndexError(f"Row index out of range for {n} rows.")
    return np.where(key < 0, key + n, key)


class LazySpectra:
    """Spectra of an imzML file, read from disk row by row on demand.

    Made by :func:`~sklearn_relevance.ims.read_imzml` with ``lazy=True``;
    behaves like the (n_pixels, n_mz) array a full read returns, without
    holding it.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    rows : ndarray of shape (n_rows,)
        Position of every row among the file's spectra.
    transforms : tuple of transformers
        Fitted transformers applied in turn to every batch of rows read
        (see :meth:`map`).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import read_imzml, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.imzML")
    >>> write_imzml(path, np.arange(12.0).reshape(4, 3), [[1, 1], [2, 1], [1, 2], [2, 2]],
    ...             [100.0, 200.0, 300.0])
    >>> X = read_imzml(path, lazy=True).X
    >>> X.shape, X[[3, 1]].shape
    ((4, 3), (2, 3))
    >>> X[[3, 1]].read()
    array([[ 9., 10., 11.],
           [ 3.,  4.,  5.]], dtype=float32)
    """

    _streams_rows = True  # estimators read it batch by batch (sklearn_relevance._stream)
    ndim = 2

    def __init__(self, source, rows=None, transforms=()):
        self._source = source
        rows = np.arange(source.n_pixels) if rows is None else np.asarray(rows, np.int64)
        rows.setflags(write=False)
        self.rows = rows
        self.transforms = tuple(transforms)
        self._n_out = source.axis.n
        self._dtype = source.dtype
        if self.transforms:
            probe = self._apply(source.read([0]))
            self._n_out, self._dtype = probe.shape[1], probe.dtype

    def _apply(self, batch):
        for t in self.transforms:
            batch = t.transform(batch)
        return batch

    @property
    def shape(self):
        return (len(self.rows), self._n_out)

    @property
    def dtype(self):
        return self._dtype

    @property
    def path(self):
        """The .imzML file."""
        return self._source.path

    @property
    def memmap(self):
        """Read-only memmap of all the file's intensities (continuous files), or None."""
        return self._source.memmap

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return (f"LazySpectra(path={self.path!r}, shape={self.shape}, "
                f"dtype={self.dtype}, transforms={len(self.transforms)})")

    def read(self, rows=None):
        """Read rows (positions in this view; all when None) into an array.

        Parameters
        ----------
        rows : array-like of int or None

        Returns
        -------
        ndarray of shape (len(rows), n_mz)
        """
        pos = np.arange(len(self.rows)) if rows is None else _row_positions(rows, len(self))
        return self._apply(self._source.read(self.rows[pos]))

    def _read_columns(self, pos, cols):
        n_cols = self._n_out
        chunk = max(int(DEFAULT_MEMORY_BUDGET // max(n_cols * 8, 1)), 1)
        parts = [self.read(pos[sl])[:, cols] for sl in iter_slices(len(pos), chunk)]
        if not parts:
            return np.empty((0, n_cols), self.dtype)[:, cols]
        return np.concatenate(parts)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            elif len(key) == 2:
                rows, cols = key
                if isinstance(rows, Integral):
                    return self.read([rows])[0, cols]
                return self._read_columns(_row_positions(rows, len(self)), cols)
            else:
                raise IndexError(f"LazySpectra takes at most 2 indices. Got {key!r}.")
        if isinstance(key, Integral):
            return self.read([key])[0]
        pos = _row_positions(key, len(self))
        return LazySpectra(self._source, self.rows[pos], self.transforms)

    def convert_to_tensors(self, kind=None):
        """Refuse a direct conversion (skorch's ``to_tensor`` asks through this).

        Batches are read through estimators' ``fit``/``predict``; other
        consumers (``explain``, explainers, metrics) take arrays.
        """
        raise TypeError(
            f"{self!r} is read batch by batch only by fit, partial_fit and predict; "
            "explain and the relevance metrics take arrays: pass X[rows].read() "
            "(the rows to explain)."
        )

    def __array__(self, dtype=None, copy=None):
        out = self.read()
        return out if dtype is None else out.astype(dtype, copy=False)

    def map(self, transformer, *, n_fit=1000):
        """The same rows with ``transformer`` applied to every batch read.

        Parameters
        ----------
        transformer : scikit-learn transformer
            Row-wise preprocessing (e.g. :class:`~sklearn_relevance.ims.TICNormalizer`,
            a pipeline of such steps). Fitted on ``n_fit`` evenly spaced rows
            when it is not fitted yet (stateless steps only check the width).
        n_fit : int, default=1000

        Returns
        -------
        LazySpectra
        """
        from sklearn.base import clone
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(transformer)
        except NotFittedError:
            n = len(self.rows)
            sample = np.unique(np.linspace(0, n - 1, min(n, int(n_fit))).astype(np.int64))
            transformer = clone(transformer).fit(self.read(sample))
        return LazySpectra(self._source, self.rows, (*self.transforms, transformer))

    def __reduce__(self):
        return _reopen, (self._source.path, self._source.options, self.rows,
                         self.transforms, self._source.fingerprint)
