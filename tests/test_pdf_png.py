"""The fast PNG writer and the child's one-trip page op: same pixels as the render, valid deterministic PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from renderers.image import encode_png_fast
from renderers.pdf_raster import PdfError, Sandbox
from tests.helpers import SHARED_DATA

PAGE = SHARED_DATA / "pdfs" / "docbot__academic.en.bitcoin.pdf"


def _decode(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(img)


@pytest.mark.parametrize("shape", [(37, 53, 3), (1, 1, 3), (64, 7), (5, 300)])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_round_trip_is_lossless(shape: tuple[int, ...], level: int) -> None:
    pixels = np.random.default_rng([len(shape), level]).integers(0, 256, shape, dtype=np.uint8)
    enc = encode_png_fast(pixels, level)
    assert (enc.width, enc.height, enc.ext) == (shape[1], shape[0], "png")
    assert np.array_equal(_decode(enc.data), pixels)
    assert enc.data == encode_png_fast(pixels.copy(), level).data  # bytes depend on pixels only


def test_non_contiguous_input_and_bad_shapes() -> None:
    base = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    view = base[::2, ::3, :3]
    assert np.array_equal(_decode(encode_png_fast(view).data), view)
    for bad in (base, np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            encode_png_fast(bad)


def test_page_op_ships_the_rendered_pixels() -> None:
    box = Sandbox()
    try:
        raw = box.call("analyze", str(PAGE), 0, 1024, "pymupdf")
        page = box.call("page", str(PAGE), 0, 1024, "pymupdf", 50, 0.1, "png", 1)
        assert page.image is None and page.png is not None
        assert np.array_equal(_decode(page.png.data), raw.image)
        assert page.size == (raw.image.shape[1], raw.image.shape[0]) == (page.png.width, page.png.height)
        assert page.text.text() == raw.text.text()
        kept = box.call("page", str(PAGE), 0, 1024, "pymupdf", 50, 0.1, "raw", 1)
        assert kept.png is None and np.array_equal(kept.image, raw.image)
        assert box.call("page", str(PAGE), 0, 1024, "pymupdf", 50, 0.1, "none", 1).image is None
        with pytest.raises(PdfError) as info:  # the verdict runs in the child: no encoding for a rejected page
            box.call("page", str(PAGE), 0, 1024, "pymupdf", 10 ** 6, 0.1, "png", 1)
        assert info.value.reason == "near_empty_page"
        crop = box.call("clip", str(PAGE), 0, (72.0, 72.0, 300.0, 120.0), 200 / 72, 1)
        assert np.array_equal(_decode(crop.data), box.call("clip", str(PAGE), 0, (72.0, 72.0, 300.0, 120.0), 200 / 72))
    finally:
        box.close()
