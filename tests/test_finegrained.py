"""finegrained engine: box prompts on GOT's 0-1000 scale, colour frames, true region text, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.finegrained import COLORS, box_prompt
from tests.helpers import SHARED_DATA, build_dataset, folder_digest, image, samples

PDFS = SHARED_DATA / "pdfs"
INPUTS = [str(PDFS / "docbot__academic.en.bitcoin.pdf"), str(PDFS / "elegant__elegantpaper-cn.pdf")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fg") / "a"
    build_dataset("finegrained", out, n=24, inputs=INPUTS)
    return out


def test_box_prompt_formula() -> None:
    assert box_prompt([10, 20, 500, 1000], 1000, 2000) == "[10, 10, 500, 500] OCR: "
    assert box_prompt([1, 1, 791, 1023], 792, 1024) == "[1, 0, 998, 999] OCR: "


def test_samples(built: Path) -> None:
    recs = samples(built)
    assert len(recs) >= 20
    assert {r["task"] for r in recs} == {"box", "color"}
    for r in recs:
        img = image(built, r)
        (box,) = r["boxes"]
        assert r["target"].strip() and r["target"].count("\n") + 1 == r["meta"]["lines"]
        assert r["meta"]["region"] in ("line", "paragraph", "window")
        if r["task"] == "box":
            assert r["prompt"] == box_prompt(box, img.width, img.height)
            assert r["colors"] is None
        else:
            (color,) = r["colors"]
            assert r["prompt"] == f"[{color}] OCR: "
            arr = np.asarray(img.convert("RGB")).astype(int)
            x0, y0, x1, y1 = box
            frame = arr[max(0, y0 - 2), x0:x1]  # the frame's top edge, just outside the region
            assert (np.abs(frame - np.array(COLORS[color])).sum(axis=1) < 60).mean() > 0.9


def test_target_is_the_region_lines(built: Path) -> None:
    # Every region's text is a run of lines of the page's own text, in order.
    pages = Path(built).parent / "pages"
    build_dataset("pdf", pages, n=14, inputs=INPUTS, params={"tasks": "page"})
    page_text = {r["source"]: r["target"] for r in samples(pages)}
    for r in samples(built):
        if r["source"] in page_text:
            assert r["target"] in page_text[r["source"]]


def test_reads_a_pdf_dataset_folder(tmp_path: Path, built: Path) -> None:
    src = tmp_path / "pdfset"
    build_dataset("pdf", src, n=2, inputs=INPUTS[:1], params={"tasks": "page"})
    build_dataset("finegrained", tmp_path / "fg", n=3, inputs=[str(src)])
    assert all("bitcoin" in r["source"] for r in samples(tmp_path / "fg"))


def test_determinism(tmp_path: Path) -> None:
    for name in ("a", "b"):
        build_dataset("finegrained", tmp_path / name, n=6, inputs=INPUTS[1:])
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
