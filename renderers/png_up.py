"""A fast deterministic PNG writer for charts: RGB rows with the PNG "Up" filter, one zlib call.

Pillow tries all five row filters on every row (adaptive filtering), which is most of its
encode time on a 1024x768 chart. Charts are flat fills, horizontal/vertical lines and text, so
the Up filter alone (each byte minus the byte above it: one vectorised subtraction) compresses
them about as well. Measured on ECharts charts (CPU per chart, size): Pillow level 6 ~20 ms,
32 KB; Up level 6 ~11 ms, 34 KB; Up level 3 ~6 ms, 44 KB. ``renderers.png_fast`` (Sub filter,
made for document pages) gives 38 KB at level 6 and 51 KB at level 1 on the same charts.

No text, time or colour-profile chunks: the bytes depend only on the pixels, the level and
Python's ``zlib``, so equal pixels give equal files.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from engines.base import EncodedImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
UP = 2  # PNG filter type 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def up_filtered(rows: np.ndarray) -> bytes:
    """(h, row_bytes) uint8 rows, each prefixed with filter byte 2 and minus the row above (mod 256)."""
    height, row_bytes = rows.shape
    out = np.empty((height, row_bytes + 1), np.uint8)
    out[:, 0] = UP
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # uint8 arithmetic wraps, as PNG wants
    return out.tobytes()


def encode_png_up(pixels: np.ndarray, level: int = 6) -> EncodedImage:
    """An (h, w, 3) uint8 RGB array (any strides) as PNG bytes."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) uint8 array, got {pixels.dtype} {pixels.shape}")
    height, width, _ = pixels.shape
    if height == 0 or width == 0:
        raise ValueError("cannot encode an empty image")
    rows = np.ascontiguousarray(pixels).reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    data = SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(up_filtered(rows), level))
    return EncodedImage(data + _chunk(b"IEND", b""), width, height, "png")
