"""Relevance out, where the viewers open it: NIfTI, imzML, ion images.

* :func:`write_relevance_nifti`: relevance of a scan as a NIfTI file on the
  scan's grid with its affine (FSLeyes, ITK-SNAP and 3D Slicer overlay it on
  the scan).
* :func:`write_relevance_imzml`: per-pixel relevance spectra of an imaging
  mass spectrometry model as a continuous imzML file with the source's
  pixel coordinates and an m/z axis (with UUID and SHA-1 checksum), which
  M2aia, Cardinal or pyimzML open as ion images.
* :func:`write_ion_images`: relevance ion images, one file per m/z, as PNG
  (colour-mapped, for viewing) or TIFF (float32 values, for analysis).

Every writer checks all its arguments first, writes under a temporary name
in the target folder and renames the file into place: a failed write never
leaves a half-written file under the target name. Nothing here imports torch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ._optional import require

__all__ = ["write_relevance_nifti", "write_relevance_imzml", "write_ion_images"]


def _to_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _target(path, name, owner, suffixes):
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise TypeError(
            f"The '{name}' parameter of {owner} must be a path. Got "
            f"{type(path).__name__} instead."
        ) from None
    if suffixes and not str(path).endswith(suffixes):
        raise ValueError(
            f"The '{name}' parameter of {owner} must end with one of {list(suffixes)}. "
            f"Got {str(path)!r} instead."
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"The folder of the '{name}' parameter of {owner} does not exist: "
            f"{str(path.parent)!r}."
        )
    if path.is_dir():
        raise IsADirectoryError(
            f"The '{name}' parameter of {owner} names a folder: {str(path)!r}."
        )
    return path


def _atomic_write(path, write):
    """``write(tmp_path)`` then rename onto ``path``; the temporary is removed on failure."""
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _finite(values, name, owner):
    if values.dtype.kind not in "biuf":
        raise ValueError(
            f"The '{name}' parameter of {owner} must hold numbers. Got dtype "
            f"{values.dtype} instead."
        )
    bad = int(values.size - np.isfinite(values).sum())
    if bad:
        raise ValueError(
            f"The '{name}' parameter of {owner} must hold finite numbers. Got {bad} "
            "NaN or infinite values instead."
        )


# --------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------
def write_relevance_nifti(path, relevance, source, *, description="relevance"):
    """Write relevance on a scan's grid as a float32 NIfTI file with the scan's affine.

    Needs nibabel (optional extra ``nifti``). The file's sform holds the
    source affine (its code taken from a NIfTI source's header, else
    "scanner"); the qform holds it too where it has no shear. A map on the
    network's grid goes back first with
    :meth:`~sklearn_relevance.resampling.ResampleToGrid.inverse_transform`.

    Parameters
    ----------
    path : str or path-like
        Target ``.nii`` or ``.nii.gz``.
    relevance : array-like of shape ``source.shape``, ``(1, 1, *source.shape)`` or ``(n_maps, [1,] *source.shape)``
        One map (leading singleton axes are dropped: ``explain`` returns
        ``(1, 1, I, J, K)``) or several maps, written as a 4D file with the
        maps along the fourth axis. Finite values only.
    source : Volume
        The scan (:func:`~sklearn_relevance.volumes.read_nifti`,
        :func:`~sklearn_relevance.volumes.read_dicom_series`).
    description : str, default="relevance"
        The header's description (at most 80 characters).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os, tempfile
    >>> import nibabel as nib, numpy as np
    >>> from sklearn_relevance.volumes import Volume
    >>> from sklearn_relevance.relevance_io import write_relevance_nifti
    >>> scan = Volume(np.zeros((4, 5, 6), np.float32), np.diag([-2.0, 2.0, 2.0, 1.0]))
    >>> R = np.random.default_rng(0).normal(size=(1, 1, 4, 5, 6))
    >>> path = write_relevance_nifti(os.path.join(tempfile.mkdtemp(), "R.nii.gz"), R, scan)
    >>> img = nib.load(path)
    >>> np.array_equal(img.affine, scan.affine), img.shape
    (True, (4, 5, 6))
    """
    from .volumes import Volume

    owner = "write_relevance_nifti"
    if not isinstance(source, Volume):
        raise ValueError(
            f"The 'source' parameter of {owner} must be a Volume (read_nifti, "
            f"read_dicom_series). Got {type(source).__name__} instead."
        )
    if not isinstance(description, str):
        raise ValueError(
            f"The 'description' parameter of {owner} must be a str. "
            f"Got {description!r} instead."
        )
    path = _target(path, "path", owner, (".nii", ".nii.gz"))
    R = _to_numpy(relevance)
    if R.ndim == 5 and R.shape[1] == 1:  # (n_maps, 1, I, J, K) as explain returns
        R = R[:, 0]
    while R.ndim > 3 and R.shape[0] == 1:
        R = R[0]
    if R.shape == source.shape:
        data = R
    elif R.ndim == 4 and R.shape[1:] == source.shape:
        data = np.moveaxis(R, 0, -1)
    else:
        raise ValueError(
            f"The 'relevance' parameter of {owner} must be on the source grid "
            f"{source.shape} (or (n_maps, *{source.shape})). Got shape "
            f"{_to_numpy(relevance).shape} instead; bring maps on the network's grid "
            "back with ResampleToGrid.inverse_transform."
        )
    _finite(data, "relevance", owner)
    nib = require("nibabel", owner=f"{owner} (writing NIfTI files)", extra="nifti")
    data = np.ascontiguousarray(data, dtype=np.float32)
    affine = source.affine
    header = source.metadata.get("header")
    sform_code = qform_code = 1  # scanner
    if isinstance(header, nib.Nifti1Header):
        sform_code = int(header["sform_code"]) or int(header["qform_code"]) or 1
        qform_code = int(header["qform_code"]) or sform_code
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.float32)
    img.header.set_slope_inter(1.0, 0.0)
    img.set_sform(affine, code=sform_code)
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    orthogonal = np.allclose(cols.T @ cols, np.eye(3), atol=1e-6)
    img.set_qform(affine if orthogonal else None, code=qform_code if orthogonal else 0)
    if header is not None and hasattr(header, "get_xyzt_units"):
        img.header.set_xyzt_units(*header.get_xyzt_units())
    else:
        img.header.set_xyzt_units("mm")
    img.header["cal_min"], img.header["cal_max"] = float(data.min()), float(data.max())
    img.header["descrip"] = description[:79].encode("ascii", "replace")
    _atomic_write(path, lambda tmp: nib.save(img, tmp))
    return path


# --------------------------------------------------------------------------
# imzML
# --------------------------------------------------------------------------
def write_relevance_imzml(path, relevance, source, *, mz=None):
    """Write per-pixel relevance spectra as an imzML file on the source's pixels.

    The file is a continuous-mode imzML (float32 relevance, float64 m/z)
    written by :func:`sklearn_relevance.ims.write_imzml`: the ``.ibd``
    starts with the UUID the XML names, and the XML carries the ``.ibd``'s
    SHA-1 checksum. Each pixel keeps its original (x, y, z) coordinates, so
    an imzML viewer shows every m/z channel of the relevance as an ion image
    over the same pixels as the source file.

    Parameters
    ----------
    path : str or path-like
        Target, with or without the ``.imzML`` suffix.
    relevance : array-like of shape (n_pixels, n_mz)
        One relevance spectrum per pixel of ``source``, in its order
        (``explain(pipeline, source.X)``). Finite values only.
    source : IMSData
        The spectra explained (:func:`~sklearn_relevance.ims.read_imzml`),
        or any object with ``coords`` (n_pixels, 2 or 3) and ``mz``.
    mz : array-like of shape (n_mz,) or None, default=None
        The m/z axis of the relevance: ``source.mz`` by default; the
        model's axis when a step changed it (``MzResampler``).

    Returns
    -------
    pathlib.Path
        The ``.imzML`` file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.ims import IMSData, read_imzml
    >>> from sklearn_relevance.relevance_io import write_relevance_imzml
    >>> data = IMSData(np.ones((2, 3)), np.array([[4, 7, 1], [5, 7, 1]]),
    ...                np.array([100.0, 200.0, 300.0]))
    >>> R = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, -0.25]])
    >>> path = write_relevance_imzml(os.path.join(tempfile.mkdtemp(), "R"), R, data)
    >>> back = read_imzml(path)
    >>> back.coords.tolist(), np.array_equal(back.X, R)
    ([[4, 7, 1], [5, 7, 1]], True)
    """
    owner = "write_relevance_imzml"
    coords = getattr(source, "coords", None)
    if coords is None or (mz is None and getattr(source, "mz", None) is None):
        raise ValueError(
            f"The 'source' parameter of {owner} must have 'coords' and 'mz' (an IMSData "
            f"from read_imzml). Got {type(source).__name__} instead."
        )
    coords = np.asarray(coords)
    mz = np.asarray(source.mz if mz is None else mz, dtype=np.float64)
    R = _to_numpy(relevance)
    if R.ndim == 3 and R.shape[1] == 1:  # (n, 1, n_mz) of a 1D CNN
        R = R[:, 0]
    if R.ndim != 2 or R.shape[0] != len(coords) or R.shape[1] != mz.shape[0]:
        raise ValueError(
            f"The 'relevance' parameter of {owner} must have shape (n_pixels, n_mz) = "
            f"({len(coords)}, {mz.shape[0]}). Got shape {R.shape} instead (pass "
            "mz=... when a step of the model changed the m/z axis)."
        )
    _finite(R, "relevance", owner)
    from .ims import write_imzml

    target = Path(os.fspath(path))
    if target.suffix.lower() != ".imzml":
        target = target.with_name(target.name + ".imzML")
    write_imzml(target, R.astype(np.float32), coords, mz, intensity_dtype=np.float32,
                mz_dtype=np.float64)
    return target


# --------------------------------------------------------------------------
# ion images
# --------------------------------------------------------------------------
def _grid(coords, values, fill):
    x, y = coords[:, 0].astype(int) - 1, coords[:, 1].astype(int) - 1
    out = np.full((int(y.max()) + 1, int(x.max()) + 1), fill, dtype=np.float32)
    out[y, x] = values
    return out


def _colour(image, signed, cmap):
    """RGBA uint8 of an image (NaN transparent), symmetric scale for signed maps."""
    finite = np.isfinite(image)
    top = float(np.abs(image[finite]).max()) if finite.any() else 0.0
    top = top or 1.0
    scaled = (image / top + 1) / 2 if signed else image / top
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1)
    try:
        import matplotlib

        rgba = matplotlib.colormaps[cmap or ("RdBu_r" if signed else "magma")](scaled)
        rgba = np.rint(rgba * 255).astype(np.uint8)
    except ImportError:  # no matplotlib: grey levels
        grey = np.rint(scaled * 255).astype(np.uint8)
        rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    rgba[~finite, 3] = 0
    return rgba


def write_ion_images(folder, relevance, coords, mz, *, mz_values=None, n_top=5,
                     format="png", prefix="relevance", cmap=None):
    """Write relevance ion images (one per m/z) as PNG or TIFF files.

    Parameters
    ----------
    folder : str or path-like
        Existing folder; files are named ``<prefix>_mz<m/z>[_z<z>].<format>``.
    relevance : array-like of shape (n_pixels, n_mz)
    coords : array-like of shape (n_pixels, 2 or 3)
        1-based pixel coordinates (``IMSData.coords``).
    mz : array-like of shape (n_mz,)
    mz_values : sequence of float or None, default=None
        The m/z values to draw (the nearest column each); ``None`` takes the
        ``n_top`` columns of largest mean ``|relevance|``.
    n_top : int, default=5
    format : {"png", "tiff"}, default="png"
        ``"png"``: colour-mapped 8-bit RGBA for viewing (symmetric diverging
        scale for signed maps, one-sided for non-negative ones; pixels
        without a spectrum transparent). ``"tiff"``: the float32 values
        (NaN where no spectrum), needs tifffile.
    prefix : str, default="relevance"
    cmap : str or None, default=None
        A matplotlib colour map for PNG (``"RdBu_r"`` / ``"magma"`` by
        default; grey levels without matplotlib).

    Returns
    -------
    list of pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn_relevance.relevance_io import write_ion_images
    >>> R = np.array([[0.5, -1.0], [2.0, 0.0]])
    >>> paths = write_ion_images(tempfile.mkdtemp(), R, [[1, 1], [2, 1]], [500.0, 600.0])
    >>> [p.name for p in paths]
    ['relevance_mz500.0000.png', 'relevance_mz600.0000.png']
    """
    owner = "write_ion_images"
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The 'folder' parameter of {owner} must be an existing folder. "
            f"Got {str(folder)!r} instead."
        )
    if format not in ("png", "tiff"):
        raise ValueError(
            f"The 'format' parameter of {owner} must be 'png' or 'tiff'. "
            f"Got {format!r} instead."
        )
    R, coords, mz = _to_numpy(relevance), np.asarray(coords), np.asarray(mz, float)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or len(coords) == 0 \
            or coords.min() < 1 or not np.array_equal(coords, np.rint(coords)):
        raise ValueError(
            f"The 'coords' parameter of {owner} must be 1-based integer pixel "
            f"coordinates of shape (n_pixels, 2 or 3). Got shape {coords.shape} instead."
        )
    if R.ndim != 2 or R.shape != (len(coords), mz.shape[0]):
        raise ValueError(
            f"The 'relevance' parameter of {owner} must have shape (n_pixels, n_mz) = "
            f"({len(coords)}, {mz.shape[0]}). Got shape {R.shape} instead."
        )
    _finite(R, "relevance", owner)
    if mz_values is None:
        if isinstance(n_top, bool) or not isinstance(n_top, (int, np.integer)) or n_top < 1:
            raise ValueError(
                f"The 'n_top' parameter of {owner} must be a positive int. "
                f"Got {n_top!r} instead."
            )
        cols = np.sort(np.argsort(-np.abs(R).mean(0), kind="stable")[:n_top])
    else:
        wanted = np.atleast_1d(np.asarray(mz_values, float))
        if wanted.ndim != 1 or not np.isfinite(wanted).all() or wanted.size == 0:
            raise ValueError(
                f"The 'mz_values' parameter of {owner} must be a non-empty list of "
                f"m/z values. Got {mz_values!r} instead."
            )
        cols = np.abs(mz[None] - wanted[:, None]).argmin(1)
    tifffile = require("tifffile", owner=f"{owner} (TIFF)") if format == "tiff" else None
    signed = bool((R < 0).any())
    zs = np.unique(coords[:, 2]) if coords.shape[1] == 3 else np.array([1])
    paths = []
    for z in zs:
        keep = coords[:, 2] == z if coords.shape[1] == 3 else np.ones(len(coords), bool)
        for c in cols:
            image = _grid(coords[keep], R[keep, c], np.nan)
            name = f"{prefix}_mz{mz[c]:.4f}" + (f"_z{int(z)}" if len(zs) > 1 else "")
            path = folder / f"{name}.{format}"
            if format == "png":
                from ._png import encode_png

                blob = encode_png(_colour(image, signed, cmap))
                _atomic_write(path, lambda tmp, b=blob: Path(tmp).write_bytes(b))
            else:
                _atomic_write(path, lambda tmp, im=image: tifffile.imwrite(
                    tmp, im, metadata={"mz": float(mz[c])}))
            paths.append(path)
    return paths
