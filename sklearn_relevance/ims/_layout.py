"""Parse an imzML file into a byte layout that numpy can read in bulk.

:mod:`._parser` parses the XML (offsets, lengths, precisions, coordinates,
as pyimzML reports them); this module checks that layout against the .ibd file (present, long enough,
uncompressed, every number in range) and reads spectra as whole blocks:
one read when they are contiguous, runs of nearby blocks gathered with one
vectorised index when they are not (:mod:`._fileio`: identity-checked
reads, no memory map). No Python loop runs over spectra.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._parser import parse_imzml  # at import: a first read pays no import
from ._fileio import FileIdentity, first_nonfinite, gather
from ._integrity import CHECKSUMS, UUID_ACCESSION, check_uuid
from ._integrity import verify_checksum as check_checksum

# imzML stores little-endian numbers; pyimzml names them with struct codes.
_DTYPES = {"f": "<f4", "d": "<f8", "i": "<i4", "l": "<i8"}


@dataclass
class Layout:
    """Where every spectrum of one imzML file lies in its .ibd file."""

    imzml: Path
    ibd: Path
    mz_offsets: np.ndarray
    mz_lengths: np.ndarray
    int_offsets: np.ndarray
    int_lengths: np.ndarray
    mz_dtype: np.dtype
    int_dtype: np.dtype
    coords: np.ndarray
    continuous: bool
    metadata: dict = field(default_factory=dict)
    shared_mz: np.ndarray | None = None  # the m/z axis of a continuous file
    #: identities of both files when parsed: every read compares the .ibd with its own
    ibd_identity: FileIdentity | None = None
    imzml_identity: FileIdentity | None = None

    @property
    def n_pixels(self):
        return len(self.coords)


def _kind(mode):
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def check_regular(path, label):
    """Raise unless ``path`` is a regular file, saying what it is instead."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label} {str(path)!r} does not exist.") from None
    except NotADirectoryError:
        raise FileNotFoundError(
            f"{label} {str(path)!r} does not exist (a part of its path is not a folder)."
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{label} {str(path)!r} is a directory, not a file.")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(
            f"{label} {str(path)!r} is not a regular file: it is {_kind(st.st_mode)}."
        )
    return st


def find_ibd(imzml):
    """The .ibd file beside ``imzml`` (same stem, suffix in any case)."""
    candidates = sorted(p for p in imzml.parent.glob("*")
                        if p.stem == imzml.stem and p.suffix.lower() == ".ibd")
    if not candidates:
        raise FileNotFoundError(
            f"The binary file of {str(imzml)!r} is missing: expected "
            f"{str(imzml.with_suffix('.ibd'))!r} next to it."
        )
    check_regular(candidates[0], f"The binary file of {str(imzml)!r},")
    return candidates[0]


def _metadata(parser):
    meta = {"imzml": dict(parser.imzmldict)}
    try:
        meta.update(parser.metadata.pretty())
    except Exception:  # noqa: BLE001, S110  # pragma: no cover - pyimzml versions differ
        pass
    meta["polarity"] = parser.polarity
    meta["spectrum_mode"] = parser.spectrum_mode
    return meta


def _compressed(parser):
    groups = parser.metadata.referenceable_param_groups.values()
    return any("zlib compression" in g.param_by_name for g in groups)


def parse(path, *, verify_checksum=False) -> Layout:
    """Parse ``path`` (an .imzML file) and validate it against its .ibd.

    The .ibd's UUID header must equal the UUID the XML declares; with
    ``verify_checksum`` the whole .ibd is hashed against the declared
    SHA-1/MD5.

    Raises
    ------
    FileNotFoundError
        When the .imzML or its .ibd file is missing.
    ValueError
        When the XML is cut or malformed, the data are compressed, the .ibd
        file is shorter than the offsets say, or a continuous file holds
        spectra of different lengths.
    """
    imzml = Path(path)
    imzml_identity = FileIdentity.of(check_regular(imzml, "imzML file"))
    ibd = find_ibd(imzml)
    try:
        parser = parse_imzml(imzml)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise ValueError(
            f"{str(imzml)!r} is not a readable imzML file (cut or malformed XML?): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    n = len(parser.coordinates)
    if n == 0:
        raise ValueError(f"{str(imzml)!r} holds no spectra (cut or malformed XML?).")
    if parser.mzPrecision is None or parser.intensityPrecision is None:
        raise ValueError(
            f"{str(imzml)!r} does not declare the number format of its m/z or "
            "intensity arrays."
        )
    if _compressed(parser):
        raise ValueError(
            f"{str(imzml)!r} stores zlib-compressed arrays; only uncompressed "
            "imzML files can be read in bulk."
        )
    desc = parser.metadata.file_description.param_by_name
    layout = Layout(
        imzml=imzml,
        ibd=ibd,
        mz_offsets=np.asarray(parser.mzOffsets, dtype=np.int64),
        mz_lengths=np.asarray(parser.mzLengths, dtype=np.int64),
        int_offsets=np.asarray(parser.intensityOffsets, dtype=np.int64),
        int_lengths=np.asarray(parser.intensityLengths, dtype=np.int64),
        mz_dtype=np.dtype(_DTYPES[parser.mzPrecision]),
        int_dtype=np.dtype(_DTYPES[parser.intensityPrecision]),
        coords=np.asarray(parser.coordinates, dtype=np.int64).reshape(n, 3),
        continuous=bool(desc.get("continuous", False))
        or bool(np.all(np.asarray(parser.mzOffsets) == parser.mzOffsets[0])),
        metadata=_metadata(parser),
    )
    layout.metadata["continuous"] = layout.continuous
    layout.metadata["uuid"] = desc.get("universally unique identifier")
    by_acc = parser.metadata.file_description.param_by_accession
    layout.imzml_identity = imzml_identity
    layout.ibd_identity = check_uuid(imzml, ibd, by_acc.get(UUID_ACCESSION))
    _check_numbers(layout)
    _check_ibd(layout)
    if verify_checksum:
        check_checksum(imzml, ibd, {a: by_acc.get(a) for a in CHECKSUMS if a in by_acc})
    if layout.continuous:
        layout.shared_mz = read_blocks(ibd, layout.mz_offsets[:1], layout.mz_lengths[:1],
                                       layout.mz_dtype, layout.ibd_identity)
        check_finite_mz(layout, layout.shared_mz[None, :], np.zeros(1, np.int64))
    return layout


def check_finite_mz(layout, mzs, rows):
    """Raise unless the m/z values ``mzs`` (one row per spectrum ``rows``) are finite."""
    bad = first_nonfinite(mzs)
    if bad is not None:
        raise ValueError(
            f"{str(layout.imzml)!r}: the m/z array of spectrum {int(rows[bad])} (in "
            f"{str(layout.ibd)!r}) holds NaN or infinity; no m/z axis can hold it (the "
            "file is damaged or was written wrongly)."
        )


_FIELDS = {"mz_offsets": "m/z array offset (IMS:1000102)",
           "mz_lengths": "m/z array length (IMS:1000103)",
           "int_offsets": "intensity array offset (IMS:1000102)",
           "int_lengths": "intensity array length (IMS:1000103)"}
_AXES = ("position x (IMS:1000050)", "position y (IMS:1000051)",
         "position z (IMS:1000052)")


def _check_numbers(layout):
    """Refuse numbers no spectrum can have, naming the file, the field and the spectrum.

    Offsets and lengths must lie within the .ibd file (checked without
    overflow: a length of 2**62 or an offset near 2**63 is refused, not
    wrapped round), coordinates are 1-based, and at least one spectrum holds
    values.
    """
    name, size = str(layout.imzml), layout.ibd_identity.size
    for attr, label in _FIELDS.items():
        v = getattr(layout, attr)
        item = (layout.mz_dtype if attr.startswith("mz") else layout.int_dtype).itemsize
        limit = size if attr.endswith("offsets") else size // item
        bad = np.flatnonzero((v < 0) | (v > limit))
        if bad.size:
            i = int(bad[0])
            if v[i] < 0:
                raise ValueError(
                    f"{name!r} is malformed: the {label} of spectrum {i} is {int(v[i])}, "
                    "which is negative."
                )
            reach = "points past its end" if attr.endswith("offsets") else \
                "is more values than it holds"
            raise ValueError(
                f"The binary file {str(layout.ibd)!r} is truncated or {name!r} is "
                f"malformed: the {label} of spectrum {i} is {int(v[i])}, which {reach} "
                f"({size} bytes)."
            )
    coords = layout.coords
    bad = np.argwhere(coords < 1)
    if bad.size:
        i, j = (int(k) for k in bad[0])
        raise ValueError(
            f"{name!r} is malformed: the {_AXES[j]} of spectrum {i} is {int(coords[i, j])}; "
            "imzML pixel coordinates are 1-based (>= 1)."
        )
    if not np.any(layout.int_lengths > 0):
        raise ValueError(
            f"{name!r} holds no values: every one of its {layout.n_pixels} spectra is "
            "empty (intensity array length 0)."
        )


def _check_ibd(layout):
    name = str(layout.imzml)
    if layout.continuous and (np.any(layout.int_lengths != layout.int_lengths[0])
                              or layout.int_lengths[0] != layout.mz_lengths[0]):
        bad = int(np.flatnonzero(layout.int_lengths != layout.mz_lengths[0])[0])
        raise ValueError(
            f"{name!r} is in continuous mode, but its spectra have different lengths: "
            f"spectrum {bad} holds {layout.int_lengths[bad]} intensities for the "
            f"{layout.mz_lengths[0]} values of the shared m/z axis (lengths found: "
            f"{sorted(set(layout.int_lengths.tolist()))[:5]})."
        )
    if np.any(layout.mz_lengths != layout.int_lengths):
        bad = int(np.flatnonzero(layout.mz_lengths != layout.int_lengths)[0])
        raise ValueError(
            f"{name!r}: spectrum {bad} has {layout.mz_lengths[bad]} m/z values but "
            f"{layout.int_lengths[bad]} intensities."
        )
    size = layout.ibd_identity.size
    end = max(
        int(np.max(layout.mz_offsets + layout.mz_lengths * layout.mz_dtype.itemsize)),
        int(np.max(layout.int_offsets + layout.int_lengths * layout.int_dtype.itemsize)),
    )
    if end > size:
        raise ValueError(
            f"The binary file {str(layout.ibd)!r} is truncated: its spectra end at "
            f"byte {end}, but the file holds {size} bytes."
        )


def read_blocks(path, offsets, lengths, dtype, identity=None):
    """Concatenated arrays ``[offsets[i], offsets[i] + lengths[i])`` of ``path``.

    Read by :func:`._fileio.gather`: one read for a contiguous run, runs of
    nearby blocks otherwise, after the file's identity is compared with
    ``identity`` (when given).

    Returns
    -------
    values : ndarray of shape (sum(lengths),)
    """
    dtype = np.dtype(dtype)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    return gather(path, identity, offsets, lengths * dtype.itemsize, dtype)


def spectra_of(layout, rows, *, mz=True):
    """Concatenated (m/z, intensity) arrays and lengths of spectra ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = layout.int_lengths[rows]
    ints = read_blocks(layout.ibd, layout.int_offsets[rows], lengths, layout.int_dtype,
                       layout.ibd_identity)
    mzs = None
    if mz:
        mzs = read_blocks(layout.ibd, layout.mz_offsets[rows], lengths, layout.mz_dtype,
                          layout.ibd_identity)
    return mzs, ints, lengths


def sanitize_name(stem):
    """A file stem usable as an XML id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "run"
