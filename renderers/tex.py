"""Batched, locked-down TeX renderer: many snippets per TeX run, one PDF page per snippet.

How a batch runs:

* The preamble's fixed part is dumped once per worker into a format (``-ini`` +
  ``mylatexformat``); each run loads it and only reads the per-batch tail (a font package).
* Snippets go into one ``standalone`` document with ``multi=snip``; ``\\typeout`` markers
  around every snippet (``@@S i`` / ``@@E i <page counter>``) map TeX's messages and pages
  back to snippets.
* TeX runs in nonstop mode. Pages of snippets before the first error are kept; the first
  failing snippet is rejected with TeX's message; the rest are re-run (those that failed
  here as suspects, the others as a clean batch), so a snippet is only ever accepted from a
  run in which nothing failed before it. A fatal error or a time-out (process group killed)
  blames the last snippet TeX started; when that is unknown the batch is bisected.
* Pages are rasterised with PyMuPDF at each job's own dpi, cropped to the ink with each
  job's margin. A page's pixels depend only on its own snippet (standalone crops every page
  to its box), so a snippet renders the same in a batch of 200 or alone.

Security: ``-no-shell-escape``, kpathsea paranoid (``openin_any=p openout_any=p
shell_escape=f``), TEXMFOUTPUT and cwd confined to a private working folder, stdin closed,
and ``renderers.tex_safety.check_snippet`` before any run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from engines.base import EncodedImage, Rejection
from renderers.image import encode_png
from renderers.tex_safety import check_snippet

_CJK_RE = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
CJK_FONT = "NotoSansCJK-Regular.ttc"  # fonts-noto-cjk; face 2 is Simplified Chinese
CJK_FONT_INDEX = 2
WHITE_THRESHOLD = 250  # a pixel darker than this (in luminance) is ink
_INK_LUT = [255 if v < WHITE_THRESHOLD else 0 for v in range(256)]


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


@dataclass(frozen=True)
class Preamble:
    """A document set-up. ``fixed`` is dumped into a format; ``tail`` is read on every run."""

    fixed: str  # \usepackage lines after the documentclass
    tail: str = ""  # read on every run after the format: e.g. a font package (varies per batch), xeCJK
    xetex: bool = False
    border_pt: float = 4.0

    @property
    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def format_key(self) -> str:
        return hashlib.sha256(repr((self.fixed, self.xetex, self.border_pt)).encode()).hexdigest()[:16]

    def head(self) -> str:
        return f"\\documentclass[multi=snip,border={self.border_pt}pt]{{standalone}}\n{self.fixed}\n"

    def cjk_setup(self) -> str:
        if not self.xetex:
            return ""
        return f"\\setCJKmainfont{{{CJK_FONT}}}[FontIndex={CJK_FONT_INDEX}]\n"


@dataclass
class TexJob:
    """One snippet to render: ``body`` goes between ``\\begin{snip}`` and ``\\end{snip}``."""

    body: str
    preamble: Preamble
    dpi: int = 300
    margin_px: int = 16
    gray: bool = False
    source: str | None = None


@dataclass
class TexLimits:
    max_width_pt: float = 800.0
    max_height_pt: float = 800.0
    batch_size: int = 200
    timeout_base_s: float = 8.0
    timeout_per_snippet_s: float = 0.5


@dataclass
class _Run:
    pages: dict[int, int] = field(default_factory=dict)  # snippet index -> page number (0-based)
    errors: dict[int, str] = field(default_factory=dict)  # snippet index -> TeX message
    started: list[int] = field(default_factory=list)
    fatal: str | None = None
    timed_out: bool = False
    pdf: bytes | None = None


class TexRenderer:
    """Per-worker TeX state: a private working folder and the formats built in it."""

    def __init__(self, limits: TexLimits | None = None) -> None:
        self.limits = limits or TexLimits()
        self._dir: str | None = None
        self._formats: dict[str, str] = {}
        self.runs = 0  # TeX runs made (for tests and the benchmark)

    # -- state ------------------------------------------------------------
    @property
    def workdir(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="got-tex-")
        return self._dir

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._formats.clear()

    def __del__(self) -> None:  # a forgotten close() must not leave folders behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXMF", "TEXINPUTS", "openin", "openout"))}
        env.update(
            openin_any="p",
            openout_any="p",
            shell_escape="f",
            TEXMFOUTPUT=self.workdir,
            max_print_line="10000",
            error_line="254",
            half_error_line="238",
            SOURCE_DATE_EPOCH="0",
            FORCE_SOURCE_DATE="1",
        )
        return env

    def _cmd(self, preamble: Preamble) -> list[str]:
        prog = "xelatex" if preamble.xetex else "pdflatex"
        return [prog, "-no-shell-escape", "-interaction=nonstopmode", f"-output-directory={self.workdir}"]

    def _format(self, preamble: Preamble) -> str:
        key = preamble.format_key()
        if key in self._formats:
            return self._formats[key]
        name = f"fmt-{key}"
        src = os.path.join(self.workdir, f"{name}-src.tex")
        with open(src, "w", encoding="utf-8") as f:
            f.write(preamble.head() + "\\endofdump\n\\begin{document}\n\\end{document}\n")
        prog = "xelatex" if preamble.xetex else "pdflatex"
        cmd = [*self._cmd(preamble), "-ini", f"-jobname={name}", f"&{prog}", "mylatexformat.ltx", f"{name}-src.tex"]
        proc = subprocess.run(
            cmd, cwd=self.workdir, env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=120
        )
        path = os.path.join(self.workdir, f"{name}.fmt")
        if not os.path.exists(path):  # xelatex exits 1 after harmless warnings while dumping: the file decides
            tail = proc.stdout.decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"building the TeX format failed: {tail}")
        self._formats[key] = name
        return name

    # -- public -----------------------------------------------------------
    def render(self, jobs: Sequence[TexJob]) -> list[EncodedImage | Rejection]:
        """One image or rejection per job, in order. Jobs are grouped by preamble and batched."""
        results: list[EncodedImage | Rejection | None] = [None] * len(jobs)
        groups: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            problem = check_snippet(job.body)
            if problem:
                results[i] = Rejection("unsafe_input", problem, job.source)
            else:
                groups.setdefault(job.preamble.key, []).append(i)
        for idxs in groups.values():  # dict order = first appearance: deterministic
            size = self.limits.batch_size
            for start in range(0, len(idxs), size):
                chunk = idxs[start : start + size]
                for i, res in zip(chunk, self._render_batch([jobs[i] for i in chunk]), strict=True):
                    results[i] = res
        return [r if r is not None else Rejection("engine_error", "no result") for r in results]

    # -- batches ----------------------------------------------------------
    def _render_batch(self, jobs: list[TexJob]) -> list[EncodedImage | Rejection]:
        out: list[EncodedImage | Rejection | None] = [None] * len(jobs)
        self._solve(jobs, list(range(len(jobs))), out)
        return [r if r is not None else Rejection("engine_error", "no result") for r in out]

    def _solve(self, jobs: list[TexJob], idxs: list[int], out: list) -> None:
        """Render ``idxs`` (indices into jobs); fill ``out``; re-run after failures (see module doc)."""
        if not idxs:
            return
        run = self._run([jobs[i] for i in idxs])
        if run.fatal is not None or run.timed_out:
            if len(idxs) == 1:
                out[idxs[0]] = self._failure(run, jobs[idxs[0]])
                return
            culprit = run.started[-1] if run.started else None
            if culprit is None:  # nothing started: bisect
                half = len(idxs) // 2
                self._solve(jobs, idxs[:half], out)
                self._solve(jobs, idxs[half:], out)
                return
            if run.timed_out:
                # A busy machine can make a whole batch late: only a snippet that is late *alone* is
                # rejected (tex_timeout), so results never depend on the load. The rest, in halves.
                self._solve(jobs, [idxs[culprit]], out)
                rest = idxs[:culprit] + idxs[culprit + 1 :]
                half = max(1, len(rest) // 2)
                self._solve(jobs, rest[:half], out)
                self._solve(jobs, rest[half:], out)
                return
            out[idxs[culprit]] = self._failure(run, jobs[idxs[culprit]])
            self._solve(jobs, idxs[:culprit] + idxs[culprit + 1 :], out)
            return
        first_error = min(run.errors) if run.errors else len(idxs)
        self._collect(run, jobs, idxs[:first_error], out)
        if first_error == len(idxs):
            return
        out[idxs[first_error]] = Rejection("tex_error", run.errors[first_error], jobs[idxs[first_error]].source)
        rest = range(first_error + 1, len(idxs))
        self._solve(jobs, [idxs[k] for k in rest if k in run.errors], out)
        self._solve(jobs, [idxs[k] for k in rest if k not in run.errors], out)

    def _failure(self, run: _Run, job: TexJob) -> Rejection:
        if run.timed_out:
            return Rejection("tex_timeout", "TeX did not finish within the time limit (loop?)", job.source)
        return Rejection("tex_error", run.fatal or "TeX stopped", job.source)

    def _collect(self, run: _Run, jobs: list[TexJob], idxs: list[int], out: list) -> None:
        import pymupdf  # slow import (~0.9 s): only where pages are rasterised

        if not idxs:
            return
        doc = pymupdf.open(stream=run.pdf, filetype="pdf") if run.pdf else None
        try:
            for k, i in enumerate(idxs):
                job = jobs[i]
                page_no = run.pages.get(k)
                if doc is None or page_no is None or page_no >= doc.page_count:
                    out[i] = Rejection("empty_render", "the snippet produced no page", job.source)
                    continue
                out[i] = self._rasterise(doc[page_no], job)
        finally:
            if doc is not None:
                doc.close()

    def _rasterise(self, page, job: TexJob) -> EncodedImage | Rejection:
        import pymupdf

        rect = page.rect
        border = 2 * job.preamble.border_pt
        w, h = rect.width - border, rect.height - border
        if w > self.limits.max_width_pt or h > self.limits.max_height_pt:
            return Rejection(
                "overfull",
                f"rendered size {w:.0f}x{h:.0f}pt exceeds {self.limits.max_width_pt:.0f}x{self.limits.max_height_pt:.0f}pt",
                job.source,
            )
        pix = page.get_pixmap(dpi=job.dpi, colorspace=pymupdf.csGRAY if job.gray else pymupdf.csRGB, alpha=False)
        mode = "L" if job.gray else "RGB"
        img = Image.frombytes(mode, (pix.width, pix.height), pix.samples)
        gray = img if job.gray else img.convert("L")
        # PIL's C loops: ~10x faster than numpy reductions on strided RGB pages.
        bbox = gray.point(_INK_LUT).getbbox()
        if bbox is None:
            return Rejection("empty_render", "the snippet rendered no ink", job.source)
        x0, y0, x1, y1 = bbox
        m = job.margin_px
        canvas = Image.new(mode, (x1 - x0 + 2 * m, y1 - y0 + 2 * m), 255 if job.gray else (255, 255, 255))
        canvas.paste(img.crop(bbox), (m, m))
        # zlib level 1: about twice as fast as 6 for these mostly-white images, same pixels.
        return encode_png(canvas, level=1)

    # -- one TeX run --------------------------------------------------------
    def _document(self, jobs: list[TexJob]) -> str:
        pre = jobs[0].preamble
        dump = "" if pre.xetex else "\\endofdump\n"
        parts = [pre.head(), dump, pre.tail, "\n", pre.cjk_setup(), "\\begin{document}\n"]
        for k, job in enumerate(jobs):
            # Each snippet on its own lines so TeX's "l.N" context never shows a neighbour.
            # \\message flushes the terminal (\\typeout alone may sit in a buffer when a time-out kills TeX).
            parts.append(f"\\typeout{{@@S {k}}}\\message{{}}\n\\begin{{snip}}\n{job.body}\n\\end{{snip}}\n")
            parts.append(f"\\typeout{{@@E {k} \\arabic{{page}}}}\n")
        parts.append("\\end{document}\n")
        return "".join(parts)

    def _run(self, jobs: list[TexJob]) -> _Run:
        pre = jobs[0].preamble
        # xelatex runs without a dumped format: XeTeX on a mylatexformat format segfaults as soon as fontspec
        # loads a font (measured here); CJK batches are rare, so they pay the full preamble.
        fmt_arg = [] if pre.xetex else [f"-fmt={self._format(pre)}"]
        wd = self.workdir
        for name in ("batch.pdf", "batch.log", "batch.aux", "batch.out.txt"):
            try:
                os.remove(os.path.join(wd, name))
            except FileNotFoundError:
                pass
        with open(os.path.join(wd, "batch.tex"), "w", encoding="utf-8") as f:
            f.write(self._document(jobs))
        timeout = self.limits.timeout_base_s + self.limits.timeout_per_snippet_s * len(jobs)
        run = _Run()
        self.runs += 1
        with open(os.path.join(wd, "batch.out.txt"), "wb") as term:
            proc = subprocess.Popen(
                [*self._cmd(pre), *fmt_arg, "batch.tex"],
                cwd=wd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=term,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a time-out kills xdvipdfmx too
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                run.timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        with open(os.path.join(wd, "batch.out.txt"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
        self._parse(text, run, wd)
        pdf = os.path.join(wd, "batch.pdf")
        if not run.timed_out and os.path.exists(pdf) and run.fatal is None:
            with open(pdf, "rb") as f:
                run.pdf = f.read()
        elif not run.timed_out and run.fatal is None:
            run.fatal = "TeX produced no PDF: " + _first_error(text.splitlines(), 0, wd)
        return run

    @staticmethod
    def _parse(text: str, run: _Run, wd: str) -> None:
        lines = text.splitlines()
        current: int | None = None
        pages_before = 0
        for n, line in enumerate(lines):
            if line.startswith("@@S "):
                current = int(line.split()[1])
                run.started.append(current)
            elif line.startswith("@@E "):
                _, k, page = line.split()[:3]
                pages_after = int(page) - 1  # \arabic{page} is the number of the next page
                if pages_after == pages_before + 1:
                    run.pages[int(k)] = pages_before
                pages_before = pages_after
                current = None
            elif line.startswith("!") and current is not None and current not in run.errors:
                run.errors[current] = _first_error(lines, n, wd)
            if "Fatal error occurred" in line or "Emergency stop" in line:
                run.fatal = _first_error(lines, 0, wd) if current is None else run.errors.get(current, line)


def _first_error(lines: list[str], start: int, wd: str) -> str:
    """TeX's message from the first ``!`` line at or after ``start``, with its ``l.N`` context."""
    for n in range(start, len(lines)):
        if lines[n].startswith("!"):
            msg = [lines[n]]
            for extra in lines[n + 1 : n + 8]:
                msg.append(extra)
                if re.match(r"l\.\d+", extra):
                    break
            return "\n".join(line.rstrip() for line in msg if line.strip()).replace(wd, ".")[:1000]
    return "no error message"
