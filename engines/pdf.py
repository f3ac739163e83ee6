"""PDF pages and line/paragraph crops with their true text (GOT-OCR2.0's Fitz pipeline).

Units are (document, page). Rendering and extraction run in a sandboxed child process
(renderers.pdf_raster) so a hostile PDF costs one rejection, never a worker. The text
comes from renderers.pdf_text, which keeps only what the rendered page shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import PROMPT_OCR, Engine, Param, ParamError, Rejection, Result, Sample
from renderers.pdf_raster import PageRender, PdfError, sandbox
from renderers.pdf_text import Box, overlap, union

LOCALITY_RUN = 8  # consecutive pages of a document that stay together in the visiting order


@dataclass
class PageJob:
    """What one position needs from the renderer, decided before the page comes back."""

    position: int
    rng: np.random.Generator | None  # None when the sample draws nothing (pdf, tasks=page)
    unit: list[Any]
    task: str
    image: str  # "png", "raw" or "none" (see PdfBase.page)
    color: str = ""


# -- inputs -----------------------------------------------------------------------------


def list_pdfs(inputs: list[str]) -> list[str]:
    """PDF files named by ``inputs`` (files, folders, fsspec URLs, or got-data dataset folders)."""
    found: list[str] = []
    for item in inputs:
        if "://" in item and not item.startswith("file://"):
            import fsspec

            fs, root = fsspec.core.url_to_fs(item)
            protocol = item.split("://", 1)[0]
            if fs.isdir(root):
                found += [f"{protocol}://{p}" for p in sorted(fs.find(root)) if p.lower().endswith(".pdf")]
            elif fs.exists(root):
                found.append(item)
            else:
                raise OSError(f"no such input: {item}")
            continue
        path = Path(item[len("file://"):] if item.startswith("file://") else item)
        if path.is_dir() and (path / "index.json").is_file():
            # A built got-data dataset (e.g. of the pdf engine): reuse the PDFs it was made from.
            index = json.loads((path / "index.json").read_text())
            found += list_pdfs(list(index.get("inputs", index.get("config", {}).get("inputs", []))))
        elif path.is_dir():
            found += [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() == ".pdf" and p.is_file()]
        elif path.is_file():
            found.append(str(path))
        else:
            raise OSError(f"no such input: {item}")
    return list(dict.fromkeys(found))  # keep first occurrence, deterministic


def plan_pages(inputs: list[str], params: dict[str, Any]) -> list[list[Any]]:
    """Units [src, page] per page; a document that cannot be used is one unit [src, -1, reason, detail]."""
    box = sandbox(params["mem_mb"], params["timeout"])
    units: list[list[Any]] = []
    for src in list_pdfs(inputs):
        try:
            n = box.call("count", src)
        except PdfError as exc:
            units.append([src, -1, exc.reason, exc.detail])
            continue
        units += [[src, p] for p in range(min(n, params["max_pages"]))]
    return units


SANDBOX_PARAMS = (
    Param("parser", "pymupdf", "text layer parser", str, choices=("pymupdf", "pdfminer")),
    Param("long_side", 1024, "page image long side in pixels", int, minimum=256, maximum=4096),
    Param("min_chars", 50, "pages with fewer readable characters are rejected (near-empty)", int, minimum=1),
    Param("max_masked", 0.1, "largest share of visible-but-unlabelable characters (masked) before a page "
          "is rejected", float, minimum=0.0, maximum=1.0),
    Param("max_pages", 2000, "pages used per document", int, minimum=1),
    Param("mem_mb", 2048, "memory limit of the PDF renderer process (MB)", int, minimum=256),
    Param("timeout", 30.0, "time limit per document operation (seconds)", float, minimum=1.0),
    Param("png_level", 2, "zlib level of the PNG images (measured on document pages: 1 and 2 equally "
          "fast, 2 ~3% smaller; 3 ~5% smaller for ~12% more time; 6 twice the time, no smaller)", int,
          minimum=0, maximum=9),
)


class PdfBase(Engine):
    """What the pdf and finegrained engines share: units, locality, the page with its text."""

    inputs = "required"

    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        return plan_pages(inputs, params)

    def unit(self, position: int) -> tuple[Any, int]:
        """Like Engine.unit, but runs of LOCALITY_RUN consecutive pages of one document are shuffled
        as blocks: a shard then re-opens few documents (the child's LRU hits) while the order
        over documents stays a seeded permutation per pass."""
        if not self.units:
            raise ValueError(f"engine {self.name} has no input units")
        epoch, offset = divmod(position, len(self.units))
        cache = self.__dict__.setdefault("_unit_orders", {})
        if epoch not in cache:
            cache.clear()
            starts = [i for i, u in enumerate(self.units)
                      if i == 0 or u[0] != self.units[i - 1][0] or u[1] % LOCALITY_RUN == 0]
            bounds = starts + [len(self.units)]
            perm = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch, 0x5EED]).permutation(len(starts))
            cache[epoch] = np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in perm])
        return self.units[int(cache[epoch][offset])], epoch

    @property
    def box(self) -> Any:
        return sandbox(self.p["mem_mb"], self.p["timeout"])

    def page(self, unit: list[Any], image: str = "png") -> PageRender | Rejection:
        """The rendered page with its kept lines (unreadable text masked), or why it cannot be used.
        ``image``: "png" (encoded in the renderer child), "raw" (pixels, to draw on) or "none"."""
        src, pno = unit[0], unit[1]
        if pno < 0:
            return Rejection(unit[2], unit[3], source=src)
        try:
            return self.box.call("page", *self._page_args(unit, image))
        except PdfError as exc:
            return Rejection(exc.reason, exc.detail, source=f"{src}#page={pno + 1}")

    def _page_args(self, unit: list[Any], image: str) -> tuple[Any, ...]:
        return (unit[0], unit[1], self.p["long_side"], self.p["parser"], self.p["min_chars"],
                self.p["max_masked"], image, self.p["png_level"])

    def _page_reply(self, unit: list[Any]) -> PageRender | Rejection:
        """The reply to the page request sent for ``unit`` (none is sent for a plan-time rejection)."""
        src, pno = unit[0], unit[1]
        if pno < 0:
            return Rejection(unit[2], unit[3], source=src)
        try:
            return self.box.receive()
        except PdfError as exc:
            return Rejection(exc.reason, exc.detail, source=f"{src}#page={pno + 1}")

    # A position's sample in two halves: ``prepare`` decides (from its rng) which page and image it
    # needs, ``finish`` turns the page into the sample. ``generate`` sends the next position's page
    # request before handing back the current sample, so the child renders while the driver writes.
    def prepare(self, position: int) -> PageJob:
        raise NotImplementedError

    def finish(self, job: PageJob, render: PageRender | Rejection) -> Result:
        raise NotImplementedError

    def sample(self, position: int) -> Result:
        job = self.prepare(position)
        return self.finish(job, self.page(job.unit, job.image))

    def _launch(self, position: int) -> PageJob | Rejection:
        try:
            job = self.prepare(position)
        except Exception as exc:  # noqa: BLE001 - reported as a value, like Engine.generate
            return Rejection("engine_error", f"{type(exc).__name__}: {exc}")
        if job.unit[1] >= 0:
            self.box.send("page", *self._page_args(job.unit, job.image))
        return job

    def generate(self, positions: Sequence[int]) -> Iterator[Result]:
        """Engine.generate with one page request in flight ahead: the same requests in the same
        order as ``sample`` one by one (a crop's clip is asked before the next page is sent)."""
        positions = list(positions)
        job = self._launch(positions[0]) if positions else None
        try:
            for i in range(len(positions)):
                if isinstance(job, Rejection):
                    result: Result = job
                else:
                    assert job is not None
                    try:
                        result = self.finish(job, self._page_reply(job.unit))
                    except Exception as exc:  # noqa: BLE001
                        result = Rejection("engine_error", f"{type(exc).__name__}: {exc}")
                job = self._launch(positions[i + 1]) if i + 1 < len(positions) else None
                yield result
        finally:
            self.box.discard()  # a generator closed early leaves the next page's request in flight

    def close(self) -> None:
        pass  # the sandbox is per worker and shared by engine instances; it exits with the worker


def clear_of_others(region: Box, members: set[int], render: PageRender, tolerance: float = 0.15) -> bool:
    """True when no other text (kept or masked) reaches into ``region`` beyond a sliver."""
    for i, line in enumerate(render.text.lines):
        if i not in members and overlap(region, line.box) > tolerance * (line.box[3] - line.box[1]) * (
                line.box[2] - line.box[0]):
            return False
    return all(overlap(region, b) <= 0 for b in render.text.masked)


def padded(box: Box, pad: float) -> Box:
    return (box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad)


def pick_region(render: PageRender, rng: np.random.Generator, kinds: tuple[str, ...],
                tries: int = 12) -> tuple[str, list[int], Box] | None:
    """A region of whole lines (kind, line indexes in reading order, box in points) that no other
    text touches: a line, a paragraph of >= 2 lines, or a window of 2-6 consecutive lines of one
    paragraph. None when the page has no such region after a few tries."""
    lines = render.text.lines
    paras = [p for p in render.text.paragraphs() if len(p) >= 2]
    for _ in range(tries):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "line":
            members = [int(rng.integers(len(lines)))]
        elif kind == "paragraph":
            if not paras:
                continue
            members = paras[int(rng.integers(len(paras)))]
        else:
            if not paras:
                continue
            para = paras[int(rng.integers(len(paras)))]
            size = int(rng.integers(2, min(6, len(para)) + 1))
            start = int(rng.integers(0, len(para) - size + 1))
            members = para[start:start + size]
        box = union([lines[i].box for i in members])
        line_h = min(lines[i].box[3] - lines[i].box[1] for i in members)
        region = padded(box, 0.2 * line_h)
        if clear_of_others(region, set(members), render):
            return kind, members, region
    return None


def region_text(render: PageRender, members: list[int]) -> str:
    return "\n".join(render.text.lines[i].text for i in members)


def parse_tasks(raw: str, known: tuple[str, ...]) -> tuple[str, ...]:
    tasks = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    bad = [t for t in tasks if t not in known]
    if bad or not tasks:
        raise ParamError(f"--param tasks={raw!r}: expected a comma-separated list of {', '.join(known)}")
    return tasks


class Pdf(PdfBase):
    name = "pdf"
    version = "2"  # 2: PNGs by renderers.image.encode_png_fast, Sub filter (same pixels, other bytes)
    description = "PDF pages (text top-to-bottom, column by column) and line/paragraph crops, OCR targets"
    params = (
        Param("tasks", "page,crop", "comma-separated tasks to mix: page, crop"),
        Param("crop_share", 0.4, "share of crop samples when both tasks are on (paper: 0.8M of 2M)", float,
              minimum=0.0, maximum=1.0),
        Param("crop_dpi", 200, "resolution of crops", int, minimum=72, maximum=600),
        *SANDBOX_PARAMS,
    )

    task_names: tuple[str, ...] = ("page", "crop")

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        params = super().resolve_params(given)
        parse_tasks(params["tasks"], cls.task_names)
        return params

    @property
    def tasks(self) -> tuple[str, ...]:
        return parse_tasks(self.p["tasks"], self.task_names)

    def prepare(self, position: int) -> PageJob:
        unit, _ = self.unit(position)
        tasks = self.tasks
        if "crop" not in tasks:  # a page sample draws nothing: no generator (~0.1 ms of seeding)
            return PageJob(position, None, unit, "page", "png")
        rng = self.rng(position)
        if "page" not in tasks or rng.random() < self.p["crop_share"]:
            task = "crop"
        else:
            task = "page"
        return PageJob(position, rng, unit, task, "png" if task == "page" else "none")  # a crop never needs the page image

    def finish(self, job: PageJob, render: PageRender | Rejection) -> Result:
        if isinstance(render, Rejection):
            return render
        rng, unit, task = job.rng, job.unit, job.task
        src, pno = unit[0], unit[1]
        where = f"{src}#page={pno + 1}"
        meta = {"page": pno + 1, "parser": self.p["parser"]}
        if task == "page":
            assert render.png is not None
            return Sample("page", PROMPT_OCR, render.text.text(), [render.png], source=where,
                          meta={**meta, "lines": len(render.text.lines)})
        assert rng is not None
        picked = pick_region(render, rng, ("line", "paragraph"))
        if picked is None:
            return Rejection("no_clean_region", "no line or paragraph is clear of other text", source=where)
        kind, members, region = picked
        zoom = self.p["crop_dpi"] / 72
        page_box = (0.0, 0.0, render.text.width, render.text.height)
        clip = (max(region[0], 0.0), max(region[1], 0.0), min(region[2], page_box[2]), min(region[3], page_box[3]))
        try:
            crop = self.box.call("clip", src, pno, clip, zoom, self.p["png_level"])
        except PdfError as exc:
            return Rejection(exc.reason, exc.detail, source=where)
        return Sample("crop", PROMPT_OCR, region_text(render, members), [crop], source=where,
                      meta={**meta, "region": kind, "lines": len(members),
                            "box_pt": [round(v, 2) for v in clip]})
