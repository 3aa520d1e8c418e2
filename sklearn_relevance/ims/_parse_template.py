"""The template of the imzML metadata scan: the first spectrum's byte layout.

Writers repeat one layout for every spectrum; :class:`_Template` works out
the first spectrum's tags, their nesting and where pyimzML finds each
number, checks that against what pyimzML reads from the parsed element, and
then reads whole blocks of spectra laid out the same way in one gather
(:mod:`._parser` falls back to :func:`~._parse_block.scan_block` otherwise).
"""

from __future__ import annotations

import re

import numpy as np
from pyimzml.ImzMLParser import _get_cv_param

from ._parse_bytes import Irregular, _integers
from ._parse_header import _NS

_TAG_NAME = re.compile(rb"<(/?)([A-Za-z_][-\w.:]*)")
_ATTR = re.compile(rb'\s+([A-Za-z_][-\w.:]*)="([^"<>&]*)"')
_ATTRS = re.compile(rb'(?:\s+[A-Za-z_][-\w.:]*="[^"<>&]*")*\s*')
_DIGITS = re.compile(rb"-?[0-9]{1,18}")
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
