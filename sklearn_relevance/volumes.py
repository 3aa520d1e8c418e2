"""Scans in: NIfTI files and DICOM series as arrays with their geometry.

* :class:`Volume`: a voxel array with its affine (voxel indices to world
  millimetres, RAS+ as NIfTI and nibabel use), voxel spacing and
  orientation codes.
* :func:`read_nifti`: a NIfTI-1/2 file through nibabel (optional extra
  ``nifti``), scaling (``scl_slope``/``scl_inter``) applied.
* :func:`read_dicom_series`: one DICOM series (a folder or a list of files)
  through pydicom (optional extra ``dicom``): slices sorted along the slice
  normal, ``RescaleSlope``/``RescaleIntercept`` applied, the affine built as
  nibabel and dcm2niix do (DICOM's LPS patient axes turned into RAS+); mixed
  series, missing geometry and non-uniform slice spacing are refused.

Neither reader imports torch. The array axes are the voxel axes ``(i, j, k)``
of the affine: ``volume.data[None, None]`` is one ``(n, c, D, H, W)`` sample
for the estimators, and relevance of that shape goes back to a file with
:func:`~sklearn_relevance.relevance_io.write_relevance_nifti`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._optional import require

__all__ = ["Volume", "read_nifti", "read_dicom_series", "orientation_codes"]

_AXIS_CODES = (("L", "R"), ("P", "A"), ("I", "S"))


def orientation_codes(affine):
    """Anatomical direction of each voxel axis of a RAS+ affine (nibabel's axcodes).

    Each voxel axis is named after the world axis its column points along
    most: ``R``/``L`` (x), ``A``/``P`` (y), ``S``/``I`` (z).

    Parameters
    ----------
    affine : array-like of shape (4, 4)

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.volumes import orientation_codes
    >>> orientation_codes(np.diag([-2.0, 2.0, 2.0, 1.0]))
    ('L', 'A', 'S')
    """
    affine = np.asarray(affine, dtype=np.float64)
    cols = affine[:3, :3]
    used = set()
    # the largest entries first, so that two axes never take one world axis
    order = np.argsort(-np.abs(cols).max(axis=0), kind="stable")
    named = {}
    for j in order:
        ranked = np.argsort(-np.abs(cols[:, j]), kind="stable")
        world = next(int(w) for w in ranked if int(w) not in used)
        used.add(world)
        named[int(j)] = _AXIS_CODES[world][int(cols[world, j] > 0)]
    return tuple(named[j] for j in range(cols.shape[1]))


@dataclass(frozen=True, eq=False)
class Volume:
    """A scan: voxel values with their affine.

    Attributes
    ----------
    data : ndarray of shape (I, J, K) or (I, J, K, T)
        Voxel values (float32 unless asked otherwise), indexed by voxel
        indices ``(i, j, k)``.
    affine : ndarray of shape (4, 4), float64
        Voxel indices to world millimetres in RAS+ (x to the subject's
        right, y anterior, z superior), as NIfTI and nibabel use.
    metadata : dict
        Where it came from (``path``, ``format``) and, for DICOM,
        ``series_uid``, ``modality``, ``slice_positions``; for NIfTI the
        nibabel ``header`` (used by the writer to keep the codes).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance.volumes import Volume
    >>> vol = Volume(np.zeros((4, 5, 6), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> vol.shape, vol.spacing, vol.orientation
    ((4, 5, 6), (2.0, 2.0, 3.0), ('R', 'A', 'S'))
    """

    data: np.ndarray
    affine: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        affine = np.array(self.affine, dtype=np.float64)
        data = np.asarray(self.data)
        if affine.shape != (4, 4) or not np.isfinite(affine).all() \
                or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError(
                "The 'affine' parameter of Volume must be a finite, invertible (4, 4) "
                f"matrix. Got {np.asarray(self.affine).shape} {self.affine!r} instead."
            )
        if data.ndim not in (3, 4):
            raise ValueError(
                "The 'data' parameter of Volume must be a 3D (I, J, K) or 4D "
                f"(I, J, K, T) array. Got shape {data.shape} instead."
            )
        affine.setflags(write=False)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "data", data)

    @property
    def shape(self):
        """The spatial shape ``(I, J, K)``."""
        return tuple(int(s) for s in self.data.shape[:3])

    @property
    def spacing(self):
        """Voxel sizes in millimetres along ``i``, ``j``, ``k``."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def orientation(self):
        """Orientation codes of the voxel axes, e.g. ``('L', 'A', 'S')``."""
        return orientation_codes(self.affine)


# --------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------
def _existing(path, name, owner, *, is_dir=None):
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise TypeError(
            f"The '{name}' parameter of {owner} must be a path. "
            f"Got {type(path).__name__} instead."
        ) from None
    ok = path.exists() if is_dir is None else (path.is_dir() if is_dir else path.is_file())
    if not ok:
        what = "path" if is_dir is None else ("folder" if is_dir else "file")
        raise FileNotFoundError(
            f"The '{name}' parameter of {owner} must be an existing {what}. "
            f"Got {str(path)!r} instead."
        )
    return path


def _float_dtype(dtype, owner):
    if dtype not in (np.float32, np.float64, "float32", "float64"):
        raise ValueError(
            f"The 'dtype' parameter of {owner} must be np.float32 or np.float64. "
            f"Got {dtype!r} instead."
        )
    return np.dtype(dtype)


def read_nifti(path, *, dtype=np.float32):
    """Read a NIfTI file (``.nii``, ``.nii.gz``) as a :class:`Volume`.

    Needs nibabel (optional extra ``nifti``). The voxel values are scaled by
    the header's ``scl_slope`` / ``scl_inter``; the affine is nibabel's best
    affine (the sform when its code is set, else the qform).

    Parameters
    ----------
    path : str or path-like
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of the returned values.

    Returns
    -------
    Volume
        ``metadata`` holds ``path``, ``format="nifti"`` and the nibabel
        ``header``.

    Examples
    --------
    >>> import os, tempfile
    >>> import nibabel as nib, numpy as np
    >>> from sklearn_relevance.volumes import read_nifti
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.nii.gz")
    >>> nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.int16),
    ...                          np.diag([-2.0, 2.0, 2.0, 1.0])), path)
    >>> vol = read_nifti(path)
    >>> vol.shape, vol.spacing, vol.orientation
    ((3, 4, 5), (2.0, 2.0, 2.0), ('L', 'A', 'S'))
    """
    owner = "read_nifti"
    dtype = _float_dtype(dtype, owner)
    path = _existing(path, "path", owner, is_dir=False)
    nib = require("nibabel", owner=f"{owner} (reading NIfTI files)", extra="nifti")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for non-NIfTI files
        raise ValueError(f"{str(path)!r} could not be read as NIfTI: {exc}") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(
            f"The 'path' parameter of {owner} must be a NIfTI file. Got a "
            f"{type(img).__name__} ({str(path)!r}) instead."
        )
    data = np.asarray(img.get_fdata(dtype=dtype))
    if data.ndim > 4:
        data = data.reshape(data.shape[:4])
    if data.ndim == 2:
        data = data[..., None]
    return Volume(data, img.affine,
                  {"path": str(path), "format": "nifti", "header": img.header.copy()})


# --------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------
def read_dicom_series(path, *, series_uid=None, dtype=np.float32, tolerance=1e-3):
    """Read one DICOM series (one slice per file) as a :class:`Volume`.

    Needs pydicom (optional extra ``dicom``). The slices are sorted by their
    ``ImagePositionPatient`` along the slice normal (the cross product of
    the two ``ImageOrientationPatient`` directions), the stored values are
    mapped by ``RescaleSlope`` and ``RescaleIntercept`` (per slice), and the
    affine maps voxel ``(i, j, k)`` = (column, row, slice) to RAS+
    millimetres as nibabel and dcm2niix do: DICOM's LPS patient axes with
    x and y negated. The slice axis is the step between consecutive slice
    positions, so a gantry tilt is kept exactly (a sheared affine).

    Parameters
    ----------
    path : str, path-like or list of them
        A folder (every file in it that pydicom reads as DICOM; other files
        are skipped) or the files of the series.
    series_uid : str or None, default=None
        Which ``SeriesInstanceUID`` to read when the files hold several;
        ``None`` requires exactly one series.
    dtype : {np.float32, np.float64}, default=np.float32
    tolerance : float, default=1e-3
        Millimetres (and direction-cosine units) within which orientations,
        pixel spacings and slice steps must agree.

    Returns
    -------
    Volume
        ``data`` of shape (columns, rows, slices); ``metadata`` holds
        ``path``, ``format="dicom"``, ``series_uid``, ``modality``,
        ``files`` (in slice order) and ``slice_positions`` (mm along the
        normal).

    Raises
    ------
    ValueError
        Files of several series (without ``series_uid``), slices without
        geometry, differing orientations, pixel spacings or sizes, two
        slices at one position, multi-frame files, or non-uniform slice
        spacing (each error says which files and values).

    Examples
    --------
    >>> from sklearn_relevance.volumes import read_dicom_series
    >>> vol = read_dicom_series("ct_series/")  # doctest: +SKIP
    >>> vol.spacing, vol.orientation  # doctest: +SKIP
    ((0.7, 0.7, 2.5), ('L', 'P', 'S'))
    """
    from ._dicom import read_series

    owner = "read_dicom_series"
    dtype = _float_dtype(dtype, owner)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.floating)) \
            or not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(
            f"The 'tolerance' parameter of {owner} must be a positive float. "
            f"Got {tolerance!r} instead."
        )
    if isinstance(path, (list, tuple)):
        if not path:
            raise ValueError(
                f"The 'path' parameter of {owner} must be a folder or a non-empty list "
                "of files. Got an empty list instead."
            )
        files = [_existing(p, "path", owner, is_dir=False) for p in path]
        source = str(Path(os.fspath(path[0])).parent)
    else:
        folder = _existing(path, "path", owner)
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() \
            else [folder]
        source = str(folder)
    if series_uid is not None and not isinstance(series_uid, str):
        raise ValueError(
            f"The 'series_uid' parameter of {owner} must be a str or None. "
            f"Got {series_uid!r} instead."
        )
    pydicom = require("pydicom", owner=f"{owner} (reading DICOM files)", extra="dicom")
    data, affine, meta = read_series(pydicom, files, series_uid, dtype, float(tolerance))
    meta.update(path=source, format="dicom")
    return Volume(data, affine, meta)
