"""LaTeX tables rendered in batches with pdflatex (xelatex for CJK); the target is the tabular source.

Inputs: .tex files and text lists of tabular sources (every tabular/tabular*/tabularx
environment is extracted, nested braces handled) and JSONL files with a ``latex`` field
(tab2latex). tabular*/tabularx become plain ``tabular`` (the form Mathpix markdown keeps),
comments are removed and lines stripped. The style (font, size, \\arraystretch,
\\tabcolsep) wraps the target when rendering and is recorded in meta; it is not part of
the target because it does not change what the table says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engines.base import Param, Rejection
from engines.formulas import _files
from renderers.tex import Preamble, TexJob, TexLimits, has_cjk
from renderers.tex_engine import TexBatchEngine
from renderers.tex_extract import extract_tabulars

DEFAULT_SET = Path(__file__).with_name("data") / "tables_default.json"
TABLE_PACKAGES = (
    "\\usepackage{amsmath,amssymb,array,booktabs,multirow,makecell,hhline,bm,pifont}\n"
    "\\usepackage[table]{xcolor}"
)
FONTS: dict[str, str] = {
    "cm": "",
    "lmodern": "\\usepackage{lmodern}",
    "times": "\\usepackage{mathptmx}",
    "palatino": "\\usepackage{mathpazo}",
    "helvetica": "\\usepackage[scaled=0.92]{helvet}\\renewcommand{\\familydefault}{\\sfdefault}",
}
SIZES = ("footnotesize", "small", "normalsize")
_COLOUR_RE = re.compile(r"\\(color|textcolor|cellcolor|rowcolor|columncolor|rowcolors|arrayrulecolor|colorbox|fcolorbox)\b")


def plan_tables(inputs: list[str]) -> list[list[str]]:
    """Units ``[tabular source, source]``."""
    if not inputs:
        data = json.loads(DEFAULT_SET.read_text(encoding="utf-8"))
        return [[t["latex"], f"{DEFAULT_SET.name}#{t['id']}"] for t in data["tables"]]
    units: list[list[str]] = []
    for path in _files(inputs, {".tex", ".ltx", ".txt", ".jsonl"}):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                latex = json.loads(line).get("latex", "")
                for f in extract_tabulars(latex):
                    units.append([f.tex, f"{path}:{n}"])
        else:
            for f in extract_tabulars(text):
                units.append([f.tex, f"{path}:{f.line}"])
    return units


class Tables(TexBatchEngine):
    name = "tables"
    task = "table"
    version = "1"
    description = "LaTeX tabular environments rendered in batches with pdflatex/xelatex; the tabular source as target"
    inputs = "optional"
    params = (
        Param("dpi_min", 110, "lowest raster resolution", int, minimum=72, maximum=1200),
        Param("dpi_max", 180, "highest raster resolution", int, minimum=72, maximum=1200),
        Param("fonts", ",".join(FONTS), "comma-separated font set to draw from: " + ", ".join(FONTS)),
        Param("max_width_pt", 900.0, "wider tables are rejected as overfull", float, minimum=50),
        Param("max_height_pt", 1000.0, "taller tables are rejected as overfull", float, minimum=50),
        Param("batch", 100, "snippets per TeX run", int, minimum=1, maximum=2000),
    )

    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        cls.check_style_params(params, FONTS)
        return plan_tables(inputs)

    def limits(self) -> TexLimits:
        return TexLimits(max_width_pt=self.p["max_width_pt"], max_height_pt=self.p["max_height_pt"],
                         batch_size=self.p["batch"])  # fmt: skip

    def prepare(self, position: int) -> tuple[TexJob, dict[str, Any]] | Rejection:
        rng = self.rng(position)
        (tex, source), _ = self.unit(position)
        fonts = [f.strip() for f in self.p["fonts"].split(",") if f.strip()]
        style = {
            "font": fonts[int(rng.integers(len(fonts)))],
            "size": SIZES[int(rng.integers(len(SIZES)))],
            "arraystretch": round(float(rng.uniform(1.0, 1.5)), 2),
            "tabcolsep": round(float(rng.uniform(3.0, 8.0)), 1),
        }
        dpi = int(rng.integers(self.p["dpi_min"], self.p["dpi_max"] + 1))
        margin = int(rng.integers(8, 41))
        return table_job(tex, style, dpi, margin, source)


def table_job(tex: str, style: dict[str, Any], dpi: int, margin: int, source: str | None) -> tuple[TexJob, dict[str, Any]]:
    """The job rendering ``tex`` in ``style``, and the sample's target/meta (tests re-render with it)."""
    cjk = has_cjk(tex)
    preamble = Preamble(fixed=TABLE_PACKAGES, tail="\\usepackage{xeCJK}" if cjk else FONTS[style["font"]],
                        xetex=cjk)  # fmt: skip
    body = (f"\\{style['size']}\\renewcommand{{\\arraystretch}}{{{style['arraystretch']}}}"
            f"\\setlength{{\\tabcolsep}}{{{style['tabcolsep']}pt}}\n{tex}")  # fmt: skip
    # Grey pages rasterise and encode ~3x faster; only tables that use colour need RGB.
    gray = not _COLOUR_RE.search(tex)
    job = TexJob(body=body, preamble=preamble, dpi=dpi, margin_px=margin, gray=gray, source=source)
    meta = {"target": tex, **style, "font": "noto-cjk" if cjk else style["font"], "dpi": dpi, "margin": margin}
    return job, meta
