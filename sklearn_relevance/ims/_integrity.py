"""Does this .ibd file belong to this .imzML file? UUID and checksum checks.

imzML ties its two files together: the XML declares a UUID
(``IMS:1000080``) that is also the first 16 bytes of the .ibd, and may
declare the SHA-1 (``IMS:1000091``) or MD5 (``IMS:1000090``) of the whole
.ibd. The UUID check costs one 16-byte read and always runs; the checksum
reads the whole file and runs on request.
"""

from __future__ import annotations

import os
import uuid as _uuid
import warnings

from ._fileio import FileIdentity

#: accession -> (hashlib name, label)
CHECKSUMS = {"IMS:1000091": ("sha1", "SHA-1"), "IMS:1000090": ("md5", "MD5")}
UUID_ACCESSION = "IMS:1000080"


def _parse_uuid(value, imzml):
    try:
        return _uuid.UUID(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{str(imzml)!r} declares a malformed UUID {value!r} (IMS:1000080)."
        ) from None


def check_uuid(imzml, ibd, declared):
    """Raise unless the .ibd's 16-byte header equals the UUID the XML declares.

    A file that declares no UUID is read (pyimzML reads such files) with a
    warning: nothing then ties the .ibd to its XML.

    Returns
    -------
    FileIdentity
        The identity of the .ibd file whose header was read (later reads
        compare the file with it).
    """
    with open(ibd, "rb") as f:
        identity = FileIdentity.of(os.fstat(f.fileno()))
        head = f.read(16)
    if declared is None:
        warnings.warn(
            f"{str(imzml)!r} declares no UUID (IMS:1000080), so nothing ties it to "
            f"{str(ibd)!r}: a binary file of another acquisition, or one half-written, "
            "would be read without error and give wrong intensities. Check the pair "
            "(verify_checksum=True where it declares a checksum).",
            UserWarning, stacklevel=5)
        return identity
    expected = _parse_uuid(declared, imzml)
    if len(head) < 16:
        raise ValueError(
            f"The binary file {str(ibd)!r} is truncated: it holds {len(head)} bytes, "
            "fewer than its 16-byte UUID header."
        )
    found = _uuid.UUID(bytes=head)
    if found != expected:
        raise ValueError(
            f"The binary file {str(ibd)!r} does not belong to {str(imzml)!r}: its UUID "
            f"header is {found}, but the XML declares {expected}. The pair comes from "
            "different acquisitions or an interrupted write; reading it would give "
            "wrong intensities."
        )
    return identity


def verify_checksum(imzml, ibd, declared):
    """Hash the whole .ibd and compare it with the declared SHA-1 or MD5.

    Parameters
    ----------
    declared : dict
        accession -> declared hex digest (only those the file declares).

    Raises
    ------
    ValueError
        When the file declares no checksum, or the digest differs.
    """
    found = [(acc, v) for acc, v in declared.items() if acc in CHECKSUMS and v]
    if not found:
        raise ValueError(
            f"verify_checksum=True, but {str(imzml)!r} declares no SHA-1 (IMS:1000091) "
            "or MD5 (IMS:1000090) checksum of its binary file."
        )
    import hashlib  # only here: reading without a checksum needs none of it

    accession, value = found[0]
    algo, label = CHECKSUMS[accession]
    h = hashlib.new(algo)
    with open(ibd, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    if digest.lower() != str(value).strip().lower():
        raise ValueError(
            f"The binary file {str(ibd)!r} fails its {label} check: {str(imzml)!r} "
            f"declares {str(value).strip()}, the file hashes to {digest}."
        )
