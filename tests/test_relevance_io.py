"""Relevance writers: NIfTI, imzML, ion images; exact round trips, atomic writes."""

from __future__ import annotations

import hashlib
import re
import uuid

import numpy as np
import pytest

from sklearn_relevance.relevance_io import (
    write_ion_images,
    write_relevance_imzml,
    write_relevance_nifti,
)
from sklearn_relevance.volumes import Volume, read_dicom_series, read_nifti

nib = pytest.importorskip("nibabel")


def _scan(tmp_path, rng, affine=None, sform_code=4):
    affine = np.array([[-1.5, 0, 0, 80.25], [0, 1.25, 0, -100.5], [0, 0, 3, -40], [0, 0, 0, 1]]) \
        if affine is None else affine
    img = nib.Nifti1Image(rng.normal(size=(5, 6, 7)).astype(np.float32), affine)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=1)
    path = tmp_path / "scan.nii.gz"
    nib.save(img, path)
    return read_nifti(path)


# ---------------------------------------------------------------- NIfTI
def test_nifti_round_trip_exact_affine_values_and_codes(tmp_path, rng):
    scan = _scan(tmp_path, rng)
    R = rng.normal(size=(1, 1, 5, 6, 7)).astype(np.float32)
    out = write_relevance_nifti(tmp_path / "R.nii.gz", R, scan)
    img = nib.load(out)
    np.testing.assert_array_equal(img.affine, scan.affine)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), R[0, 0])
    assert img.get_data_dtype() == np.float32
    assert int(img.header["sform_code"]) == 4 and int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), scan.affine, atol=1e-5)
    # and through our own reader
    back = read_nifti(out)
    np.testing.assert_array_equal(back.affine, scan.affine)
    np.testing.assert_array_equal(back.data, R[0, 0])


def test_nifti_several_maps_and_shared_template(tmp_path, rng, shared_data):
    template = read_nifti(shared_data / "atlas" / "MNI152NLin6_res-2x2x2_T1w_descr-brain.nii.gz")
    R = rng.normal(size=(3, 1, *template.shape)).astype(np.float32)
    img = nib.load(write_relevance_nifti(tmp_path / "maps.nii", R, template))
    ref = nib.load(shared_data / "atlas" / "MNI152NLin6_res-2x2x2_T1w_descr-brain.nii.gz")
    np.testing.assert_array_equal(img.affine, ref.affine)
    assert img.shape == (*template.shape, 3)
    np.testing.assert_array_equal(np.asarray(img.dataobj)[..., 2], R[2, 0])
    assert img.header.get_sform(coded=True)[1] == ref.header.get_sform(coded=True)[1]


def test_nifti_from_a_dicom_series_keeps_the_affine_and_the_shear(tmp_path, rng):
    pytest.importorskip("pydicom")
    from _dicom_series import write_series

    folder = tmp_path / "dcm"
    folder.mkdir()
    write_series(folder, rng.integers(0, 100, size=(6, 5, 4)).astype(float),
                 step=(0.0, 0.5, 2.5))  # gantry tilt: a sheared affine
    scan = read_dicom_series(folder)
    R = rng.normal(size=scan.shape)
    img = nib.load(write_relevance_nifti(tmp_path / "R.nii.gz", R, scan))
    # the sform stores float32: the affine comes back rounded to float32, nothing more
    np.testing.assert_array_equal(img.affine, scan.affine.astype(np.float32))
    assert int(img.header["qform_code"]) == 0  # a qform cannot hold a shear
    assert int(img.header["sform_code"]) == 1
    np.testing.assert_array_equal(img.get_fdata(), R.astype(np.float32))


def test_nifti_write_is_atomic(tmp_path, rng, monkeypatch):
    scan = _scan(tmp_path, rng)
    target = tmp_path / "R.nii.gz"
    target.write_bytes(b"previous")

    def broken(img, filename):
        with open(filename, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write_relevance_nifti(target, np.zeros(scan.shape), scan)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R.nii.gz", "scan.nii.gz"]


def test_nifti_refusals(tmp_path, rng):
    scan = _scan(tmp_path, rng)
    with pytest.raises(ValueError, match="inverse_transform"):
        write_relevance_nifti(tmp_path / "R.nii.gz", np.zeros((1, 1, 4, 4, 4)), scan)
    with pytest.raises(ValueError, match="must end with"):
        write_relevance_nifti(tmp_path / "R.npy", np.zeros(scan.shape), scan)
    with pytest.raises(ValueError, match="finite numbers. Got 1 NaN"):
        R = np.zeros(scan.shape)
        R[0, 0, 0] = np.nan
        write_relevance_nifti(tmp_path / "R.nii", R, scan)
    with pytest.raises(ValueError, match="'source' parameter"):
        write_relevance_nifti(tmp_path / "R.nii", np.zeros(scan.shape), scan.affine)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_relevance_nifti(tmp_path / "no" / "R.nii", np.zeros(scan.shape), scan)
    assert not (tmp_path / "R.nii").exists() and not (tmp_path / "R.nii.gz").exists()
    Volume(np.zeros((2, 2, 2)), np.eye(4))  # a Volume built by hand is a valid source


# ---------------------------------------------------------------- imzML
def _xml_value(xml, name):
    return re.search(rf'name="{name}" value="([^"]+)"', xml).group(1)


@pytest.mark.parametrize("name", ["Example_Continuous.imzML", "Example_Processed.imzML"])
def test_imzml_round_trip_with_pyimzml(tmp_path, rng, shared_data, name):
    from pyimzml.ImzMLParser import ImzMLParser

    from sklearn_relevance.ims import read_imzml

    source = read_imzml(shared_data / "imzml" / name)
    R = rng.normal(size=source.X.shape).astype(np.float32)
    out = write_relevance_imzml(tmp_path / "relevance", R, source)
    assert out.name == "relevance.imzML"
    parser = ImzMLParser(str(out))
    original = ImzMLParser(str(shared_data / "imzml" / name))
    assert parser.coordinates == original.coordinates
    for i in range(len(parser.coordinates)):
        mzs, values = parser.getspectrum(i)
        np.testing.assert_array_equal(mzs, source.mz)
        np.testing.assert_array_equal(values, R[i])
    if "Continuous" in name:  # the file's own axis, bit for bit
        np.testing.assert_array_equal(source.mz, original.getspectrum(0)[0])
    xml = out.read_text()
    ibd = (tmp_path / "relevance.ibd").read_bytes()
    assert uuid.UUID(_xml_value(xml, "universally unique identifier")).bytes == ibd[:16]
    assert _xml_value(xml, "ibd SHA-1").lower() == hashlib.sha1(ibd).hexdigest()
    back = read_imzml(out)
    np.testing.assert_array_equal(back.coords, source.coords)


def test_imzml_model_axis_and_refusals(tmp_path, rng):
    from sklearn_relevance.ims import IMSData, read_imzml

    data = IMSData(rng.random((4, 6)), np.array([[1, 1, 1], [2, 1, 1], [1, 3, 1], [2, 3, 1]]),
                   np.linspace(100, 200, 6))
    with pytest.raises(ValueError, match=r"shape \(n_pixels, n_mz\) = \(4, 6\).*mz="):
        write_relevance_imzml(tmp_path / "R", rng.random((4, 3)), data)
    model_mz = np.array([110.0, 150.0, 190.0])
    out = write_relevance_imzml(tmp_path / "R.imzML", rng.random((4, 1, 3)), data, mz=model_mz)
    np.testing.assert_array_equal(read_imzml(out).mz, model_mz)
    with pytest.raises(ValueError, match="'source' parameter"):
        write_relevance_imzml(tmp_path / "R", rng.random((4, 6)), object())
    with pytest.raises(ValueError, match="finite"):
        write_relevance_imzml(tmp_path / "R", np.full((4, 6), np.inf), data)


# ---------------------------------------------------------------- ion images
def test_ion_images_tiff_exact_and_png_viewable(tmp_path, rng):
    tifffile = pytest.importorskip("tifffile")
    from PIL import Image

    coords = np.array([[1, 1], [3, 1], [2, 2], [3, 2]])  # (2, 1) has no spectrum
    mz = np.array([100.0, 250.5, 400.0])
    R = rng.normal(size=(4, 3)).astype(np.float32)
    R[:, 1] *= 10  # the most relevant channel
    tiffs = write_ion_images(tmp_path, R, coords, mz, n_top=1, format="tiff")
    assert [p.name for p in tiffs] == ["relevance_mz250.5000.tiff"]
    image = tifffile.imread(tiffs[0])
    assert image.shape == (2, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image[coords[:, 1] - 1, coords[:, 0] - 1], R[:, 1])
    assert np.isnan(image[0, 1])
    (png,) = write_ion_images(tmp_path, R, coords, mz, mz_values=[399.0])
    assert png.name == "relevance_mz400.0000.png"
    rgba = np.asarray(Image.open(png))
    assert rgba.shape == (2, 3, 4)
    assert rgba[0, 1, 3] == 0 and (rgba[coords[:, 1] - 1, coords[:, 0] - 1, 3] == 255).all()
    # signed maps on a symmetric scale: the largest |value| takes an end of the map
    import matplotlib

    top = np.abs(R[:, 2]).argmax()
    end = matplotlib.colormaps["RdBu_r"](1.0 if R[top, 2] > 0 else 0.0)
    np.testing.assert_array_equal(rgba[coords[top, 1] - 1, coords[top, 0] - 1],
                                  np.rint(np.asarray(end) * 255).astype(np.uint8))


def test_ion_images_per_z_and_refusals(tmp_path, rng):
    coords = np.array([[1, 1, 1], [2, 1, 1], [1, 1, 2]])
    paths = write_ion_images(tmp_path, rng.random((3, 2)), coords, [1.0, 2.0], n_top=2)
    assert len(paths) == 4 and all("_z" in p.name for p in paths)
    with pytest.raises(ValueError, match="'format' parameter"):
        write_ion_images(tmp_path, rng.random((3, 2)), coords, [1.0, 2.0], format="jpg")
    with pytest.raises(ValueError, match="'coords' parameter"):
        write_ion_images(tmp_path, rng.random((3, 2)), coords - 1, [1.0, 2.0])
    with pytest.raises(FileNotFoundError, match="'folder' parameter"):
        write_ion_images(tmp_path / "absent", rng.random((3, 2)), coords, [1.0, 2.0])


def test_relevance_of_an_ims_model_back_to_imzml(tmp_path, shared_data):
    """A fitted IMS pipeline's relevance, per pixel, on the file's pixels and axis."""
    from pyimzml.ImzMLParser import ImzMLParser
    from sklearn.pipeline import make_pipeline

    from sklearn_relevance import RelevanceNetClassifier, explain
    from sklearn_relevance.ims import TICNormalizer, read_imzml

    source = read_imzml(shared_data / "imzml" / "m2aia_peptide_5x4.imzML")
    y = (source.coords[:, 0] > 2).astype(int)
    pipe = make_pipeline(TICNormalizer(), RelevanceNetClassifier(max_epochs=1, random_state=0))
    pipe.fit(source.X, y)
    R = explain(pipe, source.X, explainer="gradient")
    out = write_relevance_imzml(tmp_path / "model_relevance.imzML", R, source)
    parser = ImzMLParser(str(out))
    assert [list(c[:2]) for c in parser.coordinates] == source.coords[:, :2].tolist()
    mzs, values = parser.getspectrum(7)
    np.testing.assert_array_equal(mzs, source.mz)
    np.testing.assert_array_equal(values, R[7].astype(np.float32))
