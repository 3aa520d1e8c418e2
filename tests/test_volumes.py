"""NIfTI and DICOM readers: values, affines, orientation, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn_relevance.volumes import Volume, orientation_codes, read_dicom_series, read_nifti

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from _dicom_series import write_series  # noqa: E402


@pytest.fixture
def phantom(rng):
    return rng.integers(-1000, 2000, size=(6, 5, 4)).astype(np.float64)


def _oblique():
    a, b = np.deg2rad(20), np.deg2rad(10)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rot[:, 0], rot[:, 1]


# ---------------------------------------------------------------- DICOM
def test_dicom_series_values_affine_and_world_positions(tmp_path, phantom):
    row_cos, col_cos = _oblique()
    shuffled = [2, 0, 3, 1]  # files written (and named) out of slice order
    names = [f"img{n}.dcm" for n in (7, 3, 9, 1)]
    expected = write_series(tmp_path, phantom, row_cos=row_cos, col_cos=col_cos,
                            slope=2.0, intercept=-1024.0, order=shuffled, names=names)
    vol = read_dicom_series(tmp_path)
    stored = np.rint((phantom + 1024.0) / 2.0)
    np.testing.assert_array_equal(vol.data, (stored * 2.0 - 1024.0).astype(np.float32))
    # DICOM decimal strings hold the geometry to 10 significant digits here
    np.testing.assert_allclose(vol.affine, expected, rtol=0, atol=1e-6)
    # voxel (i, j, k) = (column, row, slice) sits at the DICOM position, in RAS
    for i, j, k in [(0, 0, 0), (5, 4, 3), (2, 1, 2)]:
        lps = (np.array([-100.0, -120.0, 30.0]) + i * 0.6 * row_cos + j * 0.8 * col_cos
               + k * 2.5 * np.cross(row_cos, col_cos))
        ras = vol.affine @ [i, j, k, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)
    assert vol.spacing == pytest.approx((0.6, 0.8, 2.5))
    assert vol.metadata["modality"] == "CT"
    assert np.all(np.diff(vol.metadata["slice_positions"]) > 0)


def test_dicom_axial_orientation_matches_nibabel_codes(tmp_path, phantom):
    write_series(tmp_path, phantom)  # rows along +x (L), columns along +y (P)
    vol = read_dicom_series(tmp_path)
    assert vol.orientation == ("L", "P", "S")
    assert vol.orientation == nib.aff2axcodes(vol.affine)


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_dicom_single_slice_affine_matches_nibabel_wrapper(tmp_path, phantom):
    from nibabel.nicom import dicomwrappers

    row_cos, col_cos = _oblique()
    write_series(tmp_path, phantom[:, :, :1], row_cos=row_cos, col_cos=col_cos)
    vol = read_dicom_series(tmp_path)
    ds = pydicom.dcmread(str(tmp_path / "slice_000.dcm"))
    wrapper_affine = dicomwrappers.wrapper_from_data(ds).affine  # DICOM LPS
    ref = np.diag([-1.0, -1.0, 1.0, 1.0]) @ wrapper_affine
    # nibabel's wrapper indexes (row, column); NIfTI / dcm2niix (column, row)
    np.testing.assert_allclose(vol.affine[:, [1, 0, 3]], ref[:, [0, 1, 3]], atol=1e-6)


def test_dicom_gantry_tilt_is_a_sheared_affine(tmp_path, phantom):
    step = np.array([0.0, 0.5, 2.5])  # not along the normal
    expected = write_series(tmp_path, phantom, step=step)
    vol = read_dicom_series(tmp_path)
    np.testing.assert_allclose(vol.affine, expected, atol=1e-6)


def test_dicom_file_list_and_non_dicom_files_skipped(tmp_path, phantom):
    write_series(tmp_path, phantom)
    (tmp_path / "README.txt").write_text("not dicom")
    a = read_dicom_series(tmp_path)
    b = read_dicom_series(sorted(tmp_path.glob("*.dcm")))
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.affine, b.affine)


def test_dicom_mixed_series_refused_then_chosen(tmp_path, phantom):
    write_series(tmp_path, phantom, series_uid="1.2.3")
    write_series(tmp_path, phantom + 1, series_uid="1.2.4",
                 names=[f"other_{k}.dcm" for k in range(4)])
    with pytest.raises(ValueError, match="2 DICOM series.*series_uid"):
        read_dicom_series(tmp_path)
    vol = read_dicom_series(tmp_path, series_uid="1.2.4")
    np.testing.assert_array_equal(vol.data, (phantom + 1).astype(np.float32))
    with pytest.raises(ValueError, match="'series_uid' parameter"):
        read_dicom_series(tmp_path, series_uid="9.9")


def test_dicom_non_uniform_spacing_refused(tmp_path, phantom):
    positions = [np.array([0.0, 0.0, z]) for z in (0.0, 2.5, 5.0, 10.0)]  # a missing slice
    write_series(tmp_path, phantom, positions=positions)
    with pytest.raises(ValueError, match="not uniform"):
        read_dicom_series(tmp_path)


def test_dicom_duplicate_position_and_mixed_orientation_refused(tmp_path, phantom):
    positions = [np.array([0.0, 0.0, z]) for z in (0.0, 2.5, 2.5, 5.0)]
    write_series(tmp_path, phantom, positions=positions)
    with pytest.raises(ValueError, match="one position"):
        read_dicom_series(tmp_path)
    other = tmp_path / "b"
    other.mkdir()
    write_series(other, phantom[:, :, :2])
    write_series(other, phantom[:, :, :2], row_cos=(0, 1, 0), col_cos=(1, 0, 0),
                 names=["x.dcm", "y.dcm"], origin=(0, 0, 90))
    with pytest.raises(ValueError, match="ImageOrientationPatient"):
        read_dicom_series(other)


def test_dicom_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="'path' parameter of read_dicom_series"):
        read_dicom_series(tmp_path / "absent")
    with pytest.raises(ValueError, match="No DICOM image"):
        read_dicom_series(tmp_path)
    with pytest.raises(ValueError, match="'dtype' parameter"):
        read_dicom_series(tmp_path, dtype=np.int16)
    with pytest.raises(ValueError, match="'tolerance' parameter"):
        read_dicom_series(tmp_path, tolerance=-1)


# ---------------------------------------------------------------- NIfTI
def test_nifti_values_affine_and_scaling(tmp_path, rng):
    data = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)
    affine = np.array([[-1.5, 0.1, 0, 80], [0, 1.5, 0.2, -100], [0, 0, 3, -40], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "scan.nii.gz"
    nib.save(img, path)
    vol = read_nifti(path)
    ref = nib.load(path)
    np.testing.assert_array_equal(vol.affine, ref.affine)
    np.testing.assert_array_equal(vol.data, data.astype(np.float32) * 0.5 + 10.0)
    assert vol.orientation == nib.aff2axcodes(ref.affine)
    assert vol.data.dtype == np.float32
    assert read_nifti(path, dtype=np.float64).data.dtype == np.float64


def test_nifti_shared_atlas_matches_load_atlas(shared_data):
    from sklearn_relevance.datasets import load_atlas

    folder = shared_data / "atlas"
    aal = load_atlas(folder)
    labels = read_nifti(folder / "AAL_space-MNI152NLin6_res-2x2x2.nii.gz")
    template = read_nifti(folder / "MNI152NLin6_res-2x2x2_T1w_descr-brain.nii.gz")
    np.testing.assert_array_equal(labels.affine, aal.affine)
    np.testing.assert_array_equal(np.rint(labels.data).astype(np.int32), aal.labels)
    np.testing.assert_array_equal(template.data, aal.template)
    assert template.shape == (91, 109, 91)
    assert template.spacing == (2.0, 2.0, 2.0)
    assert template.orientation == nib.aff2axcodes(aal.affine)


def test_nifti_refuses_other_files(tmp_path):
    bad = tmp_path / "x.nii"
    bad.write_bytes(b"not nifti at all" * 30)
    with pytest.raises(ValueError, match="could not be read as NIfTI"):
        read_nifti(bad)
    with pytest.raises(FileNotFoundError, match="'path' parameter of read_nifti"):
        read_nifti(tmp_path / "absent.nii")


# ---------------------------------------------------------------- Volume
@pytest.mark.parametrize("affine", [
    np.diag([-2.0, 2.0, 2.0, 1.0]), np.diag([1.0, -1.0, -3.0, 1.0]),
    np.array([[0, 0, 2.0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]]),
])
def test_orientation_codes_match_nibabel(affine):
    assert orientation_codes(affine) == nib.aff2axcodes(affine)


def test_volume_refuses_bad_geometry():
    with pytest.raises(ValueError, match="'affine' parameter of Volume"):
        Volume(np.zeros((2, 2, 2)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="'data' parameter of Volume"):
        Volume(np.zeros((2, 2)), np.eye(4))


def test_readers_writers_and_fetchers_do_not_import_torch(tmp_path, phantom):
    """Reading a scan must not cost a torch import (about 2 s in a fresh process)."""
    import subprocess
    import sys

    write_series(tmp_path, phantom)
    code = (
        "import sys\n"
        "from sklearn_relevance import read_dicom_series, read_nifti, ResampleToGrid\n"
        "import sklearn_relevance.relevance_io, sklearn_relevance.fetchers\n"
        f"vol = read_dicom_series({str(tmp_path)!r})\n"
        "ResampleToGrid((3, 3, 3), source_affine=vol.affine).fit_transform(vol.data[None])\n"
        "from sklearn_relevance.relevance_io import write_relevance_nifti\n"
        f"write_relevance_nifti({str(tmp_path / 'r.nii.gz')!r}, vol.data, vol)\n"
        f"read_nifti({str(tmp_path / 'r.nii.gz')!r})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_dicom_undecodable_pixels_name_the_file(tmp_path, phantom):
    write_series(tmp_path, phantom[:, :, :2])
    ds = pydicom.dcmread(str(tmp_path / "slice_001.dcm"))
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(str(tmp_path / "slice_001.dcm"))
    with pytest.raises(ValueError, match="slice_001.dcm could not be decoded"):
        read_dicom_series(tmp_path)
