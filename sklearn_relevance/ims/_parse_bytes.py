"""Vectorised byte primitives of the imzML metadata scan (:mod:`._parser`).

Byte windows and gathers over a block of the spectrum list, aligned
little-endian word comparisons, the ``value="..."`` of accession terms, and
the digit-by-digit conversion of integers that refuses anything but plain
integers (:class:`Irregular`: the file goes to pyimzML instead).
"""

from __future__ import annotations

import numpy as np


class Irregular(Exception):
    """The byte scan cannot vouch for this file: parse it with pyimzML."""


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
