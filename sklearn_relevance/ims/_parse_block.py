"""The general per-block scan of the imzML spectrum list (:mod:`._parser`).

:func:`scan_block` reads the per-spectrum numbers of a run of whole
``<spectrum>`` elements from their bytes without a template: quotes, ``<``
and ``>`` are found with numpy, accession terms are matched as byte windows,
and every number is attributed to its spectrum and data array by
``searchsorted``. It checks the structure it relies on and raises
:class:`~._parse_bytes.Irregular` on any departure.
"""

from __future__ import annotations

import numpy as np

from ._parse_bytes import (
    Irregular,
    _at,
    _Bytes,
    _integers,
    _matches,
    _space,
    _tags,
    _values,
    _word,
)

# accession codes (IMS:1000xxx) of the numbers read per spectrum
_X, _Y, _Z, _OFFSET, _LENGTH = b"050", b"051", b"052", b"102", b"103"
# the same, closing quote included, as little-endian words, sorted; _KIND: their term
_CODES = np.array([int.from_bytes(c + b'"', "little")
                   for c in (_X, _Y, _Z, _OFFSET, _LENGTH)], dtype=np.uint64)
_KIND = np.argsort(_CODES)
_CODES = _CODES[_KIND]


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
