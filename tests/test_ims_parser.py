"""The byte-scan imzML parser against pyimzML's ImzMLParser, field by field."""

from __future__ import annotations

import math
import re
import shutil
import warnings

import numpy as np
import pytest

from sklearn_relevance.ims import _parser
from sklearn_relevance.ims import read_imzml
from sklearn_relevance.ims._parser import Irregular, parse_imzml

from conftest import SHARED_IMZML as REAL
ARRAYS = ["mzOffsets", "mzLengths", "intensityOffsets", "intensityLengths", "coordinates"]
FIELDS = ["mzPrecision", "intensityPrecision", "polarity", "spectrum_mode"]


def _pyimzml(path):
    from pyimzml.ImzMLParser import ImzMLParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImzMLParser(str(path), ibd_file=None)


def _same(a, b, where=""):
    """Equal values of equal types, recursively (NaN equals NaN)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, (where, a, b)


def _assert_equal_to_pyimzml(path, engine="scan"):
    ours = parse_imzml(path, engine=engine)
    ref = _pyimzml(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(ours, name),
                                      np.asarray(getattr(ref, name), np.int64), err_msg=name)
    for name in FIELDS:
        _same(getattr(ours, name), getattr(ref, name), name)
    _same(ours.imzmldict, ref.imzmldict, "imzmldict")
    _same(ours.metadata.pretty(), ref.metadata.pretty(), "metadata")
    fd, rfd = ours.metadata.file_description, ref.metadata.file_description
    _same(fd.param_by_accession, rfd.param_by_accession, "file_description")
    for gid, group in ref.metadata.referenceable_param_groups.items():
        mine = ours.metadata.referenceable_param_groups[gid]
        _same(mine.param_by_name, group.param_by_name, gid)
        _same(mine.cv_params, group.cv_params, gid)
    return ours


@pytest.mark.parametrize("name", REAL)
def test_scan_equals_pyimzml_on_every_shared_file(shared_data, name):
    _assert_equal_to_pyimzml(shared_data / "imzml" / name)


@pytest.mark.parametrize("mode", ["continuous", "processed"])
@pytest.mark.parametrize("mz_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("int_dtype", [np.float32, np.float64, np.int32, np.int64])
def test_scan_equals_pyimzml_on_files_of_pyimzml_writer(tmp_path, mode, mz_dtype,
                                                        int_dtype):
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(0)
    path = tmp_path / "w.imzML"
    polarity = "negative" if int_dtype in (np.int32, np.float64) else "positive"
    with ImzMLWriter(str(path), mode=mode, mz_dtype=mz_dtype, intensity_dtype=int_dtype,
                     spec_type="centroid" if mode == "processed" else "profile",
                     polarity=polarity) as w:
        for i in range(23):
            k = 7 if mode == "continuous" else int(rng.integers(1, 9))
            mz = np.sort(rng.uniform(100, 900, k)) if mode == "processed" \
                else np.linspace(100, 900, k)
            coords = (i % 5 + 1, i // 5 + 1, i % 2 + 1) if i % 3 else (i % 5 + 1, i // 5 + 1)
            w.addSpectrum(mz, (rng.random(k) * 100).astype(int_dtype), coords)
    ours = _assert_equal_to_pyimzml(path)
    assert ours.polarity == polarity
    # and the file reads as pyimzML's getspectrum reads it
    data = read_imzml(path, dtype=None)
    assert data.X.shape[0] == 23


def test_scan_across_blocks_and_spectra_larger_than_a_block(shared_data, monkeypatch):
    for block in (300, 2048, 7777):
        monkeypatch.setattr(_parser, "BLOCK", block)
        for name in ("Example_Processed.imzML", "i2nca/combined_pc.imzML"):
            _assert_equal_to_pyimzml(shared_data / "imzml" / name)


def _copy(shared_data, tmp_path, name="Example_Continuous"):
    for ext in (".imzML", ".ibd"):
        shutil.copy(shared_data / "imzml" / (name + ext), tmp_path / (name + ext))
    return tmp_path / (name + ".imzML")


@pytest.mark.parametrize("edit", ["value_first", "comment", "single_quotes", "third_array",
                                  "signed_offsets", "renamed_term", "count_low",
                                  "count_high"])
def test_irregular_files_fall_back_to_pyimzml_with_equal_results(shared_data, tmp_path,
                                                                 edit):
    path = _copy(shared_data, tmp_path)
    text = path.read_bytes()
    if edit == "value_first":  # attributes in another order: legal XML
        text = text.replace(b'accession="IMS:1000050" name="position x" value="3"',
                            b'value="3" accession="IMS:1000050" name="position x"')
    elif edit == "comment":
        text = text.replace(b"<binary />", b"<binary /><!-- a > b -->", 5)
    elif edit == "single_quotes":
        text = text.replace(b'value="33612"', b"value='33612'")
    elif edit == "third_array":
        i = text.index(b"</binaryDataArrayList>")
        text = text[:i] + (b'<binaryDataArray encodedLength="0"><referenceableParamGroupRef '
                           b'ref="other"/><cvParam cvRef="IMS" accession="IMS:1000102" '
                           b'name="external offset" value="16"/></binaryDataArray>') + text[i:]
    elif edit == "signed_offsets":  # written as signed 32-bit: pyimzML's repair applies
        assert b'value="67208"' in text
        text = text.replace(b'value="67208"', b'value="-67208"')
    elif edit == "renamed_term":  # another attribute length in one spectrum only
        text = text.replace(b'name="position y" value="2"', b'name="y" value="2"', 1)
    elif edit.startswith("count"):  # the spectrum list's count is only a size hint
        n = b"1" if edit == "count_low" else b"100000"
        text = re.sub(rb'(<spectrumList count=")\d+"', rb"\g<1>" + n + b'"', text)
    assert text != path.read_bytes()
    path.write_bytes(text)
    if edit == "renamed_term" or edit.startswith("count"):  # regular: the scan copes
        parse_imzml(path, engine="scan")
    elif edit == "signed_offsets":  # regular: the scan repairs them itself
        ours = parse_imzml(path, engine="scan")
        assert ours.intensityOffsets[1] == 2**32 - 67208
    elif edit != "third_array":
        with pytest.raises(Irregular):
            parse_imzml(path, engine="scan")
    _assert_equal_to_pyimzml(path, engine="auto")


@pytest.mark.parametrize("damage", ["cut_header", "cut_spectra", "cut_tail", "garbage_header",
                                    "garbage_middle", "no_groups"])
def test_malformed_files_are_refused_as_pyimzml_refuses_them(shared_data, tmp_path, damage):
    path = _copy(shared_data, tmp_path, "Example_Processed")
    text = path.read_bytes()
    middle = text.index(b"<spectrum ", len(text) // 2)
    if damage == "cut_header":
        text = text[: text.index(b"<spectrumList") - 100]
    elif damage == "cut_spectra":
        text = text[: middle + 200]
    elif damage == "cut_tail":
        text = text[: text.rindex(b"</run>") + 2]
    elif damage == "garbage_header":
        text = text.replace(b"<", b"[", 40)
    elif damage == "garbage_middle":
        text = text[:middle] + text[middle:].replace(b"<cvParam", b"<cvParam<", 1)
    elif damage == "no_groups":
        text = text.replace(b'name="m/z array"', b'name="x array"').replace(
            b"MS:1000514", b"MS:1000000")
    path.write_bytes(text)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the reference refuses it
        _pyimzml(path)
    with pytest.raises(ValueError, match=r"Example_Processed\.imzML"):
        read_imzml(path)


def _no_general_scan(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a block left the template path")

    monkeypatch.setattr(_parser, "scan_block", refuse)


@pytest.mark.parametrize("name", REAL)
def test_template_path_reads_every_shared_file(shared_data, monkeypatch, name):
    _no_general_scan(monkeypatch)
    _assert_equal_to_pyimzml(shared_data / "imzml" / name)


@pytest.mark.parametrize("mode", ["continuous", "processed"])
def test_template_path_reads_pyimzml_writer_files_across_blocks(tmp_path, monkeypatch, mode):
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(1)
    path = tmp_path / "w.imzML"
    with ImzMLWriter(str(path), mode=mode, mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i in range(300):  # offsets and coordinates of 1 to 6 digits
            k = 5 if mode == "continuous" else int(rng.integers(1, 9))
            w.addSpectrum(np.sort(rng.uniform(100, 900, k)), rng.random(k),
                          (i % 17 + 1, i // 17 + 1, 1 + (i % 4) * 3000))
    _no_general_scan(monkeypatch)
    for block in (4096, 2**20):
        monkeypatch.setattr(_parser, "BLOCK", block)
        _assert_equal_to_pyimzml(path)


def _edit_spectrum(text, index, old, new):
    """Replace ``old`` by ``new`` in the ``index``-th spectrum only."""
    starts = [m.start() for m in re.finditer(rb"<spectrum ", text)]
    start, stop = starts[index], text.index(b"</spectrum>", starts[index])
    part = text[start:stop]
    assert old in part
    return text[:start] + part.replace(old, new, 1) + text[stop:]


@pytest.mark.parametrize("edit", ["swapped_arrays", "other_term", "shadowing_term",
                                  "self_closed_scan", "longer_indent"])
def test_spectra_departing_from_the_template_leave_the_template_path(
        shared_data, tmp_path, monkeypatch, edit):
    """A later spectrum that looks alike but differs where pyimzML looks is not
    read at the first spectrum's offsets: its block goes to the general scan."""
    path = _copy(shared_data, tmp_path, "Example_Processed")
    text = path.read_bytes()
    if edit == "swapped_arrays":  # same bytes, the arrays' groups exchanged
        text = _edit_spectrum(text, 3, b'ref="mzArray"', b'ref="XXXXXXX"')
        text = _edit_spectrum(text, 3, b'ref="intensityArray"', b'ref="mzArray"')
        text = _edit_spectrum(text, 3, b'ref="XXXXXXX"', b'ref="intensityArray"')
    elif edit == "other_term":  # same lengths, x and y exchange their accessions
        text = _edit_spectrum(text, 5, b'"IMS:1000050" name="position x"', b"@X@")
        text = _edit_spectrum(text, 5, b'"IMS:1000051" name="position y"',
                              b'"IMS:1000050" name="position x"')
        text = _edit_spectrum(text, 5, b"@X@", b'"IMS:1000051" name="position y"')
    elif edit == "shadowing_term":  # a first match for pyimzML's lookup of x
        text = _edit_spectrum(text, 2, b'<referenceableParamGroupRef ref="scan1"/>',
                              b'<cvParam cvRef="IMS" accession="IMS:1000050" '
                              b'name="position x" value="99"/>')
    elif edit == "self_closed_scan":  # same length, nesting broken
        text = _edit_spectrum(text, 5, b'<scan instrumentConfigurationRef="LTQFTUltra0">',
                              b'<scan instrumentConfigurationRef="LTQFTUltra"/>')
    elif edit == "longer_indent":  # harmless, but not the template's bytes
        text = _edit_spectrum(text, 6, b"\n          </scan>", b"\n           </scan>")
    path.write_bytes(text)

    class HandedOver(Exception):
        pass

    def general_scan(*args, **kwargs):
        raise HandedOver

    with monkeypatch.context() as m:
        m.setattr(_parser, "scan_block", general_scan)
        with pytest.raises(HandedOver):
            _parser._fast(path)
    if edit == "self_closed_scan":  # malformed: pyimzML refuses it
        with pytest.raises(Exception):  # noqa: B017, PT011
            _pyimzml(path)
        return
    ours = _assert_equal_to_pyimzml(path, engine="auto")
    if edit == "other_term":
        before = parse_imzml(shared_data / "imzml" / "Example_Processed.imzML")
        np.testing.assert_array_equal(ours.coordinates[5, :2], before.coordinates[5, 1::-1])
        assert ours.coordinates[5, 0] != ours.coordinates[5, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, None])
@pytest.mark.parametrize("working_set", [64, 2**23])
def test_continuous_block_read_into_place_equals_getspectrum(tmp_path, monkeypatch, dtype,
                                                             working_set):
    from sklearn_relevance.ims import _reader, write_imzml

    rng = np.random.default_rng(2)
    X = rng.normal(size=(37, 11)) * 1e3
    path = tmp_path / "c.imzML"
    write_imzml(path, X, np.column_stack([np.arange(37) % 6 + 1, np.arange(37) // 6 + 1]),
                np.linspace(100, 200, 11), intensity_dtype=np.float64)
    monkeypatch.setattr(_reader, "_WORKING_SET", working_set)  # 64 bytes: one row per chunk
    data = read_imzml(path, dtype=dtype)
    from pyimzml.ImzMLParser import ImzMLParser

    with ImzMLParser(str(path)) as ref:
        expected = np.stack([ref.getspectrum(i)[1] for i in range(37)])
    assert data.X.dtype == (np.float64 if dtype is None else dtype)
    np.testing.assert_array_equal(data.X, expected.astype(data.X.dtype))
    assert data.X.flags.c_contiguous and data.X.flags.writeable


@pytest.mark.parametrize("signed", [False, True])
def test_vectorised_integers_equal_int_and_refuse_the_rest(signed):
    texts = [b"0", b"7", b"42", b"100", b"123456789012345678", b"999999999999999999",
             b"000012"] + ([b"-5", b"-0", b"-123456789"] if signed else [])
    window = np.zeros((len(texts), 20), np.uint8)
    for i, t in enumerate(texts):
        window[i, :len(t) + 1] = np.frombuffer(t + b'"', np.uint8)
    length = np.argmax(window == 34, axis=1)
    assert _parser._integers(window, length).tolist() == [int(t) for t in texts]
    for bad in (b"1a", b"1.0", b"--1", b"1-", b" 1", b"", b"1234567890123456789"):
        w = np.zeros((1, 21), np.uint8)
        w[0, :len(bad) + 1] = np.frombuffer(bad + b'"', np.uint8)
        with pytest.raises(Irregular):
            _parser._integers(w[:, :20], np.argmax(w[:, :20] == 34, axis=1))


# ----------------------------------------------------------------------------- threaded scan

def _writer_file(path, mode, n=300, seed=1):
    from pyimzml.ImzMLWriter import ImzMLWriter

    rng = np.random.default_rng(seed)
    with ImzMLWriter(str(path), mode=mode, mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i in range(n):  # offsets and coordinates of 1 to 6 digits
            k = 5 if mode == "continuous" else int(rng.integers(1, 9))
            w.addSpectrum(np.sort(rng.uniform(100, 900, k)), rng.random(k),
                          (i % 17 + 1, i // 17 + 1, 1 + (i % 4) * 3000))
    return path


class _Spy:
    """Counts the blocks scanned by worker threads and the buffers made."""

    def __init__(self, monkeypatch):
        import threading

        self.threaded = self.serial = self.buffers = 0
        main = threading.get_ident()
        numbers, init = _parser._numbers, _parser._Buffer.__init__

        def spy_numbers(*args):
            if threading.get_ident() == main:
                self.serial += 1
            else:
                self.threaded += 1
            return numbers(*args)

        def spy_init(buf, f):
            self.buffers += 1
            init(buf, f)

        monkeypatch.setattr(_parser, "_numbers", spy_numbers)
        monkeypatch.setattr(_parser._Buffer, "__init__", spy_init)


def _serial(path):
    """The scan with every block on the calling thread."""
    import unittest.mock

    with unittest.mock.patch.object(_parser, "SERIAL_BLOCKS", 10**9):
        return parse_imzml(path, engine="scan")


@pytest.mark.parametrize("mode", ["continuous", "processed"])
@pytest.mark.parametrize(("block", "serial_blocks", "workers"),
                         [(4096, 0, 2), (4096, 3, 2), (7777, 1, 2), (4096, 1, 1), (5000, 2, 3)])
def test_threaded_scan_equals_serial_scan_and_pyimzml(tmp_path, monkeypatch, mode, block,
                                                      serial_blocks, workers):
    """Blocks past ``SERIAL_BLOCKS`` are scanned in worker threads, and the
    columns come out in file order: what the serial scan and pyimzML give."""
    path = _writer_file(tmp_path / "w.imzML", mode)
    monkeypatch.setattr(_parser, "BLOCK", block)
    serial = _serial(path)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", serial_blocks)
    monkeypatch.setattr(_parser, "WORKERS", workers)
    monkeypatch.setattr(_parser, "IN_FLIGHT", workers)
    spy = _Spy(monkeypatch)
    ours = _assert_equal_to_pyimzml(path)
    assert spy.serial == serial_blocks  # the first blocks, then the threaded path
    assert spy.threaded > 20
    assert spy.buffers <= _parser.IN_FLIGHT + 1  # a few blocks in flight, not the file
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(ours, name), getattr(serial, name))


def test_no_worker_threads_scans_every_block_on_the_calling_thread(tmp_path, monkeypatch):
    path = _writer_file(tmp_path / "w.imzML", "processed")
    monkeypatch.setattr(_parser, "BLOCK", 4096)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", 1)
    monkeypatch.setattr(_parser, "WORKERS", 0)
    spy = _Spy(monkeypatch)
    _assert_equal_to_pyimzml(path)
    assert spy.threaded == 0 and spy.serial > 20 and spy.buffers == 1


def _threads(monkeypatch, n=2):
    """Turn the parser's worker threads on (off by default)."""
    monkeypatch.setattr(_parser, "WORKERS", n)
    monkeypatch.setattr(_parser, "IN_FLIGHT", max(n, 1))


def test_parser_starts_no_thread_by_default(tmp_path, monkeypatch):
    import threading

    path = _writer_file(tmp_path / "w.imzML", "processed")
    monkeypatch.setattr(_parser, "BLOCK", 2048)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", 1)
    before = threading.active_count()
    started = []
    real = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start",
                        lambda self: (started.append(self.name), real(self))[1])
    _assert_equal_to_pyimzml(path)
    assert not started and threading.active_count() == before


def test_threaded_scan_reads_every_shared_file(shared_data, monkeypatch):
    _threads(monkeypatch)
    monkeypatch.setattr(_parser, "BLOCK", 2048)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", 1)
    for name in ("Example_Processed.imzML", "i2nca/combined_pc.imzML"):
        _assert_equal_to_pyimzml(shared_data / "imzml" / name)


@pytest.mark.parametrize("edit", ["longer_indent", "value_first"])
def test_threaded_irregular_block_takes_the_general_scan_or_pyimzml(tmp_path, monkeypatch,
                                                                    edit):
    """A late spectrum departing from the template, scanned in a worker: a
    regular one goes to the general scan there, an irregular one hands the
    whole file to pyimzML; both give pyimzML's results."""
    import threading

    path = _writer_file(tmp_path / "w.imzML", "processed")
    text = path.read_bytes()
    if edit == "longer_indent":  # harmless, but not the template's bytes
        text = _edit_spectrum(text, 250, b"\n          </scan>", b"\n           </scan>")
    else:  # attributes in another order: legal XML the byte scan does not vouch for
        term = b'accession="IMS:1000050" cvRef="IMS" name="position x"'
        x = b'value="%d"' % (250 % 17 + 1)
        text = _edit_spectrum(text, 250, term + b" " + x, x + b" " + term)
    path.write_bytes(text)
    _threads(monkeypatch)
    monkeypatch.setattr(_parser, "BLOCK", 4096)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", 2)
    general, scan_block = [], _parser.scan_block

    def spy(*args, **kwargs):
        general.append(threading.current_thread().name)
        return scan_block(*args, **kwargs)

    monkeypatch.setattr(_parser, "scan_block", spy)
    if edit == "longer_indent":
        ours = _assert_equal_to_pyimzml(path)
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(ours, name), getattr(_serial(path), name))
    else:
        with pytest.raises(Irregular):
            parse_imzml(path, engine="scan")
        _assert_equal_to_pyimzml(path, engine="auto")
    assert general and general[0].startswith("imzml-scan")  # in a worker


@pytest.mark.parametrize("where", ["inside_spectrum", "between_spectra", "list_end"])
def test_cut_files_are_refused_on_the_threaded_path(tmp_path, monkeypatch, where):
    path = _writer_file(tmp_path / "w.imzML", "continuous")
    text = path.read_bytes()
    late = text.index(b"<spectrum ", len(text) * 4 // 5)
    cut = {"inside_spectrum": late + 300, "between_spectra": late,
           "list_end": text.index(b"</spectrumList>") + 5}[where]
    path.write_bytes(text[:cut])
    _threads(monkeypatch)
    monkeypatch.setattr(_parser, "BLOCK", 4096)
    monkeypatch.setattr(_parser, "SERIAL_BLOCKS", 1)
    spy = _Spy(monkeypatch)
    with pytest.raises(Irregular):
        parse_imzml(path, engine="scan")
    assert spy.threaded > 0
    with pytest.raises(Exception):  # noqa: B017, PT011 - the reference refuses it
        _pyimzml(path)
    with pytest.raises(ValueError, match=r"w\.imzML"):
        read_imzml(path)
