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
"""

from __future__ import annotations

import itertools
import os
import re
import warnings
from collections import deque
from dataclasses import dataclass
from xml.etree.ElementTree import XMLPullParser

import numpy as np

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
_NS = "{http://psi.hupo.org/ms/mzml}"
_PRECISIONS = {"32-bit float": "f", "64-bit float": "d", "32-bit integer": "i",
               "64-bit integer": "l"}
# accession codes (IMS:1000xxx) of the numbers read per spectrum
_X, _Y, _Z, _OFFSET, _LENGTH = b"050", b"051", b"052", b"102", b"103"
# the same, closing quote included, as little-endian words, sorted; _KIND: their term
_CODES = np.array([int.from_bytes(c + b'"', "little")
                   for c in (_X, _Y, _Z, _OFFSET, _LENGTH)], dtype=np.uint64)
_KIND = np.argsort(_CODES)
_CODES = _CODES[_KIND]


class Irregular(Exception):
    """The byte scan cannot vouch for this file: parse it with pyimzML."""


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


# ----------------------------------------------------------------------------- bytes

def _window(a, pos, k):
    """``a[pos[i] : pos[i] + k]`` for every i, as an (n, k) array (padded with 0)."""
    idx = pos[:, None] + np.arange(k)
    out = a[np.minimum(idx, a.size - 1)]
    out[idx >= a.size] = 0
    return out


def _at(a, pos):
    """``a[pos]``, with 0 for positions past the end."""
    out = a[np.minimum(pos, a.size - 1)]
    out[pos >= a.size] = 0
    return out


class _Bytes:
    """A block as bytes (``a``) and as aligned little-endian 8-byte words (``w``)."""

    __slots__ = ("a", "w")

    def __init__(self, a):
        self.a = a
        self.w = np.zeros(a.size // 8 + 2, "<u8")
        self.w.view(np.uint8)[: a.size] = a


def _matches(buf, pos, text):
    """Mask of positions ``p`` where ``a[p : p + len(text)] == text``.

    Compares 8 bytes at a time, each read as two aligned words shifted
    together, on the surviving candidates only.
    """
    keep = np.flatnonzero((pos >= 0) & (pos + len(text) <= buf.a.size))
    for k in range(0, len(text), 8):
        part = text[k:k + 8]
        word = _word(buf, pos[keep] + k, len(part))
        keep = keep[word == np.uint64(int.from_bytes(part, "little"))]
    out = np.zeros(pos.size, bool)
    out[keep] = True
    return out


def _space(c):
    return (c == 32) | (c == 10) | (c == 9) | (c == 13)


_POW10 = 10 ** np.arange(19, dtype=np.int64)
_DIGIT_INDEX = np.arange(18, dtype=np.int64)


def _integers(window, length):
    """Parse the first ``length`` bytes of each row of ``window`` as signed integers."""
    if length.size == 0:
        return np.empty(0, np.int64)
    if length.min() < 1 or length.max() > 18:
        raise Irregular
    w = window[:, : int(length.max())]
    neg = w[:, 0] == 45  # '-'
    if not neg.any():  # plain digits: one product with the powers of ten, then a shift
        k = w.shape[1]
        digits = w - np.uint8(48)  # bytes that are no digit wrap round past 9
        inside = _DIGIT_INDEX[:k] < length[:, None]
        if np.any((digits > 9) & inside):
            raise Irregular
        digits *= inside
        return (digits @ _POW10[k - 1::-1]) // _POW10[k - length]
    inside = np.arange(w.shape[1]) < length[:, None]
    digit = (w >= 48) & (w <= 57)
    digit[:, 0] |= neg & (length > 1)
    if not np.all(digit | ~inside):
        raise Irregular
    d = np.where(inside, w.astype(np.int64) - 48, 0)
    d[neg, 0] = 0
    exponent = np.maximum(length[:, None] - 1 - np.arange(w.shape[1]), 0)
    value = (d * _POW10[exponent]).sum(axis=1)
    return np.where(neg, -value, value)


def _tags(buf, cand, name):
    """Those of ``cand`` (positions of ``<``) that start a ``<name`` element."""
    tag = b"<" + name
    hit = cand[_matches(buf, cand, tag)]
    nxt = _at(buf.a, hit + len(tag))
    return hit[_space(nxt) | (nxt == 62) | (nxt == 47)]


def _word(buf, pos, n):
    """The ``n`` (<= 8) bytes at each position as little-endian integers."""
    W = buf.w
    q = pos >> 3
    r = (pos & 7).astype(np.uint64) << np.uint64(3)
    lo, hi = W[q], W[q + 1]
    word = np.where(r == 0, lo, (lo >> r) | (hi << ((np.uint64(64) - r) & np.uint64(63))))
    return word & np.uint64((1 << (8 * n)) - 1)


def _values(buf, b, pos, kind):
    """Start, length and first 20 bytes of the ``value="..."`` following each ``pos``.

    Writers put the same attributes between ``accession`` and ``value`` of
    one term, so the offset found on the first occurrence of each term is
    tried on all, and only the exceptions are searched one by one.
    """
    start = np.empty(pos.size, np.int64)
    if pos.size == 0:
        return start, start.copy(), np.zeros((0, 20), np.uint8)
    offset = np.zeros(kind.max() + 1, np.int64)
    for k in np.unique(kind):
        p0 = int(pos[np.argmax(kind == k)])
        first = b.find(b' value="', p0, b.find(b">", p0))
        if first < 0:
            raise Irregular
        offset[k] = first - p0
    d = offset[kind]
    ok = _matches(buf, pos + d, b' value="')
    start[ok] = pos[ok] + d[ok] + 8
    for i in np.flatnonzero(~ok):  # the exceptions: search within the tag
        p = int(pos[i])
        j = b.find(b' value="', p, b.find(b">", p))
        if j < 0:
            raise Irregular
        start[i] = j + 8
    window = _window(buf.a, start, 20)
    quote = window == 34
    if not quote.any(axis=1).all():
        raise Irregular
    return start, np.argmax(quote, axis=1), window


def scan_block(b, mz_id, int_id, end=None):
    """The per-spectrum numbers of ``b[:end]``, a run of whole ``<spectrum>`` elements.

    Returns
    -------
    dict of ndarray
        ``mz_offset``, ``mz_length``, ``int_offset``, ``int_length``, ``x``,
        ``y``, ``z`` (z is 1 where a spectrum declares none), one per spectrum.

    Raises
    ------
    Irregular
        When the bytes depart from the structure the scan relies on.
    """
    a = np.frombuffer(b, np.uint8, count=len(b) if end is None else end)
    buf = _Bytes(a)
    lt = np.flatnonzero(a == 60)
    if lt.size != np.count_nonzero(a == 62):
        raise Irregular
    c1 = _at(a, lt + 1)
    if np.any((c1 == 33) | (c1 == 63)):  # comments, CDATA, processing instructions
        raise Irregular
    cand = lt[c1 == 115]  # <s...
    starts = _tags(buf, cand, b"spectrum")
    close = lt[c1 == 47]  # </...
    c2 = _at(a, close + 2)
    ends = close[c2 == 115]
    ends = ends[_matches(buf, ends, b"</spectrum>")]
    n = starts.size
    if n == 0 or ends.size != n or np.any(ends < starts) or np.any(ends[:-1] > starts[1:]):
        raise Irregular

    # accession="IMS:1000xxx" of the numbers we want (found by their colon)
    colon = np.flatnonzero(a == 58)
    colon = colon[colon >= 15]
    colon = colon[(a[colon - 4] == 34) & (a[colon - 3] == 73)]  # '"I': skips MS: terms
    colon = colon[_matches(buf, colon - 14, b'accession="IMS:1000')]
    colon = colon[_space(a[colon - 15])]
    code = _word(buf, colon + 5, 4)  # e.g. b'050"'
    idx = np.minimum(np.searchsorted(_CODES, code), _CODES.size - 1)
    wanted = _CODES[idx] == code
    pos, kind = colon[wanted] + 9, _KIND[idx[wanted]]  # pos: just after the closing quote
    start, length, window = _values(buf, b, pos, kind)
    next_tag = lt[np.minimum(np.searchsorted(lt, pos), lt.size - 1)]
    if np.any(start > next_tag):  # the value lies in the accession's own tag
        raise Irregular
    values = _integers(window, length)
    spec = np.searchsorted(starts, pos, side="right") - 1
    if np.any(spec < 0) or np.any(pos > ends[spec]):
        raise Irregular

    out = {}
    ones = np.ones(n, np.int64)
    for name, k, required in (("x", 0, True), ("y", 1, True), ("z", 2, False)):
        sel = kind == k
        counts = np.bincount(spec[sel], minlength=n)
        if np.any(counts > 1) or (required and np.any(counts != 1)):
            raise Irregular
        col = ones.copy()
        col[spec[sel]] = values[sel]
        out[name] = col

    # binary data arrays, each identified by its referenceableParamGroupRef
    arrays = _tags(buf, lt[c1 == 98], b"binaryDataArray")
    arr_ends = close[c2 == 98]
    arr_ends = arr_ends[_matches(buf, arr_ends, b"</binaryDataArray>")]
    if arr_ends.size != arrays.size or np.any(arr_ends < arrays) \
            or np.any(arr_ends[:-1] > arrays[1:]):
        raise Irregular
    arr_spec = np.searchsorted(starts, arrays, side="right") - 1
    refs = _tags(buf, lt[c1 == 114], b"referenceableParamGroupRef")
    ref_arr = np.searchsorted(arrays, refs, side="right") - 1
    inside = ref_arr >= 0
    inside[inside] &= refs[inside] < arr_ends[ref_arr[inside]]
    refs, ref_arr = refs[inside], ref_arr[inside]
    if np.any(np.bincount(ref_arr, minlength=arrays.size) != 1):
        raise Irregular
    head = len(b"<referenceableParamGroupRef")
    if not np.all(_space(_at(a, refs + head))) \
            or not np.all(_matches(buf, refs + head + 1, b'ref="')):
        raise Irregular
    arr_kind = np.full(arrays.size, 2)
    for k, group in enumerate((mz_id, int_id)):
        hit = _matches(buf, refs + head + 6, group.encode() + b'"')
        arr_kind[ref_arr[hit]] = np.where(arr_kind[ref_arr[hit]] == 2, k, 3)
    for k in (0, 1):  # one m/z and one intensity array per spectrum
        if np.any(np.bincount(arr_spec[arr_kind == k], minlength=n) != 1):
            raise Irregular

    sel = kind >= 3
    tok_arr = np.searchsorted(arrays, pos[sel], side="right") - 1
    if np.any(tok_arr < 0) or np.any(pos[sel] > arr_ends[tok_arr]):
        raise Irregular
    tok_kind, tok_vals = kind[sel], values[sel]
    for arr_k, prefix in ((0, "mz"), (1, "int")):
        for k, field in ((3, "offset"), (4, "length")):
            m = (arr_kind[tok_arr] == arr_k) & (tok_kind == k)
            if np.any(np.bincount(arr_spec[tok_arr[m]], minlength=n) != 1):
                raise Irregular
            col = np.empty(n, np.int64)
            col[arr_spec[tok_arr[m]]] = tok_vals[m]
            out[f"{prefix}_{field}"] = col
    return out


# ----------------------------------------------------------------------------- template

_TAG_NAME = re.compile(rb"<(/?)([A-Za-z_][-\w.:]*)")
_ATTR = re.compile(rb'\s+([A-Za-z_][-\w.:]*)="([^"<>&]*)"')
_ATTRS = re.compile(rb'(?:\s+[A-Za-z_][-\w.:]*="[^"<>&]*")*\s*')
_DIGITS = re.compile(rb"-?[0-9]{1,18}")
#: Spare bytes past the data in the read buffer: every gather stays inside it.
_PAD = 64
#: Bytes read for one number: up to 18 digits, a sign and the closing quote.
_WINDOW = 20
# the numbers read per spectrum: (element, accession), in ParsedImzML's order
_ROLES = (("scan", "IMS:1000050"), ("scan", "IMS:1000051"), ("scan", "IMS:1000052"),
          ("mz", "IMS:1000102"), ("mz", "IMS:1000103"), ("int", "IMS:1000102"),
          ("int", "IMS:1000103"))
_FIELDS = ("x", "y", "z", "mz_offset", "mz_length", "int_offset", "int_length")


class _Tag:
    """One tag of the template spectrum and the bytes up to the next tag."""

    def __init__(self, start, chunk):
        m = _TAG_NAME.match(chunk)
        gt = chunk.find(b">")
        if m is None or gt < 0 or chunk.count(b">") != 1 or chunk[gt + 1:].strip():
            raise Irregular  # comments, text, '>' in values: not a template
        self.start, self.chunk, self.gt = start, chunk, gt
        self.closing, self.name = m.group(1) == b"/", m.group(2)
        self.empty = chunk[gt - 1:gt] == b"/"
        body = chunk[m.end():gt - self.empty]
        if (body.strip() or self.empty) if self.closing else not _ATTRS.fullmatch(body):
            raise Irregular
        self.attrs = {}  # name -> (start, stop) of the value within chunk
        for a in _ATTR.finditer(body):
            if a.group(1) in self.attrs:
                raise Irregular
            self.attrs[a.group(1)] = (m.end() + a.start(2), m.end() + a.end(2))
        self.children = []
        self.name_end = m.end()

    def value(self, attr):
        span = self.attrs.get(attr)
        return None if span is None else self.chunk[span[0]:span[1]]

    def child(self, name):
        return next((c for c in self.children if c.name == name), None)

    def term(self, accession):
        """pyimzML's ``_get_cv_param``: the first cvParam child of this accession."""
        return next((c for c in self.children if c.name == b"cvParam"
                     and c.value(b"accession") == accession), None)


def _parse_tags(spec):
    """The tags of one spectrum's bytes, nested; Irregular for anything else."""
    lt = np.flatnonzero(np.frombuffer(spec, np.uint8) == 60).tolist()
    if not lt or lt[0] != 0:
        raise Irregular
    tags, stack = [], []
    for k, start in enumerate(lt):
        tag = _Tag(start, spec[start:(lt[k + 1] if k + 1 < len(lt) else len(spec))])
        if tag.closing:
            if not stack or stack.pop().name != tag.name:
                raise Irregular
        else:
            if stack:
                stack[-1].children.append(tag)
            elif tags:
                raise Irregular
            if not tag.empty:
                stack.append(tag)
        tags.append(tag)
        if not stack and k + 1 < len(lt):
            raise Irregular
    if stack or tags[0].name != b"spectrum":
        raise Irregular
    return tags


def _pyimzml_numbers(spectrum, mz_id, int_id):
    """pyimzML's ``__process_spectrum`` on one parsed ``<spectrum>`` element."""
    from pyimzml.ImzMLParser import _get_cv_param

    mz_group = int_group = None
    for e in spectrum.find(f"{_NS}binaryDataArrayList"):
        ref = e.find(f"{_NS}referenceableParamGroupRef").attrib["ref"]
        if ref == mz_id:
            mz_group = e
        elif ref == int_id:
            int_group = e
    scan = spectrum.find(f"{_NS}scanList/{_NS}scan")
    out = [_get_cv_param(scan, acc) for acc in ("IMS:1000050", "IMS:1000051", "IMS:1000052")]
    out += [_get_cv_param(g, acc) for g in (mz_group, int_group)
            for acc in ("IMS:1000102", "IMS:1000103")]
    return [None if v is None else int(v) for v in out]


class _Template:
    """The byte layout of the first spectrum, which the others are checked against.

    ``checks``: (tag, offset, expected bytes) triples, an offset counted from
    the tag's ``<`` (from the next tag's ``<`` when negative, for the ends of
    tags whose length varies with their values). Every tag's name and end
    are checked, and so are the accession of every term pyimzML may look up
    (children of the scan and of the two data arrays), the group reference
    of every data array, and the ``value="`` before every number read.
    """

    def __init__(self, spec, element, mz_id, int_id):
        tags = _parse_tags(spec)
        root = tags[0]
        scan_list = root.child(b"scanList")
        scan = scan_list and scan_list.child(b"scan")
        arrays = root.child(b"binaryDataArrayList")
        if scan is None or arrays is None:
            raise Irregular
        chosen, refs = {}, []
        for e in arrays.children:  # pyimzML: the last array of each group wins
            ref = e.child(b"referenceableParamGroupRef")
            if ref is None or ref.value(b"ref") is None:
                raise Irregular
            refs.append(ref)
            group = ref.value(b"ref").decode()
            if group == mz_id:
                chosen["mz"] = e
            elif group == int_id:
                chosen["int"] = e
        if len(chosen) != 2:
            raise Irregular
        chosen["scan"] = scan
        index = {id(t): k for k, t in enumerate(tags)}
        checks = []

        def check(k, offset, text):
            for i in range(0, len(text), 8):
                checks.append((k, offset + i, text[i:i + 8]))

        for k, tag in enumerate(tags):
            stop = tag.name_end + 1  # the name and the byte after it
            check(k, max(1, stop - 8), tag.chunk[max(1, stop - 8):stop])
            end = tag.chunk[tag.gt - 1:tag.gt + 7]  # '/>' or '">' and the next spaces
            if k + 1 < len(tags):
                check(k + 1, tag.gt - 1 - len(tag.chunk), end)
            else:
                check(k, tag.gt - 1, end)
        for parent in (scan, chosen["mz"], chosen["int"]):
            for c in parent.children:
                span = c.attrs.get(b"accession")
                if span is not None:
                    check(index[id(c)], span[0] - 11, c.chunk[span[0] - 11:span[1] + 1])
        for ref in refs:  # the group, quotes included
            r0, r1 = ref.attrs[b"ref"]
            check(index[id(ref)], r0 - 1, ref.chunk[r0 - 1:r1 + 1])
        values, self.has_z = [], True
        for (where, accession), field in zip(_ROLES, _FIELDS):
            term = chosen[where].term(accession.encode())
            if term is None and field == "z":
                self.has_z = False
                continue
            if term is None or b"value" not in term.attrs:
                raise Irregular
            v0, v1 = term.attrs[b"value"]
            if not _DIGITS.fullmatch(term.chunk[v0:v1]):
                raise Irregular
            k = index[id(term)]
            check(k, v0 - 8, term.chunk[v0 - 8:v0])
            values.append((k, v0, len(term.chunk) - v1, int(term.chunk[v0:v1])))
        try:
            reference = _pyimzml_numbers(element, mz_id, int_id)
        except Exception:  # noqa: BLE001 - pyimzML could not read it either
            raise Irregular from None
        if reference[2] is None:
            reference.pop(2)
        if reference != [v[3] for v in values]:
            raise Irregular
        self.n_tags = len(tags)
        k, off, text = zip(*checks)
        self.k, self.off = np.array(k), np.array(off)
        self.expected = np.array([int.from_bytes(t, "little") for t in text], np.uint64)
        self.mask = np.array([(1 << 8 * len(t)) - 1 for t in text], np.uint64)
        self.vk = np.array([v[0] for v in values])
        self.vk_next = self.vk + 1
        self.voff = np.array([v[1] for v in values])
        self.span = self.voff + np.array([v[2] for v in values])  # value start to next '<'

    def numbers(self, buf, start, stop):
        """:func:`scan_block`'s result for the whole spectra in ``buf.a[start:stop]``."""
        lt = np.flatnonzero(np.equal(buf.a[start:stop], 60, out=buf.mask[:stop - start]))
        n = lt.size // self.n_tags
        if n == 0 or lt.size != n * self.n_tags:
            raise Irregular
        L = lt.reshape(n, self.n_tags)
        L += start
        words = buf.words[L[:, self.k] + self.off]
        words &= self.mask
        if not np.all(words == self.expected):
            raise Irregular
        first = L[:, self.vk]
        window = buf.windows[(first + self.voff).ravel()]
        quote = window == 34
        length = quote.argmax(axis=1)
        values = _integers(window, length).reshape(n, -1)
        # the rest of every term's tag is as long as the template's
        if not np.all(L[:, self.vk_next] - first - length.reshape(n, -1) == self.span):
            raise Irregular
        out = {}
        columns = iter(values.T)
        for field in _FIELDS:
            out[field] = np.ones(n, np.int64) if field == "z" and not self.has_z \
                else next(columns)
        return out


# ----------------------------------------------------------------------------- header

def _imzmldict(root):
    """pyimzML's ``imzmldict`` (``ImzMLParser.__readimzmlmeta``) from the header."""
    from pyimzml.ImzMLParser import _get_cv_param

    d = {}
    sections = (
        ("scanSettingsList", (
            ("max count of pixels x", "IMS:1000042"), ("max count of pixels y", "IMS:1000043"),
            ("max dimension x", "IMS:1000044"), ("max dimension y", "IMS:1000045"),
            ("pixel size x", "IMS:1000046"), ("pixel size y", "IMS:1000047"),
            ("matrix solution concentration", "MS:1000835"))),
        ("instrumentConfigurationList", (
            ("wavelength", "MS:1000843"), ("focus diameter x", "MS:1000844"),
            ("focus diameter y", "MS:1000845"), ("pulse energy", "MS:1000846"),
            ("pulse duration", "MS:1000847"), ("attenuation", "MS:1000848"))),
    )
    for section, params in sections:
        elem = root.find(_NS + section)
        for name, accession in params:
            try:
                val = _get_cv_param(elem, accession, deep=True, convert=True)
                if val is not None:
                    d[name] = val
            except ValueError:
                warnings.warn(Warning(f'Wrong data type in XML file. Skipped attribute "{name}"'),
                              stacklevel=2)
    return d


def _groups(metadata):
    """pyimzML's choice of the m/z and intensity groups and their precisions."""
    mz_id = int_id = mz_prec = int_prec = None
    for param_id, group in metadata.referenceable_param_groups.items():
        if "m/z array" in group.param_by_name:
            mz_id = param_id
            for name, code in _PRECISIONS.items():
                if name in group.param_by_name:
                    mz_prec = code
        if "intensity array" in group.param_by_name:
            int_id = param_id
            for name, code in _PRECISIONS.items():
                if name in group.param_by_name:
                    int_prec = code
    return mz_id, int_id, mz_prec, int_prec


def _mode_and_polarity(metadata, spectrum):
    from pyimzml.metadata import SpectrumData

    groups = metadata.referenceable_param_groups
    first = SpectrumData(spectrum, groups)

    def has(term):
        return any(term in g for g in groups.values()) or term in first

    pos, neg = has("positive scan"), has("negative scan")
    polarity = "mixed" if pos and neg else "positive" if pos else "negative" if neg else None
    mode = "profile" if has("profile spectrum") else \
        "centroid" if has("centroid spectrum") else None
    return polarity, mode


def _fix_offsets(values):
    """pyimzML's repair of offsets written as signed 32-bit integers."""
    v = np.asarray(values, np.int64)
    if v.size < 2 or not np.any(v < 0):
        return v
    wrap = np.zeros(v.size, np.int64)
    wrap[1:] = (v[1:] < 0) & (v[:-1] >= 0)
    return v + np.cumsum(wrap) * 2**32


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
            from pyimzml.metadata import Metadata

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
