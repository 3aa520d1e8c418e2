"""A streaming imzML metadata parser: a vectorised byte scan of the spectrum list.

pyimzML builds an ElementTree element for every ``<spectrum>`` (about 40
Python objects each): minutes and gigabytes for 10^6 spectra. What a reader
needs from the spectrum list is seven numbers per spectrum (two offsets, two
lengths, x, y, z). This module finds them with numpy over blocks of the
file's bytes (about a MiB at a time, read into a few reused buffers, so
memory stays bounded whatever the file size):

* the header (everything before ``<spectrumList``, a few kB) and the first
  spectrum are parsed as XML; the file description, referenceable parameter
  groups and the other header sections go through pyimzML's own
  :class:`~pyimzml.metadata.Metadata` so that ``metadata`` is identical;
* the first spectrum is the *template*: its tags, their nesting, and where
  pyimzML finds each number (which ``cvParam`` of which element) are worked
  out once, and checked against what pyimzML reads from the parsed element.
  Writers repeat one layout for every spectrum, so in a block of whole
  spectra the ``<`` positions (one vectorised search) fall into rows of the
  template's length; a few bytes of every tag (its name, how it ends, the
  accession and ``value="`` of every term pyimzML looks up, the group
  reference of every data array) are compared with the template in one
  gather, and the numbers are read at their offsets with one vectorised
  digit conversion. This runs at a few hundred MB/s;
* a block that departs from the template in any checked byte is scanned by
  the general path: every block of whole spectra is scanned for its quotes,
  ``<`` and ``>``: attribute names and values are compared as byte windows,
  integers are parsed digit by digit in vectorised Horner steps, and every
  number is attributed to its spectrum and its ``<binaryDataArray>`` by
  ``searchsorted`` on the element start positions;
* with ``WORKERS`` > 0 (none by default: see its comment), past the first
  ``SERIAL_BLOCKS`` blocks, blocks are scanned by ``WORKERS`` threads (numpy releases the GIL in its
  loops) while the calling thread reads the next block into another buffer;
  at most ``IN_FLIGHT`` blocks are handed over at a time, and their results
  are collected in file order, so the output is the serial scan's;
* the document end (after the last spectrum) is fed to the same XML parser,
  so a cut file is refused as pyimzML refuses it.

The general scan checks the structure it relies on (balanced brackets,
exactly one offset and length per array, one x and y per spectrum,
integer values); a file that departs from it (comments or text inside the
spectrum list, attributes in another order, a third data array, values that
are not plain integers) is parsed by pyimzML's :class:`ImzMLParser` instead,
so the results, and the refusals, are pyimzML's in every case.

This module holds the tuning constants, the reused read buffers, the block
loop (serial or threaded) and :func:`parse_imzml`; the byte primitives and
the integer conversion are in :mod:`._parse_bytes`, the general scan in
:mod:`._parse_block`, the template in :mod:`._parse_template` and the
header fields in :mod:`._parse_header`.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import deque
from dataclasses import dataclass
from xml.etree.ElementTree import XMLPullParser

import numpy as np
from pyimzml.metadata import Metadata  # at import: a first read pays no import

from ._parse_block import scan_block
from ._parse_bytes import Irregular, _integers
from ._parse_header import _NS, _fix_offsets, _groups, _imzmldict, _mode_and_polarity
from ._parse_template import _Template

# Re-exported: tests, benchmarks and the reader reach these through this module.
__all__ = ["BLOCK", "IN_FLIGHT", "SERIAL_BLOCKS", "WORKERS", "Irregular", "ParsedImzML",
           "_integers", "parse_imzml", "scan_block"]

#: Bytes read per block of the spectrum list (a few such blocks is the parse's memory).
BLOCK = 2**20
#: Blocks of the spectrum list scanned on the calling thread before the rest go to
#: worker threads. A file of a few MiB (2,000 typical spectra: 5 blocks) never
#: starts a thread: there the threads' start, their fresh buffers and the
#: hand-overs cost more than they save (measured slower on the 2,000-spectrum
#: file of ``benchmarks/bench_ims_scale.py``).
SERIAL_BLOCKS = 8
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
    else os.cpu_count() or 1
#: Worker threads scanning blocks past ``SERIAL_BLOCKS`` while the calling thread
#: reads the next block (numpy releases the GIL in the scans' loops). None by
#: default: threads must pay on every call, and they do not on a shared 2-core
#: machine, where a worker waiting for a core stalls the parse (10^6 spectra,
#: 2.2 GB of XML, ``benchmarks/bench_ims_scale.py``: 6.6 to 9.0 s with two
#: workers, 4.7 to 7.9 s serial, alternating fresh processes under load).
#: The threaded path stays, tested, for ``WORKERS = 2`` on dedicated cores.
WORKERS = 0
#: Blocks handed to the workers and not yet collected; with the block being read,
#: the parse holds ``IN_FLIGHT + 1`` blocks (and their masks) at most. One per
#: worker: a longer queue measured no faster and holds more memory.
IN_FLIGHT = max(WORKERS, 1)
#: Spare bytes past the data in the read buffer: every gather stays inside it.
_PAD = 64
#: Bytes read for one number: up to 18 digits, a sign and the closing quote.
_WINDOW = 20


@dataclass
class ParsedImzML:
    """What pyimzML's ``ImzMLParser`` reports, under its attribute names."""

    mzOffsets: np.ndarray  # noqa: N815 - pyimzML's names
    mzLengths: np.ndarray  # noqa: N815
    intensityOffsets: np.ndarray  # noqa: N815
    intensityLengths: np.ndarray  # noqa: N815
    coordinates: np.ndarray
    mzPrecision: str | None  # noqa: N815
    intensityPrecision: str | None  # noqa: N815
    metadata: object
    imzmldict: dict
    polarity: str | None
    spectrum_mode: str | None


# ----------------------------------------------------------------------------- parse

class _Columns:
    """Per-spectrum numbers gathered block by block, into arrays sized by the
    spectrum list's ``count`` (no second copy) when it is right."""

    _NAMES = ("mz_offset", "mz_length", "int_offset", "int_length")

    def __init__(self, count):
        try:
            n = int(count)
        except (TypeError, ValueError):
            n = 0
        self.n = 0
        self.cols = {k: np.empty(max(n, 0), np.int64) for k in self._NAMES}
        self.coords = np.empty((max(n, 0), 3), np.int64)
        self.parts = []  # used when count is missing or wrong

    def add(self, part):
        m = len(part["x"])
        if self.parts or self.n + m > len(self.coords):
            self.parts.append(part)
            return
        sl = slice(self.n, self.n + m)
        for k in self._NAMES:
            self.cols[k][sl] = part[k]
        for j, k in enumerate("xyz"):
            self.coords[sl, j] = part[k]
        self.n += m

    def result(self):
        if not self.parts and self.n == len(self.coords):
            return self.cols, self.coords
        head = {k: v[: self.n] for k, v in self.cols.items()}
        head.update(x=self.coords[: self.n, 0], y=self.coords[: self.n, 1],
                    z=self.coords[: self.n, 2])
        parts = [head, *self.parts]
        cols = {k: np.concatenate([p[k] for p in parts]) for k in self._NAMES}
        coords = np.column_stack([np.concatenate([p[k] for p in parts]) for k in "xyz"])
        return cols, coords


class _Buffer:
    """A file read block by block into one reused ``bytearray``, with numpy views.

    ``a`` (bytes), ``words`` (the 8 bytes starting at every position, as
    little-endian integers) and ``windows`` (the 20 bytes starting at every
    position) all view the same memory; ``_PAD`` spare bytes past the data
    keep every gather inside it.
    """

    def __init__(self, f):
        self.f, self.size = f, 0
        self.ba = bytearray()
        self._alloc(BLOCK)

    def _alloc(self, capacity):
        old, self.ba = self.ba, bytearray(capacity + _PAD)
        self.ba[: self.size] = old[: self.size]
        del old
        self.a = np.frombuffer(self.ba, np.uint8)
        self.words = np.ndarray((len(self.ba) - 7,), "<u8", buffer=self.ba, strides=(1,))
        self.windows = np.lib.stride_tricks.as_strided(
            self.a, (len(self.ba) - _WINDOW + 1, _WINDOW), (1, 1), writeable=False)
        self.mask = np.empty(len(self.ba), bool)

    def fill(self):
        """Append about ``BLOCK`` bytes of the file (what fits); False at its end."""
        room = len(self.ba) - _PAD - self.size
        if room < BLOCK // 2:
            self._alloc(max(self.size + BLOCK, 2 * (len(self.ba) - _PAD)))
            room = len(self.ba) - _PAD - self.size
        with memoryview(self.ba) as view:
            got = self.f.readinto(view[self.size:self.size + room])
        self.size += got
        return got > 0

    def drop(self, k):
        """Forget the first ``k`` bytes (the rest moves to the front)."""
        if k:
            rest = self.size - k
            self.a[:rest] = self.a[k:self.size].copy()
            self.size = rest

    def take(self, other, k):
        """Hold the bytes of ``other`` from ``k`` on, and nothing else (the
        start of the spectrum that ``other``'s block cut)."""
        rest = other.size - k
        self.size = 0
        if rest + BLOCK // 2 > len(self.ba) - _PAD:
            self._alloc(rest + BLOCK)
        self.a[:rest] = other.a[k:other.size]
        self.size = rest

    def find(self, text, start=0):
        return self.ba.find(text, start, self.size)


def _numbers(buf, start, stop, template, mz_id, int_id):
    """Per-spectrum numbers of the whole spectra in ``buf.a[start:stop]``."""
    if template is not None:
        try:
            return template.numbers(buf, start, stop)
        except (Irregular, IndexError):  # IndexError: rows out of step, gathers past the end
            pass
    return scan_block(bytes(buf.ba[start:stop]), mz_id, int_id)


def _spectra(buf, pos, template, mz_id, int_id, columns):
    """Scan the spectrum list from ``buf.a[pos:]`` on, block by block, into ``columns``.

    The first ``SERIAL_BLOCKS`` blocks (all when ``WORKERS`` is 0) are
    scanned here; later ones go to ``WORKERS`` threads, each block in a
    buffer of its own while this thread reads the next one into another
    (``IN_FLIGHT`` blocks handed over at most). Results are collected in
    file order, so ``columns`` receives what the serial scan gives; a
    worker's exception is raised here.

    Returns
    -------
    _Buffer
        The buffer holding the bytes after the last spectrum.
    """
    pool, pending, free = None, deque(), []
    try:
        for k in itertools.count():
            cut = buf.ba.rfind(b"</spectrum>", pos, buf.size)
            if cut >= 0:
                cut += len(b"</spectrum>")
                if k < SERIAL_BLOCKS or WORKERS < 1:
                    columns.add(_numbers(buf, pos, cut, template, mz_id, int_id))
                else:
                    if pool is None:
                        from concurrent.futures import ThreadPoolExecutor

                        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="imzml-scan")
                    while pending and (pending[0][0].done() or len(pending) >= IN_FLIGHT):
                        future, done = pending.popleft()  # the oldest: file order
                        columns.add(future.result())
                        free.append(done)
                    pending.append((pool.submit(_numbers, buf, pos, cut, template, mz_id,
                                                int_id), buf))
                    fresh = free.pop() if free else _Buffer(buf.f)
                    fresh.take(buf, cut)
                    buf, cut = fresh, 0
                pos = cut
            buf.drop(pos)
            pos = 0
            if not buf.fill():
                break
        while pending:
            future, _ = pending.popleft()
            columns.add(future.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return buf


def _fast(path):
    with open(path, "rb") as f:
        buf = _Buffer(f)
        while buf.find(b"</spectrum>") < 0:
            if not buf.fill():
                raise Irregular
        head_end = buf.find(b"<spectrumList")
        first = buf.find(b"<spectrum", head_end + 1)
        first_end = buf.find(b"</spectrum>", first) + len(b"</spectrum>")
        if head_end < 0 or first < 0 or first_end < first:
            raise Irregular
        xml = XMLPullParser(events=("start",))
        xml.feed(bytes(buf.ba[:first_end]))
        root = next(xml.read_events())[1]
        spectrum_list = root.find(f"{_NS}run/{_NS}spectrumList")
        if spectrum_list is None or len(spectrum_list) != 1:
            raise Irregular
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyimzml warns on misnamed accessions

            metadata = Metadata(root)
            imzmldict = _imzmldict(root)
            polarity, mode = _mode_and_polarity(metadata, spectrum_list[0])
        mz_id, int_id, mz_prec, int_prec = _groups(metadata)
        if mz_id is None or int_id is None:
            raise Irregular
        try:
            template = _Template(bytes(buf.ba[first:first_end]), spectrum_list[0], mz_id,
                                 int_id)
        except Irregular:
            template = None
        columns = _Columns(spectrum_list.get("count"))
        buf = _spectra(buf, first, template, mz_id, int_id, columns)
        xml.feed(bytes(buf.ba[:buf.size]))  # the document's end: a cut file fails here
        xml.close()
    cols, coords = columns.result()
    imzmldict["max count of pixels z"] = coords[:, 2].max()
    return ParsedImzML(
        mzOffsets=_fix_offsets(cols["mz_offset"]), mzLengths=cols["mz_length"],
        intensityOffsets=_fix_offsets(cols["int_offset"]),
        intensityLengths=cols["int_length"], coordinates=coords, mzPrecision=mz_prec,
        intensityPrecision=int_prec, metadata=metadata, imzmldict=imzmldict,
        polarity=polarity, spectrum_mode=mode)


def _with_pyimzml(path):
    from pyimzml.ImzMLParser import ImzMLParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = ImzMLParser(str(path), ibd_file=None)
    n = len(p.coordinates)
    return ParsedImzML(
        mzOffsets=np.asarray(p.mzOffsets, np.int64), mzLengths=np.asarray(p.mzLengths, np.int64),
        intensityOffsets=np.asarray(p.intensityOffsets, np.int64),
        intensityLengths=np.asarray(p.intensityLengths, np.int64),
        coordinates=np.asarray(p.coordinates, np.int64).reshape(n, 3),
        mzPrecision=p.mzPrecision, intensityPrecision=p.intensityPrecision,
        metadata=p.metadata, imzmldict=p.imzmldict, polarity=p.polarity,
        spectrum_mode=p.spectrum_mode)


def parse_imzml(path, *, engine="auto"):
    """Parse the XML of an imzML file: pyimzML's fields, found by a byte scan.

    Parameters
    ----------
    path : path-like
    engine : {"auto", "scan", "pyimzml"}
        ``"auto"`` scans and falls back to pyimzML on an irregular file;
        ``"scan"`` raises :class:`Irregular` instead; ``"pyimzml"`` always
        uses pyimzML (the reference).

    Returns
    -------
    ParsedImzML

    Raises
    ------
    Exception
        Whatever pyimzML raises on a malformed file (the caller wraps it).
    """
    if engine != "pyimzml":
        try:
            return _fast(path)
        except Exception as exc:  # noqa: BLE001 - pyimzML decides on any doubt
            if engine == "scan":
                raise Irregular(f"{path}: {type(exc).__name__}: {exc}") from None
    return _with_pyimzml(path)
