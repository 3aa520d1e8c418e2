"""A minimal PNG encoder (8-bit greyscale, RGB or RGBA), standard library only."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(pixels):
    """PNG bytes of a uint8 array (H, W), (H, W, 3) or (H, W, 4).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_relevance._png import encode_png
    >>> encode_png(np.zeros((2, 3), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPES \
            or 0 in pixels.shape[:2]:
        raise ValueError(
            "encode_png needs a non-empty uint8 array of shape (H, W), (H, W, 3) or "
            f"(H, W, 4). Got {pixels.dtype} of shape {pixels.shape} instead."
        )
    h, w, c = pixels.shape
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    rows = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, w * c)], axis=1)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b""))
