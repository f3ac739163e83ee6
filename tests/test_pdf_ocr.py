"""Label fidelity by OCR: RapidOCR (PP-OCR models bundled in the wheel, offline) reads the pdf
engine's line crops from real PDFs; the character error rate against the targets must stay low.

A target that contained hidden, unmapped or misordered text would show up as a large edit
distance here. Thresholds were set from measured CERs with margin (see docs/engines/pdf.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.pdf import pick_region, region_text
from renderers.pdf_raster import PdfError, Sandbox
from tests.helpers import SHARED_DATA

pytestmark = pytest.mark.slow  # ~30 s of OCR on one core: grouped with the other slow tests

PDFS = SHARED_DATA / "pdfs"
ENGLISH = ["docbot__academic.en.bitcoin.pdf", "plumber__federal-register-2020-17221.pdf",
           "acmart__sample-sigconf.pdf", "jz__The-Man-Without-A-Body.pdf", "docling__amt_handbook_sample.pdf"]
CHINESE = ["elegant__elegantpaper-cn.pdf", "elegant__elegantbook-cn.pdf", "elegant__elegantnote-cn.pdf"]
MAX_CER = {"en": 0.02, "zh": 0.05}  # measured 0.0007 and 0.0105 (2025-, PP-OCRv6 small)


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _norm(text: str) -> str:
    # OCR puts spaces differently around CJK and punctuation, and confuses full/half-width forms.
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", text).split())


def _line_crops(names: list[str], count: int) -> list[tuple[np.ndarray, str]]:
    box = Sandbox()
    crops: list[tuple[np.ndarray, str]] = []
    try:
        rounds = 0
        while len(crops) < count and rounds < 6:
            for name in names:
                src = str(PDFS / name)
                pages = box.call("count", src)
                rng = np.random.default_rng([rounds, len(crops)])
                pno = int(rng.integers(pages))
                try:
                    render = box.call("analyze", src, pno, 1024, "pymupdf")
                except PdfError:
                    continue
                if not render.text.lines:
                    continue
                for _ in range(3):
                    picked = pick_region(render, rng, ("line",))
                    if picked is None:
                        continue
                    _, members, region = picked
                    text = region_text(render, members)
                    if len(_norm(text)) >= 6 and len(crops) < count:
                        clip = (max(region[0], 0.0), max(region[1], 0.0), region[2], region[3])
                        crops.append((box.call("clip", src, pno, clip, 200 / 72), text))
            rounds += 1
    finally:
        box.close()
    return crops


@pytest.fixture(scope="module")
def ocr():  # noqa: ANN201 - RapidOCR, built once for the module
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.use_det": False, "Global.use_cls": False, "Global.log_level": "error"})


def _cer(ocr, crops: list[tuple[np.ndarray, str]]) -> float:
    errors = total = 0
    for img, target in crops:
        got = "".join(ocr(img, use_det=False, use_cls=False).txts or ())
        errors += _edit_distance(_norm(got), _norm(target))
        total += len(_norm(target))
    return errors / total


@pytest.mark.parametrize("lang,names,count", [("en", ENGLISH, 40), ("zh", CHINESE, 30)])
def test_line_crops_read_back(ocr, lang: str, names: list[str], count: int) -> None:
    crops = _line_crops(names, count)
    assert len(crops) == count
    cer = _cer(ocr, crops)
    print(f"{lang}: CER {cer:.4f} over {count} line crops")
    assert cer <= MAX_CER[lang]


def test_models_are_bundled() -> None:
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    assert any(models.glob("*rec*.onnx")) and any(models.glob("*det*.onnx"))
