"""Image encoding shared by every engine: deterministic bytes, no metadata."""

from __future__ import annotations

import io

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
