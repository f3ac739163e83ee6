"""Targets rendered back to pictures on the server: SMILES (RDKit), **kern (Verovio), TikZ (TeX).

Markdown/LaTeX (KaTeX) and chart dicts (a table) are drawn in the page; this module
only says which kind a target is and produces SVG for the three that need a toolchain.
Every renderer gets the target from the manifest, never from the request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from typing import Any

TEX_TIMEOUT = 20  # seconds; a runaway TikZ picture must not hold a server thread for long
_VEROVIO_LOCK = threading.Lock()  # one request at a time on the engraver's pipe
_TEX_LOCK = threading.Lock()  # one pdflatex at a time: two cores are shared with the user's work


class RenderError(Exception):
    """The target could not be rendered: shown to the user as text, which is itself a finding."""


def kind_of(record: dict[str, Any]) -> str:
    """How to render a target back: smiles | kern | tikz | chart | markdown."""
    target = record.get("target", "").strip()
    hint = f"{record.get('engine', '')} {record.get('task', '')}".lower()
    if target.startswith("**kern") or "\n**kern" in target[:200] or "kern" in hint:
        return "kern"
    if "\\begin{tikzpicture}" in target or "tikz" in hint:
        return "tikz"
    if any(word in hint for word in ("smiles", "molecule")):
        return "smiles"
    if target.startswith("{"):
        try:
            if isinstance(json.loads(target), dict):
                return "chart"
        except ValueError:
            pass
    return "markdown"


def smiles_svg(smiles: str, size: int = 520) -> str:
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Draw import rdMolDraw2D

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise RenderError("RDKit cannot parse this SMILES")
    drawer = rdMolDraw2D.MolDraw2DSVG(size, size)
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


_engraver: Any = None


def kern_svg(kern: str) -> str:
    """Engrave in the music engine's Verovio child process: Verovio can abort the process on some
    input, and its fonts are process-wide state; neither may reach the viewer's server."""
    global _engraver
    from renderers.verovio_render import EngraveError, Engraver

    with _VEROVIO_LOCK:
        if _engraver is None:
            _engraver = Engraver(timeout=20)
        try:
            # One system on one line, the page cut to the music: the excerpt is shown whole.
            return _engraver.engrave(kern, {"breaks": "none", "scale": 50}).svg.decode("utf-8")
        except EngraveError as exc:
            raise RenderError(f"Verovio cannot load this **kern ({exc.reason})") from None


TIKZ_DOCUMENT = r"""\documentclass[tikz,border=4pt]{standalone}
\usepackage{amsmath,amssymb}
\usetikzlibrary{arrows.meta,calc,patterns,shapes.geometric,angles,quotes}
\begin{document}
%s
\end{document}
"""


_tex: Any = None


def tikz_picture(tikz: str) -> tuple[str, bytes]:
    """Re-compile with the project's locked-down TeX renderer and the geometry engine's preamble,
    so the picture is made exactly as the engine made it; fall back to a minimal safe compile."""
    global _tex
    try:
        from engines.geometry import PREAMBLE
        from renderers.tex import TexJob, TexRenderer
    except ImportError:
        return "image/svg+xml", tikz_svg(tikz).encode("utf-8")
    from engines.base import Rejection

    with _TEX_LOCK:
        if _tex is None:
            _tex = TexRenderer()
        result = _tex.render([TexJob(body=tikz, preamble=PREAMBLE, dpi=150, margin_px=8, source="viewer")])[0]
    if isinstance(result, Rejection):
        raise RenderError(f"{result.reason}: {result.detail}")
    return "image/png", result.data


def tikz_svg(tikz: str) -> str:
    """Compile in a fresh temp folder: no shell escape, no reads or writes outside it, bounded time."""
    if not shutil.which("pdflatex"):
        raise RenderError("pdflatex is not installed")
    import pymupdf  # the PDF page to SVG

    env = dict(os.environ, openin_any="p", openout_any="p", shell_escape="f", TEXMFOUTPUT="")
    with _TEX_LOCK, tempfile.TemporaryDirectory(prefix="got-view-tex-") as tmp:
        with open(os.path.join(tmp, "t.tex"), "w", encoding="utf-8") as handle:
            handle.write(TIKZ_DOCUMENT % tikz)
        try:
            run = subprocess.run(
                ["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                cwd=tmp, env=env, capture_output=True, timeout=TEX_TIMEOUT, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise RenderError(f"pdflatex took longer than {TEX_TIMEOUT}s") from None
        pdf = os.path.join(tmp, "t.pdf")
        if run.returncode != 0 or not os.path.exists(pdf):
            log = run.stdout.decode("utf-8", "replace")
            errors = [line for line in log.splitlines() if line.startswith("!")]
            raise RenderError("pdflatex failed: " + ("; ".join(errors[:3]) or log[-400:]))
        with pymupdf.open(pdf) as doc:
            return doc[0].get_svg_image(text_as_path=True)


def _svg(fn: Any) -> Any:
    return lambda text: ("image/svg+xml", fn(text).encode("utf-8"))


RENDERERS = {"smiles": _svg(smiles_svg), "kern": _svg(kern_svg), "tikz": tikz_picture}


class RenderCache:
    """Rendered pictures (or their errors) by (kind, target), bounded by total bytes."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], tuple[bool, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def render(self, kind: str, target: str) -> tuple[bool, str, bytes]:
        """(ok, content type, picture or error message)."""
        cache_key = (kind, target)
        with self._lock:
            if cache_key in self._items:
                self._items.move_to_end(cache_key)
                return self._items[cache_key]
        try:
            ctype, data = RENDERERS[kind](target)
            result = (True, ctype, data)
        except RenderError as exc:
            result = (False, "text/plain; charset=utf-8", str(exc).encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - a renderer crash is shown, not fatal
            result = (False, "text/plain; charset=utf-8", f"{type(exc).__name__}: {exc}".encode())
        with self._lock:
            self._items[cache_key] = result
            self._bytes += len(result[2])
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, _, old) = self._items.popitem(last=False)
                self._bytes -= len(old)
        return result
