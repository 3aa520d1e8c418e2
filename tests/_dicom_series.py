"""Write synthetic DICOM series with pydicom (test helper, not a test module)."""

from __future__ import annotations

import numpy as np


def write_series(folder, volume, *, row_cos=(1, 0, 0), col_cos=(0, 1, 0), spacing=(0.8, 0.6),
                 origin=(-100.0, -120.0, 30.0), step=None, slope=1.0, intercept=0.0,
                 series_uid="1.2.826.0.1.3680043.8.498.1", order=None, names=None,
                 modality="CT", positions=None):
    """Write ``volume`` (columns, rows, slices) as one file per slice.

    ``spacing`` is DICOM's PixelSpacing (row spacing, column spacing);
    ``step`` the LPS vector between slices (default: 2.5 mm along the normal);
    stored values are ``round((volume - intercept) / slope)`` as int16.
    Returns the expected RAS+ affine.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    row_cos, col_cos = np.asarray(row_cos, float), np.asarray(col_cos, float)
    normal = np.cross(row_cos, col_cos)
    step = normal * 2.5 if step is None else np.asarray(step, float)
    n_cols, n_rows, n_slices = volume.shape
    stored = np.rint((np.asarray(volume, float) - intercept) / slope).astype(np.int16)
    order = range(n_slices) if order is None else order
    paths = []
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = names[k] if names else f"slice_{k:03d}.dcm"
        path = folder / name
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.PatientName = "Synthetic^Phantom"
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*row_cos, *col_cos)]
        pos = np.asarray(origin, float) + k * step if positions is None else positions[k]
        ds.ImagePositionPatient = [f"{v:.10g}" for v in pos]
        ds.PixelSpacing = [f"{v:.10g}" for v in spacing]
        ds.SliceThickness = f"{np.linalg.norm(step):.10g}"
        ds.Rows, ds.Columns = n_rows, n_cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        ds.InstanceNumber = int(k) + 1
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]
    lps[:3, 1] = col_cos * spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
