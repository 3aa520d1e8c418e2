"""Parse an imzML file into a byte layout that numpy can read in bulk.

:mod:`._parser` parses the XML (offsets, lengths, precisions, coordinates,
as pyimzML reports them); this module checks that layout against the .ibd file (present, long enough,
uncompressed) and reads spectra as whole blocks through a memory map: one
strided view when the offsets are regular, a vectorised fancy index of the
map when they are not. No Python loop runs over spectra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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

    @property
    def n_pixels(self):
        return len(self.coords)


def _find_ibd(imzml):
    candidates = [p for p in imzml.parent.glob("*")
                  if p.stem == imzml.stem and p.suffix.lower() == ".ibd"]
    if not candidates:
        raise FileNotFoundError(
            f"The binary file of {str(imzml)!r} is missing: expected "
            f"{str(imzml.with_suffix('.ibd'))!r} next to it."
        )
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
    from ._parser import parse_imzml

    imzml = Path(path)
    if not imzml.is_file():
        raise FileNotFoundError(f"imzML file {str(imzml)!r} does not exist.")
    ibd = _find_ibd(imzml)
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
    check_uuid(imzml, ibd, by_acc.get(UUID_ACCESSION))
    _check_ibd(layout)
    if verify_checksum:
        check_checksum(imzml, ibd, {a: by_acc.get(a) for a in CHECKSUMS if a in by_acc})
    if layout.continuous:
        layout.shared_mz = read_blocks(ibd, layout.mz_offsets[:1], layout.mz_lengths[:1],
                                       layout.mz_dtype)
    return layout


def _check_ibd(layout):
    name = str(layout.imzml)
    if layout.continuous and (np.unique(layout.int_lengths).size > 1
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
    if np.any(layout.mz_offsets < 0) or np.any(layout.int_offsets < 0):
        raise ValueError(f"{name!r} holds negative offsets into its .ibd file.")
    size = layout.ibd.stat().st_size
    end = max(
        int(np.max(layout.mz_offsets + layout.mz_lengths * layout.mz_dtype.itemsize)),
        int(np.max(layout.int_offsets + layout.int_lengths * layout.int_dtype.itemsize)),
    )
    if end > size:
        raise ValueError(
            f"The binary file {str(layout.ibd)!r} is truncated: its spectra end at "
            f"byte {end}, but the file holds {size} bytes."
        )


def _memmap(path, dtype):
    itemsize = np.dtype(dtype).itemsize
    n = path.stat().st_size // itemsize
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def read_blocks(path, offsets, lengths, dtype):
    """Concatenated arrays ``[offsets[i], offsets[i] + lengths[i])`` of ``path``.

    One memory-mapped gather: a strided view when the blocks have equal
    lengths and regular spacing, element indices when offsets are aligned
    to the item size, raw bytes otherwise.

    Returns
    -------
    values : ndarray of shape (sum(lengths),)
    """
    dtype = np.dtype(dtype)
    s = dtype.itemsize
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=dtype)
    L = int(lengths[0])
    regular = (
        np.all(lengths == L)
        and (len(offsets) == 1 or np.all(np.diff(offsets) == L * s))
    )
    if regular:  # one contiguous block: read straight into the array (no page faults)
        return np.fromfile(path, dtype=dtype, count=total, offset=int(offsets[0]))
    if np.all(lengths == L) and len(offsets) > 1:
        stride = np.diff(offsets)
        if np.all(stride == stride[0]) and stride[0] > 0:  # equal blocks, equal spacing
            mm = _memmap(path, np.uint8)
            view = np.lib.stride_tricks.as_strided(
                mm[int(offsets[0]):], shape=(len(offsets), L * s),
                strides=(int(stride[0]), 1), writeable=False)
            return np.ascontiguousarray(view).view(dtype).reshape(-1)
    starts = np.repeat(offsets, lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths)
    if np.all(offsets % s == 0):
        mm = _memmap(path, dtype)
        return mm[starts // s + within]
    mm = _memmap(path, np.uint8)  # unaligned blocks: gather bytes, then view
    idx = (starts + within * s)[:, None] + np.arange(s)
    return mm[idx].reshape(-1).view(dtype)


def spectra_of(layout, rows, *, mz=True):
    """Concatenated (m/z, intensity) arrays and lengths of spectra ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = layout.int_lengths[rows]
    ints = read_blocks(layout.ibd, layout.int_offsets[rows], lengths, layout.int_dtype)
    mzs = None
    if mz:
        mzs = read_blocks(layout.ibd, layout.mz_offsets[rows], lengths, layout.mz_dtype)
    return mzs, ints, lengths


def sanitize_name(stem):
    """A file stem usable as an XML id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "run"
