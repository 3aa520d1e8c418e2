"""What an imzML file holds, without reading its spectra: pixel coordinates
and m/z range (:func:`scan_imzml`), or the whole parsed metadata with where
every spectrum lies in the .ibd file (:func:`parse_imzml_metadata`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._axis import data_range
from ._layout import parse

__all__ = ["ImzMLScan", "scan_imzml", "ImzMLMetadata", "parse_imzml_metadata"]


class ImzMLScan(NamedTuple):
    """Pixel coordinates and m/z range of an imzML file.

    Attributes
    ----------
    coords : ndarray of int of shape (n_pixels, 3)
        1-based ``(x, y, z)`` coordinates of every spectrum, in file order
        (the rows of :func:`read_imzml`'s ``X``).
    mz_range : tuple of float
        ``(min, max)`` m/z over the file's spectra.
    """

    coords: np.ndarray
    mz_range: tuple


def scan_imzml(path, *, verify_checksum=False):
    """Pixel coordinates and m/z range of an imzML file, without its spectra.

    Reads the XML and, from the .ibd file, only the first and last m/z value
    of every spectrum: enough to choose one m/z axis for several files
    (``read_imzml(path, mz=...)``) or to match labelled pixels before any
    spectrum is read.

    Parameters
    ----------
    path : str or path-like
        The .imzML file (its .ibd file beside it).
    verify_checksum : bool, default=False
        Also hash the whole .ibd file against the SHA-1/MD5 the XML declares.

    Returns
    -------
    ImzMLScan
        ``coords`` (n_pixels, 3) and ``mz_range`` (min, max).

    Raises
    ------
    FileNotFoundError
        When the .imzML or its .ibd file is missing.
    ValueError
        When the file is not a readable imzML file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import scan_imzml, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.imzML")
    >>> write_imzml(path, np.ones((2, 3)), [(1, 1), (2, 1)], [100.0, 200.0, 300.0])
    >>> scan = scan_imzml(path)
    >>> scan.coords[:, :2].tolist(), scan.mz_range
    ([[1, 1], [2, 1]], (100.0, 300.0))
    """
    layout = parse(path, verify_checksum=verify_checksum)
    return ImzMLScan(np.array(layout.coords, copy=True), data_range(layout))


class ImzMLMetadata(NamedTuple):
    """The parsed XML of an imzML file, checked against its .ibd file.

    The per-spectrum numbers are those pyimzML's ``ImzMLParser`` reports
    (``mzOffsets``, ``mzLengths``, ``intensityOffsets``,
    ``intensityLengths``, ``coordinates``), as int64 arrays in file order.

    Attributes
    ----------
    coords : ndarray of int of shape (n_pixels, 3)
        1-based ``(x, y, z)`` coordinates of every spectrum.
    mz_offsets, mz_lengths : ndarray of int of shape (n_pixels,)
        Byte offset of each spectrum's m/z array in the .ibd file, and its
        number of values.
    intensity_offsets, intensity_lengths : ndarray of int of shape (n_pixels,)
        The same for the intensity arrays.
    mz_dtype, intensity_dtype : numpy.dtype
        Number formats of the arrays (little-endian).
    continuous : bool
        Whether all spectra share one m/z array.
    ibd_path : str
        The binary file found beside the .imzML.
    metadata : dict
        The file's metadata, as :func:`read_imzml` reports it (``"imzml"``:
        pyimzML's ``imzmldict``; the sections of pyimzML's
        ``metadata.pretty()``; ``"polarity"``, ``"spectrum_mode"``,
        ``"continuous"``, ``"uuid"``).
    """

    coords: np.ndarray
    mz_offsets: np.ndarray
    mz_lengths: np.ndarray
    intensity_offsets: np.ndarray
    intensity_lengths: np.ndarray
    mz_dtype: np.dtype
    intensity_dtype: np.dtype
    continuous: bool
    ibd_path: str
    metadata: dict


def parse_imzml_metadata(path, *, verify_checksum=False):
    """Parse an imzML file's XML: where every spectrum lies, and the metadata.

    The spectrum list is read by a vectorised byte scan (a few hundred MB
    of XML a second, memory bounded by a few 1 MiB blocks whatever the file
    size); a file the scan cannot vouch for is parsed by pyimzML, so the
    numbers, and the refusals, are pyimzML's in every case. Then the
    layout is checked as for a read: the .ibd file is present, its UUID
    header matches the XML's, it is long enough for every offset and
    length, and the arrays are uncompressed. No spectrum is read (a
    continuous file's one shared m/z array excepted).

    Parameters
    ----------
    path : str or path-like
        The .imzML file (its .ibd file beside it).
    verify_checksum : bool, default=False
        Also hash the whole .ibd file against the SHA-1/MD5 the XML declares.

    Returns
    -------
    ImzMLMetadata

    Raises
    ------
    FileNotFoundError
        When the .imzML or its .ibd file is missing.
    ValueError
        When the file is not a readable imzML file (cut or malformed XML,
        compressed arrays, an .ibd shorter than the offsets say, another
        acquisition's .ibd).

    See Also
    --------
    scan_imzml : coordinates and m/z range only.
    read_imzml : the spectra themselves.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import parse_imzml_metadata, write_imzml
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.imzML")
    >>> write_imzml(path, np.ones((2, 3), np.float32), [(1, 1), (2, 1)], [100.0, 200.0, 300.0])
    >>> meta = parse_imzml_metadata(path)
    >>> meta.coords[:, :2].tolist(), meta.continuous
    ([[1, 1], [2, 1]], True)
    >>> meta.intensity_lengths.tolist(), meta.intensity_dtype
    ([3, 3], dtype('float32'))
    """
    layout = parse(path, verify_checksum=verify_checksum)
    return ImzMLMetadata(
        coords=layout.coords, mz_offsets=layout.mz_offsets, mz_lengths=layout.mz_lengths,
        intensity_offsets=layout.int_offsets, intensity_lengths=layout.int_lengths,
        mz_dtype=layout.mz_dtype, intensity_dtype=layout.int_dtype,
        continuous=bool(layout.continuous), ibd_path=str(layout.ibd),
        metadata=dict(layout.metadata))
