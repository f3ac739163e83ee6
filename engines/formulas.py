"""LaTeX formulas rendered in batches with pdflatex (xelatex for CJK), Mathpix markdown targets.

Inputs: formula lists (one per line, also the space-separated im2latex token form) and
.tex files or folders (display and inline math is extracted). The target is the
formula's text with whitespace runs collapsed to one space, wrapped as Mathpix markdown:
``\\[ ... \\]`` for display, ``\\( ... \\)`` for inline. Exactly that text is what TeX
renders (``$\\displaystyle ...$`` or ``$...$``), so the label is true by construction;
font package, size, resolution and margin are drawn from the position's rng.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engines.base import Param, Rejection, source_name
from renderers.tex import Preamble, TexJob, TexLimits, has_cjk
from renderers.tex_engine import TexBatchEngine
from renderers.tex_extract import extract_math

DEFAULT_SET = Path(__file__).with_name("data") / "formulas_default.txt"
MATH_PACKAGES = "\\usepackage{amsmath,amssymb,amsfonts,mathrsfs,bm,upgreek}"
# Font packages installed here that load cleanly after amsmath/amssymb (others: not installed or clash).
FONTS: dict[str, str] = {
    "cm": "",
    "lmodern": "\\usepackage{lmodern}",
    "times": "\\usepackage{mathptmx}",
    "palatino": "\\usepackage{mathpazo}",
    "euler": "\\usepackage{euler}",
}
SIZES = ("normalsize", "large")
TEX_SUFFIXES = {".tex", ".ltx"}
# Delimiters inside a formula would end its math mode early.
# (An even run of backslashes before them is a row break like \\[2mm], not a delimiter.)
_BAD_IN_FORMULA = re.compile(r"(?:^|[^\\])(?:\\\\)*(?:\$|\\[][()])")
_DROP = re.compile(r"\\label\s*\{[^{}]*\}|\\(?:nonumber|notag)(?![A-Za-z])")


def normalise(tex: str) -> str:
    """The target's form of a formula: invisible \\label/\\nonumber/\\notag dropped, whitespace runs
    collapsed to one space, ends stripped."""
    return " ".join(_DROP.sub(" ", tex).split())


def _files(inputs: list[str], suffixes: set[str] | None = None) -> list[Path]:
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*")) if p.is_file() and (suffixes is None or p.suffix in suffixes))
        elif path.is_file():
            out.append(path)
        else:
            raise ValueError(f"no such file or folder: {item}")
    return out


def plan_formulas(inputs: list[str]) -> list[list[str]]:
    """Units ``[formula, mode, source]``; mode is display, inline or any (list lines)."""
    units: list[list[str]] = []
    files = _files(inputs, TEX_SUFFIXES | {".txt", ".lst"}) if inputs else [DEFAULT_SET]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix in TEX_SUFFIXES:
            for f in extract_math(text):
                tex = normalise(f.tex)
                if f.kind in ("aligned", "gathered"):
                    tex = f"\\begin{{{f.kind}}} {tex} \\end{{{f.kind}}}"
                mode = "inline" if f.kind == "inline" else "display"
                units.append([tex, mode, f"{source_name(path)}:{f.line}"])
        else:
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.startswith("%"):  # '%' lines: the file's licence header
                    units.append([normalise(line), "any", f"{source_name(path)}:{n}"])
    return units


class Formulas(TexBatchEngine):
    name = "formulas"
    task = "formula"
    version = "1"
    description = "LaTeX formulas rendered in batches with pdflatex/xelatex, Mathpix markdown targets"
    inputs = "optional"
    params = (
        Param("dpi_min", 150, "lowest raster resolution", int, minimum=72, maximum=1200),
        Param("dpi_max", 300, "highest raster resolution", int, minimum=72, maximum=1200),
        Param("fonts", ",".join(FONTS), "comma-separated font set to draw from: " + ", ".join(FONTS)),
        Param("inline_prob", 0.2, "share of list formulas rendered inline (\\( \\)) instead of display", float,
              minimum=0.0, maximum=1.0),
        Param("max_width_pt", 700.0, "wider formulas are rejected as overfull", float, minimum=50),
        Param("batch", 200, "snippets per TeX run", int, minimum=1, maximum=2000),
    )  # fmt: skip

    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        cls.check_style_params(params, FONTS)
        return plan_formulas(inputs)

    def limits(self) -> TexLimits:
        return TexLimits(max_width_pt=self.p["max_width_pt"], batch_size=self.p["batch"])

    def prepare(self, position: int) -> tuple[TexJob, dict[str, Any]] | Rejection:
        """The TeX job and the sample's target/meta for one position (the rng decides the style)."""
        rng = self.rng(position)
        (tex, mode, source), _ = self.unit(position)
        fonts = [f.strip() for f in self.p["fonts"].split(",") if f.strip()]
        font = fonts[int(rng.integers(len(fonts)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        dpi = int(rng.integers(self.p["dpi_min"], self.p["dpi_max"] + 1))
        margin = int(rng.integers(4, 33))
        inline = rng.random() < self.p["inline_prob"]
        if mode != "any":
            inline = mode == "inline"
        if not tex:
            return Rejection("empty_formula", "the formula is empty", source)
        if _BAD_IN_FORMULA.search(tex):
            return Rejection("unsafe_input", "math delimiters inside a formula", source)
        return formula_job(tex, inline, font, size, dpi, margin, source)


def formula_job(
    tex: str, inline: bool, font: str, size: str, dpi: int, margin: int, source: str | None
) -> tuple[TexJob, dict[str, Any]]:
    """The job that renders ``tex`` and the target it stands for (also used to re-render targets in tests)."""
    cjk = has_cjk(tex)
    preamble = Preamble(fixed=MATH_PACKAGES,
                        tail="\\usepackage{xeCJK}" if cjk else FONTS[font], xetex=cjk)  # fmt: skip
    body = f"\\{size}${tex}$" if inline else f"\\{size}$\\displaystyle {tex}$"
    target = f"\\( {tex} \\)" if inline else f"\\[ {tex} \\]"
    job = TexJob(body=body, preamble=preamble, dpi=dpi, margin_px=margin, gray=True, source=source)
    meta = {"target": target, "font": "noto-cjk" if cjk else font, "size": size, "dpi": dpi,
            "mode": "inline" if inline else "display", "margin": margin}  # fmt: skip
    return job, meta


def parse_target(target: str) -> tuple[str, bool]:
    """(formula, inline) of a target made by this engine."""
    if target.startswith("\\( ") and target.endswith(" \\)"):
        return target[3:-3], True
    if target.startswith("\\[ ") and target.endswith(" \\]"):
        return target[3:-3], False
    raise ValueError(f"not a formula target: {target[:40]!r}")
