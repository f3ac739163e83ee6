"""Fine-grained OCR on PDF pages: box-guided and colour-guided regions (GOT-OCR2.0 stage 3).

The same pages and true text as the ``pdf`` engine. A region is a line, a paragraph or a
window of 2-6 consecutive lines of one paragraph, chosen so that no other text reaches into
it; the target is exactly its lines. ``box``: prompt ``[x1, y1, x2, y2] OCR: `` with the
region on a 0-1000 scale of the image (int(coord / size * 1000)). ``color``: a red, green or
blue frame is drawn around the region and the prompt is ``[red] OCR: `` etc.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from engines.base import PROMPT_OCR, Param, Rejection, Result, Sample
from engines.pdf import SANDBOX_PARAMS, PageJob, PdfBase, parse_tasks, pick_region, region_text
from renderers.image import encode_png_fast
from renderers.pdf_raster import PageRender, pixel_box

COLORS = {"red": (255, 0, 0), "green": (0, 170, 0), "blue": (0, 0, 255)}
REGION_KINDS = ("line", "paragraph", "window")


def box_prompt(box: list[int], width: int, height: int) -> str:
    """GOT's box prompt: str() of the pixel box scaled to 0-1000 and truncated."""
    scaled = [int(box[0] / width * 1000), int(box[1] / height * 1000),
              int(box[2] / width * 1000), int(box[3] / height * 1000)]
    return f"{scaled} {PROMPT_OCR}"


def draw_frame(image: np.ndarray, box: list[int], color: tuple[int, int, int], width: int) -> Image.Image:
    """A frame drawn just outside ``box`` (so it never covers the region's glyphs)."""
    pil = Image.fromarray(image)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(pil).rectangle([x0 - width, y0 - width, x1 + width - 1, y1 + width - 1], outline=color,
                                  width=width)
    return pil


class Finegrained(PdfBase):
    name = "finegrained"
    version = "2"  # 2: PNGs by renderers.image.encode_png_fast, Sub filter (same pixels, other bytes)
    description = "box-guided ([x1, y1, x2, y2] OCR: ) and colour-guided ([red] OCR: ) regions of PDF pages"
    params = (
        Param("tasks", "box,color", "comma-separated tasks to mix: box, color"),
        Param("color_share", 0.5, "share of colour-guided samples when both tasks are on", float,
              minimum=0.0, maximum=1.0),
        Param("frame", 3, "colour frame width in pixels", int, minimum=1, maximum=10),
        *SANDBOX_PARAMS,
    )
    task_names = ("box", "color")

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        params = super().resolve_params(given)
        parse_tasks(params["tasks"], cls.task_names)
        return params

    def prepare(self, position: int) -> PageJob:
        rng = self.rng(position)
        unit, _ = self.unit(position)
        tasks = parse_tasks(self.p["tasks"], self.task_names)
        if "color" in tasks and ("box" not in tasks or rng.random() < self.p["color_share"]):
            task = "color"
        else:
            task = "box"
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        # raw pixels to draw the frame on
        return PageJob(position, rng, unit, task, "png" if task == "box" else "raw", color)

    def finish(self, job: PageJob, render: PageRender | Rejection) -> Result:
        if isinstance(render, Rejection):
            return render
        rng, unit, task, color = job.rng, job.unit, job.task, job.color
        assert rng is not None
        where = f"{unit[0]}#page={unit[1] + 1}"
        picked = pick_region(render, rng, REGION_KINDS)
        if picked is None:
            return Rejection("no_clean_region", "no region is clear of other text", source=where)
        kind, members, region = picked
        w, h = render.size
        box = pixel_box(region, render.scale, w, h)
        meta = {"page": unit[1] + 1, "parser": self.p["parser"], "region": kind, "lines": len(members)}
        target = region_text(render, members)
        if task == "box":
            assert render.png is not None
            return Sample("box", box_prompt(box, w, h), target, [render.png], source=where,
                          boxes=[box], meta=meta)
        assert render.image is not None
        image = np.asarray(draw_frame(render.image, box, COLORS[color], self.p["frame"]))
        return Sample("color", f"[{color}] {PROMPT_OCR}", target, [encode_png_fast(image, self.p["png_level"], "sub")],
                      source=where, boxes=[box], colors=[color], meta=meta)

