"""Benchmark of the pdf engine (run by hand): pages/s per core, side by side in one run.

- bare loop: PyMuPDF in this process, render 1024 px + get_text('dict') + PNG encode
- naive: pdfminer.six extraction (+ the same render and encode), the paper's second parser
- pipeline: got-data build pdf (tasks=page), sandboxed renderer, filters, shards; 1 and 2 workers
- isolation cost: the same analysis in-process vs through the sandbox child
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from got_data.build import BuildRequest, build  # noqa: E402
from renderers.image import encode_png  # noqa: E402
from renderers.pdf_raster import InProcess, sandbox  # noqa: E402

PDFS = ROOT.parent / "shared" / "data" / "pdfs"
N = 120


def pages() -> list[tuple[str, int]]:
    import pymupdf

    out = []
    for p in sorted(PDFS.glob("*.pdf")):
        with pymupdf.open(p) as doc:
            out += [(str(p), i) for i in range(min(doc.page_count, 6))]
    return out


def bare(units: list[tuple[str, int]], n: int) -> float:
    import pymupdf

    docs: dict[str, object] = {}
    t = time.perf_counter()
    for src, pno in (units * 10)[:n]:
        doc = docs.setdefault(src, pymupdf.open(src))
        page = doc[pno]  # type: ignore[index]
        s = 1024 / max(page.rect.width, page.rect.height)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(s, s), alpha=False)
        page.get_text("dict")
        encode_png(__import__("PIL.Image").Image.frombytes("RGB", (pix.width, pix.height), pix.samples))
    return n / (time.perf_counter() - t)


def analysis(box: object, units: list[tuple[str, int]], n: int, parser: str) -> float:
    t = time.perf_counter()
    for src, pno in (units * 10)[:n]:
        try:
            r = box.call("analyze", src, pno, 1024, parser)  # type: ignore[attr-defined]
            encode_png(r.image)
        except Exception:  # noqa: BLE001
            pass
    return n / (time.perf_counter() - t)


def pipeline(workers: int, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build(BuildRequest(engine="pdf", n=n, out=f"{tmp}/o", inputs=[str(PDFS)], params={"tasks": "page"},
                           workers=workers, progress=False, shard_size=max(1, n // 4)))
        return n / (time.perf_counter() - t)


def main() -> None:
    units = pages()
    bare(units, 10)  # warm up imports
    sb = sandbox()
    sb.call("count", units[0][0])
    rows = {
        "bare PyMuPDF loop (render+dict+PNG)": bare(units, N),
        "PyMuPDF analysis in-process (+PNG)": analysis(InProcess(), units, N, "pymupdf"),
        "PyMuPDF analysis via sandbox (+PNG)": analysis(sb, units, N, "pymupdf"),
        "pdfminer.six analysis via sandbox (+PNG)": analysis(sb, units, N // 4, "pdfminer"),
        "pipeline, workers=0 (in-process)": pipeline(0, N),
        "pipeline, Ray workers=1": pipeline(1, N),
        "pipeline, Ray workers=2": pipeline(2, 2 * N),
    }
    base = rows["bare PyMuPDF loop (render+dict+PNG)"]
    for name, rate in rows.items():
        print(f"{name:45s} {rate:7.1f} pages/s   x{rate / base:5.2f} of bare")
    w0 = rows["pipeline, workers=0 (in-process)"]
    print(f"pipeline/bare (in-process) = {w0 / base:.2f};  2 workers / 1 worker = "
          f"{rows['pipeline, Ray workers=2'] / rows['pipeline, Ray workers=1']:.2f}")
    print(f"pymupdf/pdfminer = {rows['PyMuPDF analysis via sandbox (+PNG)'] / rows['pdfminer.six analysis via sandbox (+PNG)']:.1f}x")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: driver {own:.0f} MB, largest child {kids:.0f} MB")


if __name__ == "__main__":
    main()
