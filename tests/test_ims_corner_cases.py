"""imzML corner cases and malformed numbers: clear errors naming the file and the field."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sklearn_relevance.ims import IMSData, iter_imzml, read_imzml, scan_imzml, write_imzml
from sklearn_relevance.ims._layout import parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, n=4, L=5, dtype=np.float32):
    X = np.arange(n * L, dtype=dtype).reshape(n, L) + 1
    write_imzml(path, X, [[i + 1, 1] for i in range(n)], np.linspace(100, 500, L))
    return X


def _set(path, accession, occurrence, value):
    """Set the ``value`` of the ``occurrence``-th cvParam ``accession`` of the XML."""
    text = path.read_text()
    hits = list(re.finditer(rf'accession="{accession}"[^>]*value="([^"]*)"', text))
    m = hits[occurrence]
    path.write_text(text[:m.start(1)] + str(value) + text[m.end(1):])


def _pyimzml_write(path, spectra, coords, mode="processed"):
    from pyimzml.ImzMLWriter import ImzMLWriter

    with ImzMLWriter(str(path), mode=mode, mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for (mz, ints), xyz in zip(spectra, coords):
            w.addSpectrum(np.asarray(mz, np.float64), np.asarray(ints, np.float32), xyz)


# ------------------------------------------------------------------- coordinates

@pytest.mark.parametrize("axis, accession", [("x", "IMS:1000050"), ("y", "IMS:1000051")])
@pytest.mark.parametrize("value", [0, -3])
def test_pixel_coordinates_below_one_are_refused(tmp_path, axis, accession, value):
    path = tmp_path / "a.imzML"
    _write(path)
    _set(path, accession, 2, value)
    with pytest.raises(ValueError, match=rf"a\.imzML' is malformed: the position {axis} "
                       rf"\({accession}\) of spectrum 2 is {value}; .* 1-based"):
        read_imzml(path)
    coords = np.array([[1, 1, 1], [2, 1, 1]])
    coords[1, "xy".index(axis)] = value
    data = IMSData(np.ones((2, 2)), coords, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=rf"spectrum 1 lies at {axis}={value}; .*wrap"):
        data.image(np.ones(2))


def test_two_spectra_at_one_pixel_are_refused_by_image(tmp_path):
    path = tmp_path / "a.imzML"
    X = _write(path)
    _set(path, "IMS:1000050", 3, 2)  # spectrum 3 at x=2, as spectrum 1
    data = read_imzml(path)
    np.testing.assert_array_equal(data.X, X)  # every spectrum is read
    with pytest.raises(ValueError, match=r"Spectra 1 and 3 of .*a\.imzML' lie at the same "
                       r"pixel \(x, y, z\) = \(2, 1, 1\)"):
        data.image(data.X.sum(axis=1))
    with pytest.raises(ValueError, match="same pixel"):
        data.ion_image(100.0)


def test_image_of_3d_data_asks_for_a_slice_and_takes_one():
    coords = np.array([[1, 1, 1], [1, 1, 2], [2, 1, 2]])
    data = IMSData(np.ones((3, 1)), coords, np.array([1.0]))
    with pytest.raises(ValueError, match="same pixel.*pass z="):
        data.image(np.arange(3.0))
    np.testing.assert_array_equal(data.image(np.arange(3.0), z=2), [[1.0, 2.0]])
    with pytest.raises(ValueError, match="No pixel .* z=5"):
        data.image(np.arange(3.0), z=5)


def test_image_far_beyond_memory_is_refused_before_allocating(tmp_path):
    data = IMSData(np.ones((2, 1)), np.array([[1, 1, 1], [10**9, 1, 1]]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"would be 1 x 1000000000 pixels .* x=1000000000"):
        data.image(np.ones(2))
    path = tmp_path / "a.imzML"
    _write(path)
    _set(path, "IMS:1000050", 1, 10**9)
    data = read_imzml(path)  # reading is fine: only the image cannot exist
    with pytest.raises(ValueError, match=r"a\.imzML' would be 1 x 1000000000 pixels"):
        data.image(np.ones(len(data.X)))


# ------------------------------------------------------------------- values

def test_nan_mz_is_refused(tmp_path):
    path = tmp_path / "p.imzML"
    rng = np.random.default_rng(0)
    spectra = [(np.sort(rng.uniform(100, 500, 6)), rng.random(6)) for _ in range(3)]
    spectra[1][0][2] = np.nan
    _pyimzml_write(path, spectra, [(1, 1, 1), (2, 1, 1), (3, 1, 1)])
    for kwargs in ({}, {"n_bins": 10}, {"mz": np.linspace(100, 500, 7)}):
        with pytest.raises(ValueError, match=r"p\.imzML': the m/z array of spectrum 1 .*"
                           "NaN or infinity"):
            read_imzml(path, **kwargs)
    cont = tmp_path / "c.imzML"
    mz = np.linspace(100, 500, 6)
    mz[4] = np.inf
    _pyimzml_write(cont, [(mz, np.ones(6))] * 2, [(1, 1, 1), (2, 1, 1)], mode="continuous")
    with pytest.raises(ValueError, match=r"c\.imzML': the m/z array .*NaN or infinity"):
        read_imzml(cont)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_overwritten_ibd_bytes_giving_nan_are_refused(tmp_path, lazy, dtype):
    path = tmp_path / "a.imzML"
    _write(path, n=20, L=40, dtype=dtype)
    layout = parse(path)
    with open(layout.ibd, "r+b") as f:  # 200 bytes of 0xFF: NaN in either precision
        f.seek(int(layout.int_offsets[7]) + 8)
        f.write(b"\xff" * 200)
    with pytest.raises(ValueError, match=r"a\.ibd' holds NaN or infinity in the intensities "
                       r"of spectrum 7 \(pixel x=8, y=1, z=1\)"):
        X = read_imzml(path, lazy=lazy).X
        np.asarray(X)
    with pytest.raises(ValueError, match="NaN or infinity"):
        list(iter_imzml(path, chunk_size=3))
    with pytest.raises(ValueError, match="NaN or infinity"):
        read_imzml(path, n_bins=5)


def test_write_refuses_nan_and_infinity(tmp_path):
    X = np.ones((2, 3))
    X[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"'X' parameter of write_imzml must hold finite "
                       r"values.*row 1, column 2"):
        write_imzml(tmp_path / "a.imzML", X, [[1, 1], [2, 1]], [1.0, 2.0, 3.0])
    assert not list(tmp_path.iterdir())


def test_file_declaring_no_uuid_is_read_with_a_warning(tmp_path):
    path = tmp_path / "a.imzML"
    X = _write(path)
    path.write_text(re.sub(r"\s*<cvParam[^>]*IMS:1000080[^>]*/>", "", path.read_text()))
    with pytest.warns(UserWarning, match=r"a\.imzML' declares no UUID .* another acquisition"):
        data = read_imzml(path)
    np.testing.assert_array_equal(data.X, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _write(tmp_path / "b.imzML")
        read_imzml(tmp_path / "b.imzML")  # a UUID: no warning


# ------------------------------------------------------------------- malformed numbers

@pytest.mark.parametrize("accession, occurrence, value, match", [
    ("IMS:1000103", 3, -5, r"intensity array length \(IMS:1000103\) of spectrum 1 is -5, "
                           "which is negative"),
    ("IMS:1000103", 2, -1, r"m/z array length \(IMS:1000103\) of spectrum 1 is -1"),
    ("IMS:1000102", 3, 2**63 - 808, r"intensity array offset \(IMS:1000102\) of spectrum 1 "
                                    rf"is {2**63 - 808}, which points past its end"),
    ("IMS:1000103", 3, 2**62, rf"intensity array length \(IMS:1000103\) of spectrum 1 is "
                              rf"{2**62}, which is more values than it holds"),
    ("IMS:1000102", 3, 10**25, r"not a readable imzML file"),
])
@pytest.mark.parametrize("lazy", [False, True])
def test_malformed_numbers_are_named(tmp_path, accession, occurrence, value, match, lazy):
    path = tmp_path / "a.imzML"
    _write(path)
    _set(path, accession, occurrence, value)
    with pytest.raises(ValueError, match=r"a\.imzML.*" + match):
        read_imzml(path, lazy=lazy)
    with pytest.raises(ValueError, match=match):
        scan_imzml(path)


def test_processed_file_whose_spectra_are_all_empty_is_refused(tmp_path):
    path = tmp_path / "p.imzML"
    _pyimzml_write(path, [([100.0], [1.0])] * 3, [(1, 1, 1), (2, 1, 1), (3, 1, 1)])
    for k in range(6):  # pyimzML's writer cannot write empty arrays: empty them here
        _set(path, "IMS:1000103", k, 0)
    for kwargs in ({}, {"n_bins": 4}, {"lazy": True}):
        with pytest.raises(ValueError, match=r"p\.imzML' holds no values: every one of its "
                           r"3 spectra is empty \(intensity array length 0\)"):
            read_imzml(path, **kwargs)


def test_some_empty_spectra_read_as_zero_rows(tmp_path):
    path = tmp_path / "p.imzML"
    _pyimzml_write(path, [([100.0, 200.0], [1.0, 2.0]), ([150.0], [3.0]), ([200.0], [5.0])],
                   [(1, 1, 1), (2, 1, 1), (3, 1, 1)])
    _set(path, "IMS:1000103", 2, 0)  # spectrum 1 empty
    _set(path, "IMS:1000103", 3, 0)
    np.testing.assert_array_equal(read_imzml(path).X, [[1, 2], [0, 0], [0, 5]])


# ------------------------------------------------------------------- paths

def test_paths_that_are_no_regular_file_say_what_they_are(tmp_path):
    folder = tmp_path / "d.imzML"
    folder.mkdir()
    for path in (folder, tmp_path):
        with pytest.raises(IsADirectoryError, match=r"imzML file .* is a directory"):
            read_imzml(path)
        with pytest.raises(IsADirectoryError, match="is a directory"):
            read_imzml(path, lazy=True)
        with pytest.raises(IsADirectoryError, match="is a directory"):
            scan_imzml(path)
    fifo = tmp_path / "f.imzML"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"f\.imzML' is not a regular file: it is a FIFO"):
        read_imzml(fifo)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="is not a regular file: it is a character"):
            read_imzml("/dev/null")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_imzml(tmp_path / "missing.imzML")
    path = tmp_path / "a.imzML"
    _write(path)
    os.remove(tmp_path / "a.ibd")
    (tmp_path / "a.ibd").mkdir()
    with pytest.raises(IsADirectoryError, match=r"binary file of .*a\.imzML', .*a\.ibd' is a "
                       "directory"):
        read_imzml(path)


# ------------------------------------------------------------------- imports

def test_reading_imports_no_torch_and_no_scikit_learn(tmp_path):
    path = tmp_path / "a.imzML"
    _write(path)
    code = (
        "import sys\n"
        "from sklearn_relevance.ims import read_imzml, iter_imzml, scan_imzml\n"
        f"p = {str(path)!r}\n"
        "read_imzml(p); read_imzml(p, n_bins=3); read_imzml(p, lazy=True).X.read()\n"
        "list(iter_imzml(p, chunk_size=2)); scan_imzml(p)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'sklearn', 'skorch', 'scipy')))\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
