"""parse_imzml_metadata: pyimzML's numbers and metadata, checked like a read."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from sklearn_relevance.ims import ImzMLMetadata, parse_imzml_metadata, read_imzml, write_imzml

pyimzml = pytest.importorskip("pyimzml.ImzMLParser")


def _processed(path, n=7, seed=0):
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(seed)
    with ImzMLWriter(str(path), mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i in range(n):
            k = int(rng.integers(3, 9))
            w.addSpectrum(np.sort(rng.uniform(100, 900, k)), rng.random(k, dtype=np.float32),
                          (i % 3 + 1, i // 3 + 1))


def _reference(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = pyimzml.ImzMLParser(str(path))
    p.m.close()
    return p


@pytest.mark.parametrize("kind", ["continuous", "processed"])
def test_numbers_and_metadata_are_pyimzmls(tmp_path, kind):
    path = tmp_path / f"{kind}.imzML"
    if kind == "continuous":
        write_imzml(path, np.arange(12.0).reshape(4, 3), [(1, 1), (2, 1), (1, 2), (2, 2)],
                    [100.0, 200.0, 300.0])
    else:
        _processed(path)
    meta = parse_imzml_metadata(path)
    ref = _reference(path)
    assert isinstance(meta, ImzMLMetadata)
    for ours, theirs in ((meta.mz_offsets, ref.mzOffsets), (meta.mz_lengths, ref.mzLengths),
                         (meta.intensity_offsets, ref.intensityOffsets),
                         (meta.intensity_lengths, ref.intensityLengths),
                         (meta.coords, ref.coordinates)):
        assert np.array_equal(ours, np.asarray(theirs))
    assert meta.continuous is (kind == "continuous")
    assert meta.metadata["imzml"] == ref.imzmldict
    pretty = ref.metadata.pretty()
    assert {k: meta.metadata[k] for k in pretty} == pretty
    assert meta.metadata == read_imzml(path).metadata
    assert os.path.samefile(meta.ibd_path, path.with_suffix(".ibd"))
    assert meta.mz_dtype == np.dtype("<f8")


def test_missing_and_mismatched_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_imzml_metadata(tmp_path / "none.imzML")
    path = tmp_path / "a.imzML"
    write_imzml(path, np.ones((2, 3)), [(1, 1), (2, 1)], [1.0, 2.0, 3.0])
    os.remove(path.with_suffix(".ibd"))
    with pytest.raises(FileNotFoundError, match="binary file"):
        parse_imzml_metadata(path)
    cut = tmp_path / "cut.imzML"
    write_imzml(cut, np.ones((2, 3)), [(1, 1), (2, 1)], [1.0, 2.0, 3.0])
    text = cut.read_bytes()
    cut.write_bytes(text[: len(text) // 2])
    with pytest.raises(ValueError, match="not a readable imzML file"):
        parse_imzml_metadata(cut)
