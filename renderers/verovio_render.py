"""Verovio engraving in an isolated child process, and SVG rasterising with resvg.

Verovio aborts the whole process on some malformed Humdrum (``std::length_error``
on a record with too many fields, measured with verovio 6.4.1), so each worker keeps
one long-lived child that owns the toolkit: a crash costs one restart and one
rejection, never the worker. The child answers one JSON line per request.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import resvg_py
from PIL import Image

MUSIC_FONTS = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
SERIF_FAMILY = "DejaVu Serif"
# Verovio writes text (tempo, dynamics words, titles) as <text font-family="Times,serif">;
# resvg drops text whose font it cannot find, so the serif faces are passed explicitly.
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu",)
SERIF_FILES = sorted(
    str(p) for d in _FONT_DIRS if Path(d).is_dir() for p in Path(d).glob("DejaVuSerif*.ttf") if "Condensed" not in p.name
)
_SYSTEM = re.compile(r'<g\s[^>]*class="system"')
_MEASURE = re.compile(r'<g\s[^>]*class="measure[ "]')

BASE_OPTIONS: dict[str, Any] = {
    "inputFrom": "humdrum",
    "breaks": "auto",
    "adjustPageHeight": True,
    "adjustPageWidth": True,
    "header": "none",
    "footer": "none",
    "mnumInterval": 0,
}


class EngraveError(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Engraving:
    svg: str  # page 1
    pages: int
    systems: int  # systems on page 1
    first_system_measures: int
    log: str


def count_systems(svg: str) -> int:
    return len(_SYSTEM.findall(svg))


def first_system_measures(svg: str) -> int:
    """Measures in the first system: the measures before the second system's opening tag."""
    starts = [m.start() for m in _SYSTEM.finditer(svg)]
    end = starts[1] if len(starts) > 1 else len(svg)
    return len(_MEASURE.findall(svg, starts[0] if starts else 0, end))


# -- child side -------------------------------------------------------------------
def _serve() -> None:
    import verovio

    verovio.enableLog(verovio.LOG_WARNING)
    tk = verovio.toolkit()
    out = sys.stdout
    for raw in sys.stdin:
        request = json.loads(raw)
        tk.resetOptions()
        tk.setOptions({**BASE_OPTIONS, **request["options"]})
        ok = tk.loadData(request["kern"])
        reply: dict[str, Any] = {"ok": bool(ok), "log": tk.getLog()}
        if ok:
            reply["pages"] = tk.getPageCount()
            reply["svg"] = tk.renderToSVG(1) if reply["pages"] else ""
            reply["log"] = tk.getLog() or reply["log"]
        out.write(json.dumps(reply) + "\n")
        out.flush()


# -- parent side ------------------------------------------------------------------
class Engraver:
    """One Verovio child per worker; restarted after a crash or a timeout."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[str]:
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        return subprocess.Popen(
            [sys.executable, "-m", "renderers.verovio_render"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1, cwd=root, env=env,
        )

    def engrave(self, kern: str, options: dict[str, Any]) -> Engraving:
        """Load ``kern`` with ``options`` and return page 1; EngraveError if Verovio fails or dies."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        try:
            proc.stdin.write(json.dumps({"kern": kern, "options": options}) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            line = proc.stdout.readline() if ready else ""
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            timed_out = proc.poll() is None
            self._kill()
            self.restarts += 1
            if timed_out:
                raise EngraveError("verovio_timeout", f"no answer within {self.timeout:g} s")
            raise EngraveError("verovio_crash", f"Verovio exited with code {proc.returncode}")
        reply = json.loads(line)
        log = (reply.get("log") or "").strip()
        if not reply["ok"]:
            raise EngraveError("verovio_error", log or "Verovio could not load the data")
        svg = reply.get("svg", "")
        if not svg:
            raise EngraveError("verovio_error", log or "Verovio produced no page")
        return Engraving(svg, reply["pages"], count_systems(svg), first_system_measures(svg), log)

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None

    def close(self) -> None:
        self._kill()


def rasterize(svg: str, zoom: float = 1.0) -> Image.Image:
    """SVG -> grayscale PIL image on white, with the serif faces loaded explicitly (no system scan)."""
    png = resvg_py.svg_to_bytes(
        svg_string=svg, background="white", zoom=zoom,
        skip_system_fonts=True, font_files=SERIF_FILES,
        font_family=SERIF_FAMILY, serif_family=SERIF_FAMILY,
    )
    image = Image.open(io.BytesIO(bytes(png)))
    image.load()
    return image.convert("L")


if __name__ == "__main__":
    _serve()
