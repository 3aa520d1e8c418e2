"""The geometry of one DICOM series: sort, check, stack, rescale, affine.

Private helper of :func:`sklearn_relevance.volumes.read_dicom_series`
(pydicom is passed in, so importing this module needs nothing optional).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: DICOM patient axes (LPS) to RAS+: x and y change sign.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _floats(ds, keyword, n, name):
    value = getattr(ds, keyword, None)
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.shape != (n,) or not np.isfinite(out).all():
        raise ValueError(
            f"{name} has no usable {keyword} (expected {n} numbers, got {value!r}); "
            "a series without slice geometry cannot be placed in space."
        )
    return out


def _read_headers(pydicom, files):
    """(path, dataset) of every file pydicom reads as DICOM with pixel data."""
    found = []
    for path in files:
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError):
            continue
        if "PixelData" in ds or hasattr(ds, "Rows"):
            found.append((Path(path), ds))
    return found


def _one_series(found, series_uid, n_files):
    by_series = {}
    for path, ds in found:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append((path, ds))
    if series_uid is not None:
        if series_uid not in by_series:
            raise ValueError(
                f"The 'series_uid' parameter of read_dicom_series must name a series of "
                f"the files {sorted(by_series)}. Got {series_uid!r} instead."
            )
        return series_uid, by_series[series_uid]
    if not by_series:
        raise ValueError(
            f"No DICOM image was found among the {n_files} file(s) given to "
            "read_dicom_series."
        )
    if len(by_series) > 1:
        counts = ", ".join(f"{uid or '<none>'} ({len(v)} files)" for uid, v in by_series.items())
        raise ValueError(
            f"The files hold {len(by_series)} DICOM series: {counts}. Pass "
            "series_uid=... to read one of them (a volume is one series)."
        )
    uid = next(iter(by_series))
    return uid, by_series[uid]


def _same(values, what, files, tol):
    ref = values[0]
    for v, f in zip(values[1:], files[1:]):
        if np.shape(v) != np.shape(ref) or not np.allclose(v, ref, rtol=0, atol=tol):
            raise ValueError(
                f"The slices of the series differ in {what}: {files[0].name} has "
                f"{np.asarray(ref).tolist()}, {f.name} has {np.asarray(v).tolist()}. "
                "A volume needs one value for the whole series."
            )


def read_series(pydicom, files, series_uid, dtype, tol):
    """Data (columns, rows, slices), RAS+ affine and metadata of one series."""
    found = _read_headers(pydicom, files)
    uid, members = _one_series(found, series_uid, len(files))
    paths = [p for p, _ in members]
    headers = [ds for _, ds in members]
    for p, ds in members:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if frames > 1:
            raise ValueError(
                f"{p.name} is a multi-frame DICOM ({frames} frames); read_dicom_series "
                "reads series of one slice per file."
            )
    iop = [_floats(ds, "ImageOrientationPatient", 6, p.name) for p, ds in members]
    ipp = np.stack([_floats(ds, "ImagePositionPatient", 3, p.name) for p, ds in members])
    spacing = [_floats(ds, "PixelSpacing", 2, p.name) for p, ds in members]
    size = [(int(ds.Rows), int(ds.Columns)) for ds in headers]
    _same(iop, "ImageOrientationPatient", paths, tol)
    _same(spacing, "PixelSpacing", paths, tol)
    _same(size, "Rows / Columns", paths, 0)
    row_cos, col_cos = iop[0][:3], iop[0][3:]
    if not (abs(np.linalg.norm(row_cos) - 1) < tol and abs(np.linalg.norm(col_cos) - 1) < tol
            and abs(row_cos @ col_cos) < tol):
        raise ValueError(
            f"ImageOrientationPatient {iop[0].tolist()} of {paths[0].name} is not two "
            "orthogonal unit vectors."
        )
    normal = np.cross(row_cos, col_cos)
    position = ipp @ normal
    order = np.argsort(position, kind="stable")
    position, ipp = position[order], ipp[order]
    paths = [paths[i] for i in order]
    steps = np.diff(position)
    if len(steps) and steps.min() <= tol:
        i = int(np.argmin(steps))
        raise ValueError(
            f"Two slices of the series lie at one position ({position[i]:.4f} mm along "
            f"the normal): {paths[i].name} and {paths[i + 1].name}. The series holds "
            "several volumes (echoes, time points, or a repeated slice); pass their "
            "files separately."
        )
    if len(ipp) > 1:
        step = (ipp[-1] - ipp[0]) / (len(ipp) - 1)
        expected = ipp[0] + np.arange(len(ipp))[:, None] * step
        gap = np.abs(ipp - expected).max(axis=1)
        if gap.max() > tol:
            raise ValueError(
                "The slice spacing of the series is not uniform: steps along the normal "
                f"range from {steps.min():.4f} to {steps.max():.4f} mm (slice "
                f"{paths[int(np.argmax(gap))].name} is {gap.max():.4f} mm off a regular "
                "grid), e.g. a missing slice or a series with variable spacing. "
                "Resample it (dcm2niix does) or read the uniform parts separately."
            )
    else:
        thickness = float(getattr(headers[0], "SliceThickness", 0) or 0)
        step = normal * (thickness if thickness > 0 else 1.0)
    row_spacing, col_spacing = spacing[0]
    lps = np.eye(4)
    lps[:3, 0] = row_cos * col_spacing   # i: along a row (column index)
    lps[:3, 1] = col_cos * row_spacing   # j: down a column (row index)
    lps[:3, 2] = step
    lps[:3, 3] = ipp[0]
    affine = LPS_TO_RAS @ lps
    rows, cols = size[0]
    data = np.empty((cols, rows, len(paths)), dtype=dtype)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(str(p))
        try:
            pixels = np.asarray(ds.pixel_array)
        except Exception as exc:  # pydicom raises several types for undecodable data
            raise ValueError(
                f"The pixel data of {p.name} could not be decoded ({exc}). Compressed "
                "DICOM needs pydicom's decoder plugins (e.g. pylibjpeg, gdcm)."
            ) from exc
        if pixels.shape != (rows, cols):
            raise ValueError(
                f"{p.name} holds pixels of shape {pixels.shape}, not (Rows, Columns) = "
                f"{(rows, cols)} (colour or multi-sample images are not volumes)."
            )
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        data[:, :, k] = (pixels.astype(np.float64) * slope + intercept).T
    meta = {
        "series_uid": uid,
        "modality": str(getattr(headers[0], "Modality", "")),
        "files": [str(p) for p in paths],
        "slice_positions": position,
    }
    return data, affine, meta
