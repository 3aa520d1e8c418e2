"""imzML reading (bulk, binned, streamed) and atomic writing."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings

import numpy as np
import pytest

from sklearn_relevance.ims import IMSData, iter_imzml, read_imzml, write_imzml

from conftest import READABLE_IMZML as REAL


def _pyimzml_spectra(path):
    from pyimzml.ImzMLParser import ImzMLParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ImzMLParser(str(path)) as p:
            return [p.getspectrum(i) for i in range(len(p.coordinates))], \
                np.asarray(p.coordinates)


@pytest.mark.parametrize("name", REAL)
def test_real_files_read_exactly_as_pyimzml(shared_data, name):
    path = shared_data / "imzml" / name
    data = read_imzml(path, dtype=None)
    spectra, coords = _pyimzml_spectra(path)
    np.testing.assert_array_equal(data.coords, coords)
    assert data.X.shape == (len(spectra), data.mz.size)
    for i, (mz, intensity) in enumerate(spectra):
        col = np.searchsorted(data.mz, mz)
        np.testing.assert_array_equal(data.mz[col], mz)
        np.testing.assert_array_equal(data.X[i, col], intensity)
        # nothing else in the row: the union axis holds zeros elsewhere
        rest = np.delete(data.X[i], col)
        assert not rest.any()
        if data.metadata["continuous"]:
            np.testing.assert_array_equal(data.mz, mz)
    assert data.X.dtype == spectra[0][1].dtype


@pytest.mark.parametrize("name", REAL)
def test_real_files_bin_as_histogram(shared_data, name):
    path = shared_data / "imzml" / name
    spectra, _ = _pyimzml_spectra(path)
    lo = float(min(m.min() for m, _ in spectra))
    hi = float(max(m.max() for m, _ in spectra))
    edges = np.linspace(lo, hi, 41)
    ref = np.array([np.histogram(m, edges, weights=s.astype(np.float64))[0]
                    for m, s in spectra])
    data = read_imzml(path, n_bins=40, dtype=np.float64)
    np.testing.assert_allclose(data.mz, (edges[:-1] + edges[1:]) / 2)
    np.testing.assert_allclose(data.X, ref, rtol=1e-12, atol=1e-9 * np.abs(ref).max())
    # a sub-range crops, and bin_width gives bins of that width
    mid = (lo + hi) / 2
    part = read_imzml(path, mz_range=(lo, mid), bin_width=(mid - lo) / 10, dtype=np.float64)
    np.testing.assert_allclose(np.diff(part.mz), (mid - lo) / 10)
    assert part.mz[0] > lo and part.mz[-1] < mid


def test_two_modes_of_the_same_example_bin_identically(shared_data):
    folder = shared_data / "imzml"
    for kwargs in ({}, {"n_bins": 333}, {"bin_width": 1.7, "mz_range": (150, 600)}):
        cont = read_imzml(folder / "Example_Continuous.imzML", **kwargs)
        proc = read_imzml(folder / "Example_Processed.imzML", **kwargs)
        np.testing.assert_array_equal(cont.X, proc.X)
        np.testing.assert_array_equal(cont.mz, proc.mz)
    assert cont.metadata["continuous"] and not proc.metadata["continuous"]


def test_mz_axis_of_another_file_shares_columns(shared_data):
    folder = shared_data / "imzml"
    ref = read_imzml(folder / "i2nca/pc.imzML", n_bins=100)
    other = read_imzml(folder / "i2nca/combined_pc.imzML", mz=ref.mz)
    np.testing.assert_array_equal(other.mz, ref.mz)
    # bins given by their centres are the equal bins with the same edges
    half = (ref.mz[1] - ref.mz[0]) / 2
    same = read_imzml(folder / "i2nca/combined_pc.imzML", n_bins=100,
                      mz_range=(ref.mz[0] - half, ref.mz[-1] + half))
    np.testing.assert_allclose(other.X, same.X, rtol=1e-6)
    assert other.X.sum() > 0


def test_continuous_file_with_spectra_of_different_lengths_is_refused(shared_data):
    # a real file: continuous mode, one m/z axis of 1999 values, 1990-1999 intensities
    path = shared_data / "imzml" / "i2nca" / "cc.imzML"
    with pytest.raises(ValueError, match=r"cc\.imzML.*continuous mode.*different lengths"):
        read_imzml(path)


def _write_sample(folder, name="sample", n=12, L=50, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, L)).astype(dtype)  # signed values, as relevance
    coords = np.column_stack([np.arange(n) % 4 + 1, np.arange(n) // 4 + 1])
    mz = np.linspace(1000, 2000, L)
    path = folder / f"{name}.imzML"
    write_imzml(path, X, coords, mz)
    return path, X, coords, mz


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_write_read_round_trip_keeps_signed_values(tmp_path, dtype):
    path, X, coords, mz = _write_sample(tmp_path, dtype=dtype)
    data = read_imzml(path, dtype=None)
    assert data.X.dtype == dtype
    np.testing.assert_array_equal(data.X, X)
    np.testing.assert_array_equal(data.mz, mz)
    np.testing.assert_array_equal(data.coords[:, :2], coords)
    assert (data.X < 0).any()
    # pyimzml itself reads what we wrote
    spectra, _pcoords = _pyimzml_spectra(path)
    np.testing.assert_array_equal(np.array([s for _, s in spectra]), X)
    # no temporary file is left, and the run is named after the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.ibd", "sample.imzML"]
    assert 'id="sample"' in path.read_text()
    # the ion image helper puts pixels where the coordinates say
    img = data.image(data.X[:, 0])
    assert img.shape == (3, 4) and img[1, 2] == X[6, 0]


def test_write_replaces_existing_files_atomically(tmp_path):
    path, _, _, _ = _write_sample(tmp_path, seed=0)
    _, X2, _, _ = _write_sample(tmp_path, seed=1)
    np.testing.assert_array_equal(read_imzml(path).X, X2)


def test_write_failure_leaves_no_output(tmp_path, monkeypatch):
    import pyimzml.ImzMLWriter as writer_module

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer_module.ImzMLWriter, "addSpectrum", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_imzml(tmp_path / "x.imzML", np.ones((2, 3)), [[1, 1], [2, 1]], [1, 2, 3])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"X": np.ones(3)}, "'X' parameter of write_imzml"),
    ({"X": np.array([["a", "b"]])}, "real numbers"),
    ({"coords": [[0, 1], [1, 1]]}, "1-based"),
    ({"coords": [[1, 1], [1, 1]]}, "duplicate"),
    ({"coords": [[1, 1]]}, "'coords' parameter"),
    ({"mz": [3.0, 2.0]}, "strictly increasing"),
    ({"mz": [1.0, 2.0, 3.0]}, "length 2"),
])
def test_write_bad_input_raises_before_writing(tmp_path, kwargs, match):
    args = {"X": np.ones((2, 2)), "coords": [[1, 1], [2, 1]], "mz": [1.0, 2.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        write_imzml(tmp_path / "bad.imzML", **args)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_imzml(tmp_path / "nope" / "x.imzML", np.ones((1, 1)), [[1, 1]], [1.0])


def _copy(shared_data, tmp_path, name="Example_Continuous"):
    for ext in (".imzML", ".ibd"):
        shutil.copy(shared_data / "imzml" / (name + ext), tmp_path / (name + ext))
    return tmp_path / (name + ".imzML")


def test_bad_files_raise_naming_file_and_problem(shared_data, tmp_path):
    path = _copy(shared_data, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_imzml(tmp_path / "missing.imzML")
    # mz_range outside the data (100-800)
    with pytest.raises(ValueError, match=r"outside the data of .*Example_Continuous"):
        read_imzml(path, mz_range=(900, 1000))
    with pytest.raises(ValueError, match="low < high"):
        read_imzml(path, mz_range=(500, 400))
    with pytest.raises(ValueError, match="at most one"):
        read_imzml(path, n_bins=10, bin_width=1.0)
    with pytest.raises(ValueError, match="'n_bins' parameter"):
        read_imzml(path, n_bins=0)
    with pytest.raises(ValueError, match="'dtype' parameter"):
        read_imzml(path, dtype=np.int32)
    # truncated .ibd
    ibd = tmp_path / "Example_Continuous.ibd"
    ibd.write_bytes(ibd.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"Example_Continuous\.ibd.*truncated"):
        read_imzml(path)
    # missing .ibd
    ibd.unlink()
    with pytest.raises(FileNotFoundError, match=r"binary file.*Example_Continuous"):
        read_imzml(path)


@pytest.mark.parametrize("cut", ["half", "garbage"])
def test_cut_or_malformed_xml(shared_data, tmp_path, cut):
    path = _copy(shared_data, tmp_path, "Example_Processed")
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2] if cut == "half"
                     else text.replace(b"<", b"[", 40))
    with pytest.raises(ValueError, match=r"Example_Processed\.imzML.*not a readable imzML"):
        read_imzml(path)


def test_irregular_offsets_read_through_fancy_indexing(tmp_path):
    # a continuous file whose spectra are stored in reverse order with gaps
    path, X, _coords, _mz = _write_sample(tmp_path, n=6, L=8)
    text = path.read_text()
    ibd = (tmp_path / "sample.ibd").read_bytes()
    L, s = 8, 4
    first = 16 + 8 * L  # uuid, then the float64 m/z array
    blocks = [ibd[first + i * L * s: first + (i + 1) * L * s] for i in range(6)]
    gap = b"\x00" * 6  # unaligned to the item size
    new = bytearray(ibd[:first])
    offsets = {}
    for i in reversed(range(6)):
        new += gap
        offsets[i] = len(new)
        new += blocks[i]
    (tmp_path / "sample.ibd").write_bytes(bytes(new))
    for i in range(6):
        old = f'name="external offset" value="{first + i * L * s}"'
        assert old in text
        text = text.replace(old, f'name="external offset" value="X{offsets[i]}"', 1)
    path.write_text(text.replace('value="X', 'value="'))
    np.testing.assert_array_equal(read_imzml(path).X, X)


def test_iter_imzml_streams_with_memory_bounded_by_chunk(tmp_path):
    n, L = 400, 2000
    rng = np.random.default_rng(0)
    X = rng.random((n, L), dtype=np.float32)
    path = tmp_path / "big.imzML"
    write_imzml(path, X, np.column_stack([np.arange(n) + 1, np.ones(n, int)]),
                np.linspace(100, 900, L))
    full = read_imzml(path)
    np.testing.assert_array_equal(full.X, X)
    chunks = iter_imzml(path, chunk_size=20)  # parses the XML now, reads nothing yet
    tracemalloc.start()
    n_chunks = sum(1 for _ in chunks)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n_chunks == n // 20
    chunk_bytes = 20 * L * 4
    # at most the chunk being read and the one just released, far below the file
    assert peak < 3 * chunk_bytes < X.nbytes / 6
    seen = 0
    for chunk in iter_imzml(path, chunk_size=20):
        np.testing.assert_array_equal(chunk.X, X[chunk.index])
        seen += len(chunk.X)
    assert seen == n
    # budget-driven chunks and binned chunks agree with the full read
    parts = [c.X for c in iter_imzml(path, n_bins=50, memory_budget=200_000)]
    assert len(parts) > 1
    np.testing.assert_array_equal(np.concatenate(parts), read_imzml(path, n_bins=50).X)
    with pytest.raises(ValueError, match="'chunk_size' parameter"):
        next(iter_imzml(path, chunk_size=0))


def test_imsdata_image_validates():
    data = IMSData(np.ones((2, 2)), np.array([[1, 1, 1], [2, 1, 1]]), np.array([1., 2.]))
    with pytest.raises(ValueError, match="one value per pixel"):
        data.image(np.ones(3))
    np.testing.assert_array_equal(data.ion_image(2.0, tol=0.1), [[1.0, 1.0]])


# --------------------------------------------------------------- file-pair integrity

def _open_fds():
    import os

    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


def test_crash_between_renames_is_refused_not_read_as_garbage(tmp_path, monkeypatch):
    import os

    from sklearn_relevance.ims import io as io_module

    path, X_old, _, _ = _write_sample(tmp_path, seed=0)
    real_replace = os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the two renames")
        return real_replace(src, dst)

    monkeypatch.setattr(io_module.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        _write_sample(tmp_path, seed=1)
    monkeypatch.undo()
    # a new .ibd beside the old .imzML: refused, naming both files and both UUIDs
    with pytest.raises(ValueError, match=r"sample\.ibd.*does not belong to.*sample\.imzML"
                                         r".*UUID header is [0-9a-f-]{36}.*declares "
                                         r"[0-9a-f-]{36}"):
        read_imzml(path)
    with pytest.raises(ValueError, match="does not belong"):
        next(iter_imzml(path))
    # no temporary is left, and the next write repairs the pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.ibd", "sample.imzML"]
    _, X_new, _, _ = _write_sample(tmp_path, seed=2)
    np.testing.assert_array_equal(read_imzml(path).X, X_new)


def test_ibd_of_another_acquisition_with_the_same_shape_is_refused(tmp_path):
    a, X_a, _, _ = _write_sample(tmp_path, "a", seed=0)
    _b, _X_b, _, _ = _write_sample(tmp_path, "b", seed=1)
    shutil.copy(tmp_path / "b.ibd", tmp_path / "a.ibd")
    with pytest.raises(ValueError, match=r"a\.ibd.*does not belong to.*a\.imzML"):
        read_imzml(a)


def test_verify_checksum(shared_data, tmp_path):
    path = _copy(shared_data, tmp_path)
    read_imzml(path, verify_checksum=True)  # SHA-1 declared and right
    read_imzml(shared_data / "imzml" / "rmsi_processed_6px.imzML",
               verify_checksum=True)  # MD5 declared and right
    ibd = tmp_path / "Example_Continuous.ibd"
    raw = bytearray(ibd.read_bytes())
    raw[-3] ^= 0xFF  # one intensity byte flipped: same UUID, same size
    ibd.write_bytes(bytes(raw))
    read_imzml(path)  # not asked: the UUID matches, the read goes through
    with pytest.raises(ValueError, match=r"Example_Continuous\.ibd.*fails its SHA-1"):
        read_imzml(path, verify_checksum=True)
    with pytest.raises(ValueError, match=r"fails its SHA-1"):
        iter_imzml(path, verify_checksum=True)
    text = path.read_bytes()
    start = text.index(b'<cvParam cvRef="IMS" accession="IMS:1000091"')
    path.write_bytes(text[:start] + text[text.index(b"/>", start) + 2:])
    with pytest.raises(ValueError, match="declares no SHA-1"):
        read_imzml(path, verify_checksum=True)
    with pytest.raises(ValueError, match="'verify_checksum' parameter of read_imzml"):
        read_imzml(path, verify_checksum="yes")


def test_target_imzml_that_is_a_directory_touches_nothing(tmp_path):
    path, X, _, _ = _write_sample(tmp_path, seed=0)
    before = (tmp_path / "sample.ibd").read_bytes()
    (tmp_path / "other.imzML").mkdir()
    (tmp_path / "other.ibd").write_bytes(before)
    with pytest.raises(IsADirectoryError, match=r"other\.imzML.*is a directory"):
        write_imzml(tmp_path / "other.imzML", X, [[i + 1, 1] for i in range(len(X))],
                    np.linspace(1000, 2000, X.shape[1]))
    assert (tmp_path / "other.ibd").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.ibd", "other.imzML", "sample.ibd", "sample.imzML"]


@pytest.mark.parametrize("kwargs, match", [
    ({"polarity": "sideways"}, "'polarity' parameter of write_imzml"),
    ({"polarity": 1}, "'polarity' parameter of write_imzml"),
    ({"intensity_dtype": np.int32}, "'intensity_dtype' parameter"),
    ({"intensity_dtype": "nonsense"}, "'intensity_dtype' parameter"),
    ({"mz_dtype": np.float16}, "'mz_dtype' parameter"),
    ({"spec_type": "both"}, "'spec_type' parameter"),
    ({"X": np.array([[1e39, 1.0]]), "intensity_dtype": np.float32}, "overflow.*float32"),
    ({"mz": [1000.0, 1000.00001], "mz_dtype": np.float32}, "cannot tell apart"),
    ({"coords": [[1, np.nan], [2, 1]]}, "1-based integer"),
])
def test_write_arguments_checked_before_any_file_is_opened(tmp_path, kwargs, match):
    args = {"X": np.ones((2, 2)), "coords": [[1, 1], [2, 1]], "mz": [1.0, 2.0]}
    args.update(kwargs)
    if args["X"].shape[0] == 1:
        args["coords"] = [[1, 1]]
    fds = _open_fds()
    with pytest.raises(ValueError, match=match):
        write_imzml(tmp_path / "bad.imzML", **args)
    assert list(tmp_path.iterdir()) == []
    assert _open_fds() == fds  # no handle leaked


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a finished process: its pid no longer runs
    dead = [tmp_path / f".sample.{proc.pid}-0123456789ab.tmp{ext}"
            for ext in (".imzML", ".ibd")]
    alive = tmp_path / f".sample.{os.getppid()}-0123456789ab.tmp.ibd"  # a running writer
    other = tmp_path / f".other.{proc.pid}-0123456789ab.tmp.ibd"  # another target
    for p in [*dead, alive, other]:
        p.write_bytes(b"partial")
    _write_sample(tmp_path, seed=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([alive.name, other.name, "sample.ibd", "sample.imzML"])
