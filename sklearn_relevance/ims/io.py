"""Read and write imzML files (imaging mass spectrometry).

Our byte-scan parser (:mod:`._parser`, pyimzML's results exactly) reads the
XML, and the .ibd must carry the XML's UUID. Intensities are read in bulk
from the .ibd file (no Python loop over spectra), or on demand with
``lazy=True``; processed-mode spectra are binned onto a common m/z axis with
one vectorised sum per chunk, and files larger than memory stream in chunks
bounded by a memory budget. Writing goes
through pyimzml's :class:`~pyimzml.ImzMLWriter.ImzMLWriter` under temporary
names, then both files are renamed into place.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._batching import DEFAULT_MEMORY_BUDGET, MEMORY_BUDGETS, iter_slices
from ._layout import sanitize_name
from ._lazy import LazySpectra, open_source
from ._reader import (
    _check_dtype,
    _check_flag,
    _chunk_rows,
    _read_block,
    _read_rows,
    open_layout,
    regular_block,
)

__all__ = ["IMSData", "iter_imzml", "read_imzml", "write_imzml"]

#: one pyimzML writer constructed at a time (see write_imzml)
_TEMPLATE_LOCK = threading.Lock()


@dataclass
class IMSData:
    """Spectra of one imzML file (or one chunk of it) on a common m/z axis.

    Attributes
    ----------
    X : ndarray or LazySpectra of shape (n_pixels, n_mz)
        Intensities, one row per pixel (spectrum), in the file's order
        (a :class:`LazySpectra` reading rows on demand for ``lazy=True``).
    coords : ndarray of shape (n_pixels, 3)
        1-based (x, y, z) pixel coordinates.
    mz : ndarray of shape (n_mz,)
        m/z value of every column (bin centres when binned).
    metadata : dict
        The file's metadata as pyimzml reports it, plus ``continuous``
        (storage mode) and ``uuid``.
    path : str
        The .imzML file.
    index : ndarray of shape (n_pixels,)
        Position of every row among the file's spectra (chunks of
        :func:`iter_imzml` cover consecutive ranges).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.ims import IMSData
    >>> data = IMSData(np.ones((2, 3)), np.array([[1, 1, 1], [2, 1, 1]]),
    ...                np.array([100.0, 200.0, 300.0]))
    >>> data.image(data.X.sum(axis=1))
    array([[3., 3.]])
    """

    X: np.ndarray
    coords: np.ndarray
    mz: np.ndarray
    metadata: dict = field(default_factory=dict)
    path: str = ""
    index: np.ndarray | None = None

    @property
    def shape(self):
        """``(n_pixels, n_mz)``."""
        return self.X.shape

    def image(self, values, *, z=None, fill_value=np.nan):
        """Arrange one value per pixel as an image of shape (n_y, n_x).

        Parameters
        ----------
        values : array-like of shape (n_pixels,)
            One value per pixel (an ion's intensity, a prediction, a relevance).
        z : int or None
            Slice to show for 3D data; None takes every pixel.
        fill_value : float, default=nan
            Value of positions no spectrum covers.

        Returns
        -------
        ndarray of shape (max y, max x)

        Raises
        ------
        ValueError
            Coordinates below 1 (imzML's are 1-based), two spectra at one
            pixel (naming it), or an image larger than ``IMAGE_BUDGET``
            bytes (1 GiB), refused before anything is allocated.
        """
        values = np.asarray(values)
        if values.shape != (len(self.coords),):
            raise ValueError(
                "The 'values' parameter of IMSData.image must hold one value per "
                f"pixel, shape ({len(self.coords)},). Got shape {values.shape} instead."
            )
        coords = np.asarray(self.coords)
        keep = np.ones(len(values), bool) if z is None else coords[:, 2] == z
        x, y = coords[keep, 0].astype(np.int64), coords[keep, 1].astype(np.int64)
        if not keep.any():
            raise ValueError(f"No pixel of {self.path or 'this IMSData'!r} lies at z={z!r}.")
        _check_image_pixels(self.path, coords, keep, x, y)
        dtype = np.result_type(values.dtype, np.float32)
        shape = (int(y.max()), int(x.max()))
        nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
        if nbytes > IMAGE_BUDGET:
            raise ValueError(
                f"The image of {self.path or 'this IMSData'!r} would be {shape[0]} x "
                f"{shape[1]} pixels ({nbytes / 2**20:.0f} MiB), more than the "
                f"{IMAGE_BUDGET // 2**20} MiB an image may take: its coordinates reach "
                f"x={shape[1]}, y={shape[0]}. Crop the coordinates first, or check them "
                "(a malformed file?)."
            )
        out = np.full(shape, fill_value, dtype=dtype)
        out[y - 1, x - 1] = values[keep]
        return out

    def ion_image(self, mz_value, tol=0.5):
        """Image of the summed intensity within ``mz_value +- tol``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_relevance.ims import IMSData
        >>> data = IMSData(np.eye(2), np.array([[1, 1, 1], [2, 1, 1]]),
        ...                np.array([100.0, 200.0]))
        >>> data.ion_image(200.0)
        array([[0., 1.]])
        """
        cols = np.abs(self.mz - mz_value) <= tol
        if not cols.any():
            raise ValueError(
                f"No column of the m/z axis lies within {mz_value} +- {tol}."
            )
        return self.image(self.X[:, cols].sum(axis=1))


#: Bytes an image of :meth:`IMSData.image` may take (a coordinate of 10^9 is refused
#: before allocating, not answered with MemoryError): 1 GiB, 16,384^2 float32 pixels.
IMAGE_BUDGET = MEMORY_BUDGETS["ims_image"]


def _check_image_pixels(path, coords, keep, x, y):
    """Refuse coordinates below 1 and two spectra at one pixel, naming them."""
    name = repr(path) if path else "this IMSData"
    for axis, v in (("x", x), ("y", y)):
        if v.min() < 1:
            i = int(np.flatnonzero(keep)[np.argmin(v)])
            raise ValueError(
                f"Pixel coordinates of {name} are 1-based, but spectrum {i} lies at "
                f"{axis}={int(v.min())}; it would wrap round to the other side of the "
                "image."
            )
    if len(x) > 1:
        flat = (y - 1) * (int(x.max()) + 1) + (x - 1)
        order = np.argsort(flat, kind="stable")
        same = np.flatnonzero(flat[order][1:] == flat[order][:-1])
        if same.size:
            i, j = (int(np.flatnonzero(keep)[order[k]]) for k in (same[0], same[0] + 1))
            xyz = tuple(int(c) for c in coords[i])
            raise ValueError(
                f"Spectra {i} and {j} of {name} lie at the same pixel (x, y, z) = {xyz}; "
                "an image holds one value per pixel (pass z= for one slice of 3D data, "
                "or select the spectra to show)."
            )


def _public_metadata(layout):
    return dict(layout.metadata)


def read_imzml(path, *, mz_range=None, bin_width=None, n_bins=None, mz=None,
               dtype=np.float32, verify_checksum=False, lazy=False):
    """Read an imzML file into one array of spectra on a common m/z axis.

    Continuous files are read in bulk from a memory map of the .ibd file;
    processed files (one m/z array per spectrum) are put on a common axis:
    the union of their m/z values by default (lossless), or bins.

    Parameters
    ----------
    path : str or path-like
        The .imzML file; its .ibd file must lie next to it.
    mz_range : (float, float) or None
        Keep m/z values within ``[low, high]`` (and bin over this range).
    bin_width : float or None
        Sum intensities into bins of this width (in m/z units).
    n_bins : int or None
        Sum intensities into this many equal bins over ``mz_range`` (or the
        data's range).
    mz : array-like of shape (n_mz,) or None
        Bin centres of a given axis (edges half-way between centres), e.g.
        the ``mz`` of another file so that both share columns.
    dtype : floating dtype or None, default=np.float32
        dtype of ``X``; None keeps the file's own precision.
    verify_checksum : bool, default=False
        Hash the whole .ibd file and compare it with the SHA-1 or MD5 the
        .imzML declares; a file that declares none raises ``ValueError``.
        (The UUID shared by both files is compared on every read.)
    lazy : bool, default=False
        Parse the file but read no spectrum: ``X`` is then a
        :class:`~sklearn_relevance.ims.LazySpectra` that reads rows on
        demand (a read-only memmap for continuous files, the binning reader
        for processed ones). Indexing rows gives another lazy view; the
        estimators train on it batch by batch without materialising it, and
        it pickles as path + options + row indices.

    Returns
    -------
    IMSData
        ``X`` (n_pixels, n_mz), ``coords`` (n_pixels, 3), ``mz``, ``metadata``.

    Raises
    ------
    FileNotFoundError
        The .imzML or .ibd file is missing.
    ValueError
        Cut or malformed XML, a truncated .ibd, an .ibd whose UUID header
        differs from the UUID in the XML (another acquisition, or an
        interrupted write), a failed checksum, continuous spectra of
        different lengths, an ``mz_range`` outside the data, conflicting
        options.

    See Also
    --------
    iter_imzml : the same, chunk by chunk, for files larger than memory.
    write_imzml : the reverse.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import read_imzml, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.imzML")
    >>> coords = np.array([[1, 1], [2, 1]])
    >>> write_imzml(path, np.array([[1.0, 2, 3], [4, 5, 6]]), coords,
    ...             np.array([100.0, 200, 300]))
    >>> data = read_imzml(path)
    >>> data.X
    array([[1., 2., 3.],
           [4., 5., 6.]], dtype=float32)
    >>> read_imzml(path, n_bins=1).X.ravel()
    array([ 6., 15.], dtype=float32)
    """
    if _check_flag(lazy, "lazy", "read_imzml"):
        return _read_lazy(path, mz_range, bin_width, n_bins, mz, dtype, verify_checksum)
    layout, axis, dtype = open_layout(path, mz_range, bin_width, n_bins, mz, dtype,
                                verify_checksum)
    block = regular_block(layout, axis)
    chunk = _chunk_rows(layout, axis, dtype, None, DEFAULT_MEMORY_BUDGET)
    if block is not None:  # the intensities are one (n_pixels, n_mz) block of the .ibd
        X = _read_block(layout, block, dtype)
    elif chunk >= layout.n_pixels:  # one block: no second copy into a preallocated array
        X = _read_rows(layout, 0, layout.n_pixels, axis, dtype)
    else:
        X = np.empty((layout.n_pixels, axis.n), dtype=dtype)
        for sl in iter_slices(layout.n_pixels, chunk):
            X[sl] = _read_rows(layout, sl.start, sl.stop, axis, dtype)
    return IMSData(X, layout.coords.copy(), np.asarray(axis.mz).copy(),
                   _public_metadata(layout), str(layout.imzml),
                   np.arange(layout.n_pixels))


def _read_lazy(path, mz_range, bin_width, n_bins, mz, dtype, verify_checksum):
    if mz is not None:
        mz = np.asarray(mz, dtype=np.float64)
    if isinstance(mz_range, (list, np.ndarray)):
        mz_range = tuple(np.asarray(mz_range).tolist())
    dtype = _check_dtype(dtype)
    options = {"mz_range": mz_range, "bin_width": bin_width, "n_bins": n_bins, "mz": mz,
               "dtype": None if dtype is None else dtype.str}
    source = open_source(path, options, verify_checksum=verify_checksum)
    layout = source.layout
    return IMSData(LazySpectra(source), layout.coords.copy(),
                   np.asarray(source.axis.mz).copy(), _public_metadata(layout),
                   str(layout.imzml), np.arange(layout.n_pixels))


def iter_imzml(path, *, chunk_size=None, mz_range=None, bin_width=None, n_bins=None,
               mz=None, dtype=np.float32, memory_budget=DEFAULT_MEMORY_BUDGET,
               verify_checksum=False):
    """Stream an imzML file in chunks of pixels, with memory bounded by the chunk.

    The file is parsed and validated (and the m/z axis settled) before the
    first chunk is read; each chunk is read from the memory-mapped .ibd file
    and released when the next one is read.

    Parameters
    ----------
    path : str or path-like
        The .imzML file.
    chunk_size : int or None
        Pixels per chunk; None sizes chunks to ``memory_budget``.
    mz_range, bin_width, n_bins, mz, dtype, verify_checksum
        As in :func:`read_imzml`.
    memory_budget : int, default=256 MiB
        Bytes a chunk (with its temporaries) may take when ``chunk_size`` is None.

    Yields
    ------
    IMSData
        One chunk; ``index`` gives the position of its pixels in the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import iter_imzml, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.imzML")
    >>> coords = np.array([[1, 1], [2, 1], [3, 1]])
    >>> write_imzml(path, np.arange(6.0).reshape(3, 2), coords, np.array([1.0, 2.0]))
    >>> [chunk.X.shape for chunk in iter_imzml(path, chunk_size=2)]
    [(2, 2), (1, 2)]
    """
    layout, axis, dtype = open_layout(path, mz_range, bin_width, n_bins, mz, dtype,
                                verify_checksum, "iter_imzml")
    chunk = _chunk_rows(layout, axis, dtype, chunk_size, memory_budget)
    meta = _public_metadata(layout)
    mz_axis = np.asarray(axis.mz).copy()

    def generate():
        for sl in iter_slices(layout.n_pixels, chunk):
            yield IMSData(_read_rows(layout, sl.start, sl.stop, axis, dtype),
                          layout.coords[sl].copy(), mz_axis, meta, str(layout.imzml),
                          np.arange(sl.start, sl.stop))

    return generate()


# --------------------------------------------------------------------------- writing

def write_imzml(path, X, coords, mz, *, intensity_dtype=None, mz_dtype=np.float64,
                spec_type="profile", polarity=None):
    """Write spectra on one m/z axis as a continuous-mode imzML file, atomically.

    Every argument is checked before any file is opened. Both files are
    written by pyimzml's writer under temporary names in the target folder
    (``.<name>.<pid>-<random>.tmp.imzML`` / ``.ibd``; the next write to the
    same target removes those of a killed writer), then renamed into place,
    the .ibd first, under a lock of the target folder: writers in several
    threads or processes never interleave their halves, and the last one
    to rename leaves its complete pair. Both files carry the same UUID, and
    :func:`read_imzml` compares them: a crash between the two renames
    leaves a pair that is refused with an error, never read as garbage.
    Signed values (relevance) are kept as they are; NaN and infinity are
    refused.

    Parameters
    ----------
    path : str or path-like
        Target, with or without the ``.imzML`` suffix; ``.imzML`` and ``.ibd``
        files of this name are created (or replaced).
    X : array-like of shape (n_pixels, n_mz)
        One spectrum per pixel (intensities or relevance).
    coords : array-like of shape (n_pixels, 2) or (n_pixels, 3)
        1-based pixel coordinates.
    mz : array-like of shape (n_mz,)
        Strictly increasing m/z axis shared by all spectra.
    intensity_dtype : {np.float32, np.float64} or None
        Stored precision; None keeps X's float dtype (float32 for integers).
        Finite values that overflow it raise ``ValueError``.
    mz_dtype : {np.float64, np.float32}, default=np.float64
    spec_type : {"profile", "centroid"}, default="profile"
    polarity : {"positive", "negative"} or None

    Returns
    -------
    None

    Raises
    ------
    ValueError
        A malformed argument, or values the requested dtypes cannot hold.
    FileNotFoundError
        The target folder does not exist.
    IsADirectoryError
        The target .imzML or .ibd is a directory (nothing is changed).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import read_imzml, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "relevance.imzML")
    >>> R = np.array([[-0.5, 0.25], [1.0, -2.0]], dtype=np.float32)
    >>> write_imzml(path, R, [[1, 1], [2, 1]], [500.0, 600.0])
    >>> np.array_equal(read_imzml(path).X, R)
    True
    """
    from pyimzml.ImzMLWriter import ImzMLWriter

    from ._write import check_write_args, pair_lock, remove_stale_temporaries, temporary_base

    base, X, coords, mz = check_write_args(path, X, coords, mz, intensity_dtype,
                                           mz_dtype, spec_type, polarity)
    remove_stale_temporaries(base)
    final = {ext: base.parent / (base.name + ext) for ext in (".imzML", ".ibd")}
    tmp_base = temporary_base(base)
    tmp = {ext: Path(str(tmp_base) + ext) for ext in (".imzML", ".ibd")}
    try:
        # pyimzML compiles its XML template (wheezy.template) in every writer's
        # constructor; CPython 3.11 can fail compiling in two threads at once
        # ("AST constructor recursion depth mismatch"), so one at a time
        with _TEMPLATE_LOCK:
            writer = ImzMLWriter(str(tmp[".imzML"]), mz_dtype=mz.dtype.type,
                                 intensity_dtype=X.dtype.type, mode="continuous",
                                 spec_type=spec_type, polarity=polarity)
        with writer:
            for row, xyz in zip(X, coords.tolist()):
                writer.addSpectrum(mz, row, tuple(xyz))
        # pyimzml names the run after the (temporary) path: name it after the target
        xml = tmp[".imzML"].read_bytes()
        xml = xml.replace(f'id="{tmp_base}"'.encode(),
                          f'id="{sanitize_name(base.name)}"'.encode(), 1)
        tmp[".imzML"].write_bytes(xml)
        with pair_lock(base.parent):  # concurrent writers never interleave their halves
            os.replace(tmp[".ibd"], final[".ibd"])
            os.replace(tmp[".imzML"], final[".imzML"])
    finally:
        for p in tmp.values():
            if p.exists():
                p.unlink()
