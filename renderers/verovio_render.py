"""Verovio engraving in an isolated child process, and SVG rasterising with librsvg (pyvips).

Verovio aborts the whole process on some malformed Humdrum (``std::length_error``
on a record with too many fields, measured with verovio 6.4.1), so each worker keeps
one long-lived child (``renderers/verovio_child.py``) that owns the toolkit: a crash costs
one restart and one rejection, never the worker. A request is one JSON line; the child
answers with one JSON line (ok, pages, systems, log, payload length) followed by the raw
SVG bytes, or, when asked, the PNG of a one-system page, rasterised and encoded in the child.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from engines.base import EncodedImage

MUSIC_FONTS = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
SERIF_FAMILY = "DejaVu Serif"  # fonts-dejavu-core (docker/apt-packages.txt)
# Verovio writes text (tempo, dynamics words) as font-family="Times, serif"; naming the face
# keeps the text identical on machines whose fontconfig would map "Times" elsewhere.
_TEXT_FAMILY = re.compile(rb'font-family="Times,\s*serif"')
_SERIF = f'font-family="{SERIF_FAMILY}"'.encode()

BASE_OPTIONS: dict[str, Any] = {
    "inputFrom": "humdrum",
    "breaks": "auto",
    "adjustPageHeight": True,
    "adjustPageWidth": True,
    "header": "none",
    "footer": "none",
    "mnumInterval": 0,
    "svgFormatRaw": True,  # no indentation: ~36% less SVG to pipe, scan and parse; same drawing
}


class EngraveError(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Engraving:
    pages: int
    systems: int  # systems on page 1
    first_system_measures: int
    svg: bytes = b""  # page 1, UTF-8 (unless the PNG was asked for)
    png: EncodedImage | None = None  # page 1 as grayscale PNG: asked for, and one system on one page


def _utf8(svg: str | bytes) -> bytes:
    return svg.encode("utf-8") if isinstance(svg, str) else svg


def _group_starts(svg: bytes, cls: bytes) -> list[int]:
    """Offsets of the ``<g`` tags whose class is ``cls`` or begins with ``cls`` and a space.

    Same answer as the regex ``<g\\s[^>]*class="cls[ "]`` on well-formed XML (no raw '<' inside
    attribute values), but it jumps between the few class attributes instead of matching at every
    tag of the page: ~20x cheaper on an engraving.
    """
    needle = b'class="' + cls
    starts, pos = [], svg.find(needle)
    while pos >= 0:
        after = svg[pos + len(needle):pos + len(needle) + 1]
        tag = svg.rfind(b"<", 0, pos)
        if (after in (b" ", b'"') and svg.startswith(b"<g", tag) and svg[tag + 2:tag + 3].isspace()
                and svg.find(b">", tag, pos) < 0):
            starts.append(tag)
        pos = svg.find(needle, pos + len(needle))
    return starts


def count_systems(svg: str | bytes) -> int:
    return len(_group_starts(_utf8(svg), b"system"))


def system_layout(svg: bytes) -> tuple[int, int]:
    """Systems on the page, and measures in the first system (those before the second system's tag)."""
    systems = _group_starts(svg, b"system")
    begin = systems[0] if systems else 0
    end = systems[1] if len(systems) > 1 else len(svg)
    return len(systems), sum(begin <= m < end for m in _group_starts(svg, b"measure"))


# -- width estimate ------------------------------------------------------------------
# Natural width of a measure in SVG units (10 per layout unit), least squares over 294 excerpts
# (built-in and real, all fonts, the engine's option ranges) measured with breaks=none:
#   lin * sum over time slices of (slice duration * 1024) ** nonlin, slices, accidentals,
#   constant, first measure (clef + meter), key accidentals in the first measure.
# Median error 8 %: it only chooses the first try; Verovio still decides and checks the system.
_WIDTH_COEF = (66.71, 166.2, 28.55, 324.2, 1234.9, 95.32)
_DURATION = re.compile(r"(\d+)(?:%\d+)?(\.*)")
_ACCIDENTAL = re.compile(r"[a-gA-G]+(?:#+|-+|n)")


def _token_duration(token: str) -> float | None:
    if "q" in token or "Q" in token:
        return 0.0  # grace notes take no time
    m = _DURATION.search(token)
    if not m:
        return None
    n = int(m.group(1))
    return (1 / n if n else 2.0) * (2 - 0.5 ** len(m.group(2)))


@lru_cache(maxsize=1 << 14)
def _field_features(field: str) -> tuple[float | None, int]:
    """Duration of a data field (its first timed member) and accidentals written in it; fields repeat a lot."""
    durations = [d for d in map(_token_duration, field.split(" ")) if d is not None]
    return (durations[0] if durations else None), len(_ACCIDENTAL.findall(field))


def _measure_features(lines: list[str]) -> tuple[list[float], int]:
    """Durations (whole notes) from each data record to the next onset, and accidentals written."""
    t, ends, steps, accidentals = 0.0, [], [], 0
    for line in lines:
        fields = line.split("\t")
        if len(fields) != len(ends):  # a spine split or merge: new voices start now
            ends = (ends + [t] * len(fields))[: len(fields)]
        for i, field in enumerate(fields):
            if field == ".":
                continue
            duration, written = _field_features(field)
            if duration is not None:
                ends[i] = t + duration
            accidentals += written
        later = [e for e in ends if e > t + 1e-9]
        step = min(later) - t if later else 0.0
        steps.append(step)
        t += step
    return steps, accidentals


def estimate_fit(kern: str, options: dict[str, Any], margin: float = 1.05) -> int:
    """How many leading measures of an excerpt probably fit one system (at least 1).

    ``margin`` > 1 leans towards trying too many (one more engraving) over too few (a shorter
    sample than Verovio would fit): at 1.05, 1 % of first tries are shorter than needed.
    """
    head: list[str] = []
    measures: list[list[str]] = [[]]
    for line in kern.split("\n")[1:]:
        if line.startswith("="):
            measures.append([])
        elif line.startswith("*"):
            if len(measures) == 1 and not measures[0]:
                head.append(line)
        elif line and not line.startswith("!"):
            measures[-1].append(line)
    measures = [m for m in measures if m]
    key_accidentals = sum(len(re.findall(r"[a-g][#-]", h)) for h in head if "*k[" in h)
    lin, nonlin = float(options.get("spacingLinear", 0.25)), float(options.get("spacingNonLinear", 0.6))
    available = 10 * (options["pageWidth"] - options.get("pageMarginLeft", 50) - options.get("pageMarginRight", 50))
    c = _WIDTH_COEF
    total, fits = 0.0, 0
    for i, lines in enumerate(measures):
        steps, accidentals = _measure_features(lines)
        spacing = lin * sum((d * 1024) ** nonlin for d in steps if d > 0)
        first = i == 0
        total += (c[0] * spacing + c[1] * len(steps) + c[2] * accidentals + c[3] + c[4] * first
                  + c[5] * key_accidentals * first)
        if total > available * margin:
            break
        fits += 1
    return max(1, fits)


# -- parent side ------------------------------------------------------------------
_CHILD = Path(__file__).with_name("verovio_child.py")
_ROOT = Path(__file__).resolve().parents[1]


@cache
def _verovio_site() -> str:
    """The folder holding the verovio package, found without importing it."""
    spec = importlib.util.find_spec("verovio")
    if spec is None or not spec.submodule_search_locations:
        raise EngraveError("verovio_error", "the verovio package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


class Engraver:
    """One Verovio child per worker; restarted after a crash or a timeout."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._cpu: int | None = None  # the CPU the child is kept on

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-S", str(_CHILD), _verovio_site(), str(_ROOT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )

    def engrave(self, kern: str, options: dict[str, Any], png: bool = False) -> Engraving:
        """Load ``kern`` with ``options`` and engrave page 1; EngraveError if Verovio fails or dies.

        With ``png``, the child also rasterises (``rasterize``) and encodes (``encode_png``) page 1
        when it is one system on one page, and the SVG stays in the child.
        """
        if self._proc is None or self._proc.poll() is not None:
            self._proc, self._cpu = self._start(), None
        proc = self._proc
        self._follow(proc.pid)
        payload = b""
        try:
            request = {"kern": kern, "options": {**BASE_OPTIONS, **options}, "png": png}
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            line = proc.stdout.readline() if ready else b""
            if line:
                reply = json.loads(line)
                size = reply.get("svg_bytes", 0) + reply.get("png_bytes", 0)
                payload = proc.stdout.read(size)
                if len(payload) < size:
                    line = b""  # the child died while writing the page
        except (BrokenPipeError, OSError):
            ready, line = True, b""
        if not line:
            # Readable but empty is end of file: the child died. Asking poll() instead races
            # with the kernel reaping it (a crash was sometimes reported as a timeout).
            timed_out = not ready
            if not timed_out:
                try:
                    proc.wait(timeout=5)  # the real exit code (SIGABRT), not our kill
                except subprocess.TimeoutExpired:
                    pass
            self._kill()
            self.restarts += 1
            if timed_out:
                raise EngraveError("verovio_timeout", f"no answer within {self.timeout:g} s")
            raise EngraveError("verovio_crash", f"Verovio exited with code {proc.returncode}")
        log = (reply.get("log") or "").strip()
        if not reply["ok"]:
            raise EngraveError(reply.get("reason", "verovio_error"), log or "Verovio could not load the data")
        if not reply["pages"]:
            raise EngraveError("verovio_error", log or "Verovio produced no page")
        engraving = Engraving(reply["pages"], reply["systems"], reply["first"])
        if "png_bytes" in reply:
            from engines.base import EncodedImage

            engraving.png = EncodedImage(payload, reply["width"], reply["height"], "png")
        else:
            engraving.svg = payload
        return engraving

    def _follow(self, pid: int) -> None:
        """Keep the child on the CPU this process runs on.

        Parent and child take turns (the parent waits while the child engraves), so sharing one
        CPU costs no parallelism; left free, the scheduler wakes the child on the other core, whose
        caches other work has taken meanwhile: measured ~1 ms more CPU per engraving (12.6 vs 11.5
        ms, when the worker still rasterised between requests). Re-set only when this process moved.
        """
        cpu = _current_cpu()
        if cpu is None or cpu == self._cpu:
            return
        try:
            os.sched_setaffinity(pid, {cpu})
            self._cpu = cpu
        except (OSError, AttributeError):  # not Linux, or not allowed: leave the scheduler to it
            self._cpu = None

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


@cache
def _sched_getcpu() -> Any:
    try:
        getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return None
    getcpu.restype, getcpu.argtypes = ctypes.c_int, []
    return getcpu


def _current_cpu() -> int | None:
    """The CPU this thread runs on now (glibc sched_getcpu), or None where unknown."""
    getcpu = _sched_getcpu()
    cpu = getcpu() if getcpu is not None else -1
    return cpu if cpu >= 0 else None


@cache
def _vips() -> Any:
    # Imported here, not at the top: the Verovio child imports this module for ``system_layout``
    # and loads libvips only on its first PNG request, so an SVG-only child (the viewer's) starts
    # without libvips, numpy and PIL (~0.1 s less CPU).
    import pyvips

    pyvips.cache_set_max(0)  # each rendering is used once: the operation cache would only hold memory
    return pyvips


def rasterize(svg: str | bytes, zoom: float = 1.0) -> Image.Image:
    """SVG -> grayscale PIL image on white (librsvg through libvips: ~3x less CPU than resvg here)."""
    import numpy as np
    from PIL import Image

    svg = _TEXT_FAMILY.sub(_SERIF, _utf8(svg))
    rgba = _vips().Image.svgload_buffer(svg, scale=zoom).numpy().astype(np.uint16)
    if rgba.ndim == 2:
        rgba = rgba[:, :, None]
    # Composite onto white in 16-bit integers (ITU-R 601 luma in 1/256ths), so the bytes do not
    # depend on libvips' floating-point colour paths; libvips returns straight (unpremultiplied) alpha.
    if rgba.shape[2] >= 3:
        luma = (77 * rgba[:, :, 0] + 150 * rgba[:, :, 1] + 29 * rgba[:, :, 2] + 128) >> 8
    else:
        luma = rgba[:, :, 0]
    if rgba.shape[2] in (2, 4):
        # white * (1 - a) + luma * a, written so that no term exceeds 255 * 255
        gray = 255 - ((255 - luma) * rgba[:, :, -1] + 127) // 255
    else:
        gray = luma
    return Image.fromarray(gray.astype(np.uint8), "L")

