"""What an imzML file holds, without reading its spectra."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._axis import data_range
from ._layout import parse

__all__ = ["ImzMLScan", "scan_imzml"]


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
