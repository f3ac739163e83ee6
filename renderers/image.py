"""Image encoding shared by every engine: deterministic bytes, no metadata."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from PIL import Image

from engines.base import EncodedImage


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode not in ("RGB", "L"):
        # Flatten transparency onto white: training images have no alpha.
        background = Image.new("RGB", image.size, "white")
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    return image


def encode_png(image: Image.Image | np.ndarray, level: int = 6) -> EncodedImage:
    """PNG without text chunks, timestamps or ICC profile, so equal pixels give equal bytes."""
    pil = to_pil(image)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=level, optimize=False)
    return EncodedImage(buf.getvalue(), pil.width, pil.height, "png")


def encode_jpeg(image: Image.Image | np.ndarray, quality: int = 90) -> EncodedImage:
    pil = to_pil(image).convert("RGB")
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return EncodedImage(buf.getvalue(), pil.width, pil.height, "jpg")


def encode(image: Image.Image | np.ndarray, fmt: str = "png", level: int = 6, quality: int = 90) -> EncodedImage:
    if fmt == "png":
        return encode_png(image, level)
    if fmt in ("jpg", "jpeg"):
        return encode_jpeg(image, quality)
    raise ValueError(f"unknown image format {fmt!r}")


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- fast deterministic PNG ------------------------------------------------------------------
# Pillow tries all five row filters on every row (adaptive filtering), most of its encode time.
# Rendered pages, charts and drawings are flat fills with thin ink, so one fixed filter plus one
# zlib call compresses about as well at a third of the CPU (measured per engine in docs/engines/).
# The bytes depend only on the pixels, the filter, the deflate settings and zlib.

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTERS = {"sub": 1, "up": 2}
_GREY, _RGB = 0, 2  # PNG colour types


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def _rgb_of_rgba(width: int) -> np.ndarray:
    """Column indices, in a row of (filter pixel + RGBA pixels), of the filter byte and then R, G, B."""
    return np.concatenate([[0], 4 + (np.arange(width)[:, None] * 4 + np.arange(3)).ravel()])


def filter_rows(pixels: np.ndarray, row_filter: str = "up") -> np.ndarray:
    """PNG scanlines (h, 1 + w*c): each row behind its filter byte. RGBA input yields RGB scanlines.

    uint8 arithmetic wraps modulo 256, exactly as PNG's filters want.
    """
    kind = _FILTERS[row_filter]
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels == 4 and kind == 2:
        # Filter the whole RGBA array (one contiguous subtraction), then one take keeps the filter
        # byte and R, G, B: half the cost of slicing [:, :, :3] into a copy first.
        padded = np.empty((height, width + 1, 4), np.uint8)
        padded[:, 0, 0] = kind
        padded[0, 1:] = pixels[0]
        np.subtract(pixels[1:], pixels[:-1], out=padded[1:, 1:])
        return padded.reshape(height, 4 * width + 4).take(_rgb_of_rgba(width), axis=1)
    if channels == 4:
        pixels, channels = pixels[:, :, :3], 3
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    out = np.empty((height, width * channels + 1), np.uint8)
    out[:, 0] = kind
    if kind == 2:
        out[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    else:
        out[:, 1 : 1 + channels] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=out[:, 1 + channels :])
    return out


def is_grey(pixels: np.ndarray) -> bool:
    """True when every pixel has R = G = B (always for 2-D arrays)."""
    if pixels.ndim == 2:
        return True
    return bool((pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all())


def encode_png_fast(
    pixels: np.ndarray,
    level: int = 6,
    row_filter: str = "up",
    grey: bool = False,
    strategy: int = zlib.Z_DEFAULT_STRATEGY,
) -> EncodedImage:
    """uint8 pixels, (h, w) grey, (h, w, 3) RGB or opaque (h, w, 4) RGBA (alpha dropped), as PNG.

    ``grey=True`` writes channel 0 of a colour array as 8-bit grey: callers pass it only when
    ``is_grey`` holds, so the decoded pixels are the same.
    """
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4)):
        raise ValueError(f"expected (h, w), (h, w, 3) or (h, w, 4) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("cannot encode an empty image")
    if pixels.ndim == 3 and pixels.shape[2] == 4 and not (pixels[:, :, 3] == 255).all():
        raise ValueError("RGBA pixels must be opaque: the PNG drops alpha, a transparent pixel would change colour")
    if grey and pixels.ndim == 3:
        pixels = pixels[:, :, 0]
    colour = _GREY if pixels.ndim == 2 else _RGB
    compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    data = compressor.compress(filter_rows(pixels, row_filter)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    png = _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    return EncodedImage(png, width, height, "png")
