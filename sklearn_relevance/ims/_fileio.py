"""Reading the bytes of an .ibd file that may change underneath: identity-checked reads.

Every read of spectra opens the .ibd, compares the opened file with the
identity recorded when the pair was parsed (device, inode, size,
modification time: a truncated, rewritten or renamed-over file differs in
one of them) and reads with ``readinto`` at explicit offsets. No memory map
is read from: a map over a file that shrinks kills the process with SIGBUS,
where a short read here raises ``ValueError`` naming the file. Scattered
blocks (rows of a batch, interleaved m/z and intensity arrays) are read as
a few runs of nearby blocks, one ``readinto`` per run, then gathered with
one numpy index.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

#: Two blocks closer than this many bytes are read in one run (the gap is read too).
RUN_GAP = 1 << 16


class FileIdentity(NamedTuple):
    """What tells a file apart from a changed or replaced one."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st):
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_identity(path):
    return FileIdentity.of(os.stat(path))


def describe_change(path, expected, found):
    """Sentence saying how ``found`` differs from ``expected`` (both FileIdentity)."""
    if (found.dev, found.ino) != (expected.dev, expected.ino):
        how = "it was replaced by another file (renamed or copied over)"
    elif found.size != expected.size:
        how = f"its size changed from {expected.size} to {found.size} bytes"
    else:
        how = "it was modified (its modification time changed)"
    return (f"The binary file {str(path)!r} changed after its imzML file was opened: "
            f"{how}. Its spectra can no longer be trusted; open the file again with "
            "read_imzml.")


def check_identity(path, expected, st):
    if expected is not None and FileIdentity.of(st) != expected:
        raise ValueError(describe_change(path, expected, FileIdentity.of(st)))


def open_checked(path, expected):
    """``path`` opened for unbuffered binary reads, after its identity is compared."""
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise ValueError(
            f"The binary file {str(path)!r} disappeared after its imzML file was opened."
        ) from None
    try:
        check_identity(path, expected, os.fstat(f.fileno()))
    except BaseException:
        f.close()
        raise
    return f


def read_exactly(f, out, path, offset=None):
    """Fill ``out`` (a writable buffer) from ``f`` (at ``offset`` when given)."""
    if offset is not None:
        f.seek(offset)
    view = memoryview(out).cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(
                f"The binary file {str(path)!r} is truncated: a read at byte "
                f"{(offset or 0) + done} found its end (the file is shorter than its "
                "imzML file says, or it shrank while being read)."
            )
        done += got


def gather(path, identity, offsets, nbytes, dtype):
    """Concatenated arrays of ``nbytes[i]`` bytes at ``offsets[i]`` of ``path``.

    Parameters
    ----------
    offsets, nbytes : ndarray of int64
        Byte offset and byte length of every block (lengths multiples of the
        item size of ``dtype``).
    identity : FileIdentity or None
        Identity the opened file must have (None: not checked).

    Returns
    -------
    ndarray of ``dtype``, shape (nbytes.sum() // itemsize,)
    """
    dtype = np.dtype(dtype)
    s = dtype.itemsize
    total = int(nbytes.sum())
    out = np.empty(total // s, dtype=dtype)
    if total == 0:
        return out
    keep = nbytes > 0
    offsets, nbytes = offsets[keep], nbytes[keep]
    with open_checked(path, identity) as f:
        if offsets.size == 1 or np.all(offsets[1:] == offsets[:-1] + nbytes[:-1]):
            read_exactly(f, out, path, int(offsets[0]))  # one contiguous block
            return out
        order = np.argsort(offsets, kind="stable")
        start, end = offsets[order], offsets[order] + nbytes[order]
        reach = np.maximum.accumulate(end)
        new_run = np.ones(start.size, bool)
        new_run[1:] = start[1:] > reach[:-1] + RUN_GAP
        first = np.flatnonzero(new_run)
        run_start, run_end = start[first], np.maximum.reduceat(end, first)
        run_len = run_end - run_start
        run_at = np.concatenate([[0], np.cumsum(run_len)])  # where each run lies in buf
        buf = np.empty(int(run_at[-1]) + s, np.uint8)  # padded: views of whole items
        for k in range(first.size):
            read_exactly(f, buf[run_at[k]:run_at[k + 1]], path, int(run_start[k]))
    run_of = np.cumsum(new_run) - 1
    pos = np.empty(offsets.size, np.int64)
    pos[order] = run_at[run_of] + (start - run_start[run_of])
    lengths = nbytes // s
    within = np.arange(total // s, dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    if np.all(pos % s == 0):
        items = buf[: (buf.size // s) * s].view(dtype)
        np.take(items, np.repeat(pos // s, lengths) + within, out=out)
        return out
    idx = (np.repeat(pos, lengths) + within * s)[:, None] + np.arange(s)
    return buf[idx].reshape(-1).view(dtype)


def first_nonfinite(values):
    """Index of the first row of ``values`` (2D) holding NaN or infinity, or None.

    One sum decides for the common case (a finite sum has no NaN or
    infinity among its terms); only a sum that is not finite (a bad value,
    or finite values that overflow) looks at the values one by one.
    """
    if values.dtype.kind != "f" or values.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(values, axis=None)):
            return None
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None
